"""The served champion: loaded once, re-checked cheaply, swapped atomically.

:class:`ChampionTracker` keeps an immutable :class:`Snapshot` and replaces it in
one assignment, so a request sees the old model or the new one, never a mix.
The registry is asked at most once per ``refresh_seconds`` (a conditional GET
on S3: a 304 costs no transfer); the clock is injectable so tests can move time
instead of sleeping.

The pointer may carry a rollout (:mod:`mlsys.rollout`): the snapshot then holds the
candidate too, loaded on the same refresh, and :meth:`ChampionTracker.for_request`
says which model answers a request and which (shadow) also runs on it. A candidate
that fails to load is logged and skipped: the champion keeps answering everything.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson

from lambda_inference.errors import (
    MissingValueError,
    ModelUnavailableError,
    PredictionNotFiniteError,
)
from lambda_inference.observability import logger
from lambda_inference.validation import RecordEncoder, preview
from mlsys.contract import LoadedModel, ModelCard, Prediction
from mlsys.errors import MlsysError, NoChampionError
from mlsys.registry import ChampionPointer, ModelRegistry, Rollout
from mlsys.rollout.state import routes_to_candidate

Clock = Callable[[], float]
SMALL_BATCH = 16


@dataclass(frozen=True)
class ServingModel:
    """One loaded model version plus what serving needs alongside it."""

    model: LoadedModel
    encoder: RecordEncoder
    etag: str | None

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def card(self) -> ModelCard:
        return self.model.card

    @classmethod
    def from_loaded(cls, model: LoadedModel, *, etag: str | None) -> ServingModel:
        return cls(model=model, encoder=RecordEncoder(model.encoder), etag=etag)

    def predict(self, records: list[Any], *, body_has_booleans: bool = True) -> Prediction:
        feeds = self.encoder.encode(records, body_has_booleans=body_has_booleans)
        prediction = self.model.predict(feeds)
        self._check_finite(prediction, records)
        return prediction

    def _finite_with_nulls_zeroed(self, record: Any) -> bool:
        """Whether the nulls are to blame: the record predicts a finite value once
        they are 0 (else its other values overflowed the model: a 422, not a 400).
        Categorical features with a null get 0 as a category, which is unknown."""
        try:
            feeds = self.encoder.encode([_zero_nulls(record)])
            values = self.model.predict(feeds)
        except MlsysError:
            return True
        raw = values.probabilities if self.card.is_classifier else values.raw
        return raw is not None and bool(np.isfinite(raw).all())

    def _check_finite(self, prediction: Prediction, records: list[Any]) -> None:
        values = prediction.values
        if len(values) == 1 and type(values[0]) is float and math.isfinite(values[0]):
            return  # /stream regression: the usual case, settled at once
        # A few Python floats: math.isfinite beats a numpy round trip (~1 us per request).
        small = len(values) <= SMALL_BATCH and not self.card.is_classifier
        if small and all(isinstance(v, float) and math.isfinite(v) for v in values):
            return
        if self.card.is_classifier:
            assert prediction.probabilities is not None
            finite = np.isfinite(prediction.probabilities).all(axis=1)
        else:
            assert prediction.raw is not None
            finite = np.isfinite(prediction.raw)
        if bool(finite.all()):
            return
        index = int(np.argmin(finite))
        record = records[index]
        details = {"record": index, "record_value": _bounded_value(record)}
        if _has_null(record) and self._finite_with_nulls_zeroed(record):
            raise MissingValueError(
                f"record {index}: the model produced no finite prediction; it cannot impute "
                "the null value(s) in this record",
                details=details,
            )
        raise PredictionNotFiniteError(
            f"record {index}: the model's output overflowed (it is not a finite number); "
            "the record's values are too large in magnitude for this model",
            details=details,
        )


def _zero_nulls(record: Any) -> Any:
    if isinstance(record, dict):
        return {key: 0.0 if value is None else value for key, value in record.items()}
    if isinstance(record, list):
        return [0.0 if value is None else value for value in record]
    return 0.0 if record is None else record


def _has_null(record: Any) -> bool:
    if isinstance(record, dict):
        return any(value is None for value in record.values())
    if isinstance(record, list):
        return any(value is None for value in record)
    return record is None  # a bare value (one-feature models)


MAX_ECHOED_RECORD_BYTES = 1000
"""A larger record is echoed in error details as a shortened repr."""


def _bounded_value(record: Any) -> Any:
    try:
        size = len(orjson.dumps(record))
    except TypeError:
        size = MAX_ECHOED_RECORD_BYTES + 1
    return record if size <= MAX_ECHOED_RECORD_BYTES else preview(record)


@dataclass(frozen=True)
class Snapshot:
    serving: ServingModel | None
    next_check: float
    error: MlsysError | None = None
    candidate: ServingModel | None = None
    """The rollout's candidate, loaded (``None``: no rollout, or it failed to load)."""
    rollout: Rollout | None = None

    def pick(self, request_id: str) -> tuple[ServingModel, ServingModel | None]:
        """``(model that answers, model that shadows it or None)`` for one request."""
        serving = self.result()
        candidate, rollout = self.candidate, self.rollout
        if candidate is None or rollout is None:
            return serving, None
        if rollout.mode == "shadow":
            return serving, candidate
        assert rollout.fraction is not None
        return (candidate if routes_to_candidate(request_id, rollout.fraction) else serving), None

    def result(self) -> ServingModel:
        if self.serving is not None:
            return self.serving
        raise self.error or NoChampionError("no champion is loaded")


class ChampionTracker:
    """The current champion of one registry, refreshed at most every ``refresh_seconds``."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        refresh_seconds: float,
        clock: Clock = time.monotonic,
        on_load: Callable[[ServingModel, float], None] | None = None,
        traced: Callable[[str], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.registry = registry
        self._traced = traced
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._on_load = on_load
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def current(self) -> ServingModel:
        """The champion to serve; raises ``NoChampionError`` / ``ModelUnavailableError``."""
        return self._fresh().result()

    def for_request(self, request_id: str) -> tuple[ServingModel, ServingModel | None]:
        """The model that answers ``request_id`` and the shadow candidate, if any."""
        return self._fresh().pick(request_id)

    def answering_version(self, request_id: str) -> str | None:
        """Which loaded version answers ``request_id``, without touching the registry."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.serving is None:
            return None
        return snapshot.pick(request_id)[0].version

    def _fresh(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.next_check:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or self._clock() >= snapshot.next_check:
                snapshot = self._refresh(snapshot)
                self._snapshot = snapshot
        return snapshot

    def loaded(self) -> ServingModel | None:
        """The model in memory now, without touching the registry."""
        snapshot = self._snapshot
        return snapshot.serving if snapshot else None

    def rollout(self) -> tuple[Rollout | None, bool]:
        """The rollout being served now (without touching the registry), and whether its
        candidate is loaded (``False``: it failed to load, the champion answers alone)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.rollout is None:
            return None, False
        return snapshot.rollout, snapshot.candidate is not None

    def _refresh(self, previous: Snapshot | None) -> Snapshot:
        snapshot, pointer = self._refresh_champion(previous.serving if previous else None)
        if pointer is None or snapshot.serving is None or snapshot.serving.etag != pointer.etag:
            # Pointer unchanged, unreadable, or its champion failed to load: keep the
            # rollout as it was (it goes with the champion still being served).
            if previous is None or snapshot.serving is None:
                return snapshot
            return replace(snapshot, candidate=previous.candidate, rollout=previous.rollout)
        pointer_rollout = pointer.rollout
        if pointer_rollout is None:
            return snapshot
        candidate = previous.candidate if previous else None
        if candidate is None or candidate.version != pointer_rollout.candidate:
            candidate = self._load_candidate(pointer_rollout)
        return replace(snapshot, candidate=candidate, rollout=pointer_rollout)

    def _load_candidate(self, rollout: Rollout) -> ServingModel | None:
        try:
            return self._load_version(rollout.candidate, etag=None)
        except Exception as exc:  # the champion keeps answering; never a failed request
            logger.error(f"rollout candidate {rollout.candidate} could not be loaded: {exc}")
            return None

    def _refresh_champion(
        self, current: ServingModel | None
    ) -> tuple[Snapshot, ChampionPointer | None]:
        """The champion snapshot and the pointer, if one was (re-)read."""
        next_check = self._clock() + self.refresh_seconds
        try:
            pointer = self.registry.champion_if_changed(current.etag if current else None)
        except NoChampionError as exc:
            return Snapshot(None, next_check, exc), None
        except MlsysError as exc:
            if current is not None:
                logger.warning(f"champion re-check failed; serving {current.version}: {exc}")
            error = ModelUnavailableError(f"cannot read the champion: {exc}")
            return Snapshot(current, next_check, None if current else error), None
        if pointer is None:
            return Snapshot(current, next_check), None
        if current is not None and pointer.version == current.version:
            return Snapshot(replace(current, etag=pointer.etag), next_check), pointer
        return self._swap_to(pointer, current, next_check), pointer

    def _swap_to(
        self, pointer: ChampionPointer, current: ServingModel | None, next_check: float
    ) -> Snapshot:
        try:
            return Snapshot(self._load(pointer), next_check)
        except Exception as exc:  # any load failure is a 503, never a crash
            error = ModelUnavailableError(
                f"champion {pointer.version} could not be loaded: {exc}",
                details={"version": pointer.version},
            )
            if current is None:
                return Snapshot(None, next_check, error)
            logger.error(f"{error.message}; still serving {current.version}")
            return Snapshot(current, next_check)

    def _load(self, pointer: ChampionPointer) -> ServingModel:
        return self._load_version(pointer.version, etag=pointer.etag)

    def _load_version(self, version: str, *, etag: str | None) -> ServingModel:
        started = time.perf_counter()
        with self._traced("model_load") if self._traced else nullcontext():
            loaded = self.registry.load(version)
            serving = ServingModel.from_loaded(loaded, etag=etag)
        if self._on_load is not None:
            self._on_load(serving, time.perf_counter() - started)
        return serving
