"""Permutation importance on the holdout, computed through onnxruntime.

For each feature, its column is shuffled across the holdout rows and the exported model
(:class:`mlsys.contract.LoadedModel`, exactly as served) scores the result; the feature's
importance is how much the primary metric gets worse, averaged over a few shuffles. It works
for any winner, scikit-learn or LightGBM, because it only needs the ONNX graph, and it
measures what the served model does with raw inputs (a one-hot encoded category counts as
one feature, not as many columns).

The cost is bounded: at most :data:`MAX_ROWS` holdout rows (a seeded sample beyond that)
and :data:`REPEATS` shuffles per feature, scored in one ``session.run`` per feature. For
``F`` features that is ``F x REPEATS x MAX_ROWS`` predictions at most (20 features: 120,000
rows, well under a second for a tree ensemble on one core).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsys.contract import Feeds, JsonScalar, LoadedModel, Task
from mlsys.metrics import Metric, Scores
from training_job.evaluation import scores_from_prediction

MAX_ROWS = 2000
"""Holdout rows scored (a seeded sample of a larger holdout)."""
REPEATS = 3
"""Shuffles per feature."""


@dataclass(frozen=True, kw_only=True)
class Importance:
    metric: str
    rows: int
    repeats: int
    seed: int
    score: float
    """The metric on the unshuffled rows."""
    features: dict[str, tuple[float, float]]
    """Feature -> (mean, standard deviation) of the metric's loss when it is shuffled."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "permutation",
            "metric": self.metric,
            "rows": self.rows,
            "repeats": self.repeats,
            "seed": self.seed,
            "score": self.score,
            "features": {
                name: {"mean": mean, "std": std} for name, (mean, std) in self.features.items()
            },
        }


def permutation_importance(
    model: LoadedModel,
    frame: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    metric: Metric,
    task: Task,
    classes: Sequence[JsonScalar] | None,
    seed: int,
    max_rows: int = MAX_ROWS,
    repeats: int = REPEATS,
) -> Importance | None:
    """Each feature's importance on ``frame`` (raw holdout columns) with targets ``y``
    (in the current data's terms, as :mod:`training_job.evaluation` uses them).

    ``None`` when the metric is undefined on these rows (e.g. AUC with a class missing).
    """
    rng = np.random.default_rng(seed)
    if len(frame) > max_rows:
        chosen = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame, y = frame.iloc[chosen], y[chosen]
    rows = len(frame)
    feeds = model.encoder.from_frame(frame)
    sign = 1.0 if metric.higher_is_better else -1.0

    def score_all(stacked: Feeds, copies: int) -> list[float]:
        prediction = model.predict(stacked)
        scores = scores_from_prediction(
            prediction, task=task, classes=classes, model_classes=model.card.classes
        )
        return [
            metric.compute(y, _rows(scores, slice(i * rows, (i + 1) * rows)), None)
            for i in range(copies)
        ]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an undefined metric is reported as no importance
        try:
            (base,) = score_all(feeds, 1)
            if not math.isfinite(base):
                return None
            features = {
                spec.name: _shuffled_loss(
                    feeds,
                    model,
                    index,
                    base=base,
                    sign=sign,
                    repeats=repeats,
                    rng=rng,
                    score_all=score_all,
                )
                for index, spec in enumerate(model.encoder.features)
            }
        except ValueError:
            return None
    return Importance(
        metric=metric.name, rows=rows, repeats=repeats, seed=seed, score=base, features=features
    )


def _shuffled_loss(
    feeds: Feeds,
    model: LoadedModel,
    index: int,
    *,
    base: float,
    sign: float,
    repeats: int,
    rng: np.random.Generator,
    score_all: Callable[[Feeds, int], list[float]],
) -> tuple[float, float]:
    """Mean and spread of the metric's loss over ``repeats`` shuffles of one feature's
    column, all scored in one ``session.run`` (the copies stacked)."""
    name, column = model.encoder.slot(index)
    rows = len(feeds[name])
    stacked = {key: np.concatenate([value] * repeats) for key, value in feeds.items()}
    for copy in range(repeats):
        shuffled = feeds[name][rng.permutation(rows), column]
        stacked[name][copy * rows : (copy + 1) * rows, column] = shuffled
    losses = sign * (base - np.asarray(score_all(stacked, repeats)))
    return float(losses.mean()), float(losses.std())


def _rows(scores: Scores, part: slice) -> Scores:
    return Scores(
        values=None if scores.values is None else scores.values[part],
        labels=None if scores.labels is None else scores.labels[part],
        probabilities=None if scores.probabilities is None else scores.probabilities[part],
    )
