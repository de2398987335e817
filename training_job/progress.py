"""What a training run tells while it works: one line per phase as it happens, a
progress bar with an ETA on a terminal, and at the end a leaderboard and the phase times.

A run is handed a :class:`TrainingProgress` (no global state): :class:`SilentProgress`
says nothing (the default, for library callers and tests), :class:`StreamProgress`
writes to a stream (``mlsys train`` passes stderr, so stdout keeps ``--json`` clean).
On a terminal the search and the final fit get a bar whose ETA runs against the time
budget (the search) or the projected fit time (the final fit); a daemon thread redraws
it, since a fit is one blocking call. Anywhere else (AWS Batch's CloudWatch logs, a
pipe, a file) the same events are plain timestamped lines and no thread runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TextIO

from mlsys.metrics import METRICS
from training_job.search import CandidateResult, SearchObserver, SilentObserver

PHASES = (
    ("load_seconds", "load"),
    ("checks_seconds", "checks"),
    ("search_seconds", "search"),
    ("final_fit_seconds", "final fit"),
    ("export_seconds", "export"),
    ("evaluate_seconds", "evaluate"),
    ("publish_seconds", "publish"),
)
"""Timing key -> the phase's name in the summary, in the order the phases run."""

BAR_REFRESH_SECONDS = 0.5


class TrainingProgress(SearchObserver, Protocol):
    """Everything a run reports; the search's events come from :class:`SearchObserver`."""

    def step(self, message: str) -> None:
        """One phase's line, as it happens."""

    def finished(
        self,
        *,
        candidates: Sequence[Mapping[str, Any]],
        winner: str | None,
        metric: str,
        timings: Mapping[str, float],
        total_seconds: float,
    ) -> None:
        """The end of a completed run: the leaderboard and the phase times."""

    def close(self) -> None:
        """Stop drawing (idempotent; called whether or not the run completed)."""


class SilentProgress(SilentObserver):
    """Reports nothing (``--quiet``, tests, library callers)."""

    def step(self, message: str) -> None:
        return None

    def finished(
        self,
        *,
        candidates: Sequence[Mapping[str, Any]],
        winner: str | None,
        metric: str,
        timings: Mapping[str, float],
        total_seconds: float,
    ) -> None:
        return None

    def close(self) -> None:
        return None


def format_seconds(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``: short, and readable at a glance."""
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def candidate_line(result: CandidateResult, *, metric: str, seconds: float | None) -> str:
    """A finished candidate, as one sentence: its CV score and time, or why it has none."""
    if result.status == "skipped":
        return f"candidate {result.name} skipped: {result.detail}"
    if result.status == "failed" or result.cv_score is None:
        return f"candidate {result.name} failed: {result.detail}"
    folds = len(result.cv_scores)
    spread = f" ± {_spread(result.cv_scores):.4f}" if folds > 1 else ""
    took = f", {format_seconds(seconds)}" if seconds is not None else ""
    per_fold = format_seconds(result.fit_seconds or 0.0)
    line = (
        f"candidate {result.name}: CV {metric} = {result.cv_score:.4f}{spread} "
        f"({folds} fold{'s' if folds != 1 else ''} of {result.fold_rows:,} rows, "
        f"{per_fold} per fit{took})"
    )
    if result.status == "too_slow":
        return f"{line}; cannot win, too slow: {result.detail}"
    if result.status == "partial":
        return f"{line}; {result.detail}"
    return line


def _spread(scores: Sequence[float]) -> float:
    mean = sum(scores) / len(scores)
    return float((sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)) ** 0.5)


def leaderboard_lines(
    candidates: Sequence[Mapping[str, Any]], *, winner: str | None, metric: str
) -> list[str]:
    """The candidates best first (by CV score in the metric's direction), then those with
    no score; the winner is marked, and every other line says why it did not win."""
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    scored = [c for c in candidates if c.get("cv_score") is not None]
    scored.sort(key=lambda c: float(c["cv_score"]), reverse=higher)
    unscored = [c for c in candidates if c.get("cv_score") is None]
    width = max((len(str(c["name"])) for c in candidates), default=4)
    lines = [f"  {'#':>2}  {'model':<{width}}  {'CV ' + metric:>12}  {'per fit':>8}  outcome"]
    for rank, candidate in enumerate([*scored, *unscored], start=1):
        score = candidate.get("cv_score")
        fit = candidate.get("fit_seconds")
        shown_rank = str(rank) if score is not None else "-"
        lines.append(
            f"  {shown_rank:>2}  {candidate['name']:<{width}}  "
            f"{'-' if score is None else f'{score:.4f}':>12}  "
            f"{'-' if fit is None else format_seconds(fit):>8}  "
            f"{_outcome(candidate, winner)}"
        )
    return lines


def _outcome(candidate: Mapping[str, Any], winner: str | None) -> str:
    if candidate["name"] == winner:
        return "winner"
    status, detail = candidate.get("status"), candidate.get("detail") or ""
    if status in ("ok", "partial"):
        return "lower CV score" + (f" ({detail})" if detail else "")
    return f"{status}: {detail}" if detail else str(status)


def phase_line(timings: Mapping[str, float], *, total_seconds: float) -> str:
    """``phases: load 3.1s, search 30.2s, ... (total 80.1s)``."""
    parts = [f"{name} {format_seconds(timings[key])}" for key, name in PHASES if key in timings]
    return f"phases: {', '.join(parts)} (total {format_seconds(total_seconds)})"


class _TimeBar:
    """A tqdm bar whose progress is elapsed time against an expected duration (``None``:
    unknown, so elapsed time only), redrawn by a daemon thread until :meth:`close`."""

    def __init__(
        self,
        *,
        description: str,
        expected_seconds: float | None,
        stream: TextIO,
        clock: Callable[[], float],
    ) -> None:
        from tqdm import tqdm  # noqa: PLC0415 - only a terminal run draws a bar

        bar_format = (
            "{desc}: {percentage:3.0f}%|{bar}| {elapsed} of ~{total_time}, ETA {remaining}"
            if expected_seconds
            else "{desc}: {elapsed}"
        )
        self._bar = tqdm(
            total=expected_seconds or None,
            desc=description,
            file=stream,
            leave=False,
            dynamic_ncols=True,
            # Elapsed, total and ETA all as tqdm writes times (00:19 of ~00:20, ETA 00:01).
            bar_format=bar_format.replace(
                "{total_time}", tqdm.format_interval(expected_seconds or 0)
            ),
        )
        self._expected = expected_seconds
        self._clock = clock
        self._started = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="mlsys-progress", daemon=True)
        self._thread.start()

    def _redraw(self) -> None:
        while not self._stop.wait(BAR_REFRESH_SECONDS):
            elapsed = self._clock() - self._started
            # Past the expected time the bar stays full and the ETA at zero.
            self._bar.n = min(elapsed, self._expected) if self._expected else elapsed
            self._bar.refresh()

    def describe(self, description: str) -> None:
        self._bar.set_description_str(description)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._bar.close()


class StreamProgress:
    """Lines on ``stream``, each prefixed with the time since the run started; with
    ``bar`` (a terminal), a live bar during the search and the final fit."""

    def __init__(
        self, stream: TextIO, *, bar: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._bar_wanted = bar
        self._clock = clock
        self._started = clock()
        self._bar: _TimeBar | None = None
        self._candidate_started: float | None = None
        self._metric = ""

    @classmethod
    def for_stream(cls, stream: TextIO) -> StreamProgress:
        """A bar when ``stream`` is a terminal, plain lines otherwise."""
        isatty = getattr(stream, "isatty", None)
        return cls(stream, bar=bool(isatty and isatty()))

    def step(self, message: str) -> None:
        text = f"[{self._clock() - self._started:7.1f}s] {message}"
        if self._bar is not None:
            from tqdm import tqdm  # noqa: PLC0415

            tqdm.write(text, file=self._stream)  # clears the bar, writes, redraws it
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def search_started(
        self,
        *,
        candidates: Sequence[str],
        search_rows: int,
        training_rows: int,
        folds: int,
        budget_seconds: float,
        metric: str,
    ) -> None:
        self._metric = metric
        rows = (
            f"{search_rows:,} training rows"
            if search_rows == training_rows
            else f"a sample of {search_rows:,} of {training_rows:,} training rows"
        )
        self.step(
            f"search: {len(candidates)} candidate(s) ({', '.join(candidates)}), {folds}-fold "
            f"CV on {rows}, time budget {format_seconds(budget_seconds)}"
        )
        self._start_bar("search", budget_seconds)

    def candidate_started(self, name: str) -> None:
        self._candidate_started = self._clock()
        if self._bar is not None:
            self._bar.describe(f"search: {name}")

    def candidate_finished(self, result: CandidateResult) -> None:
        seconds = None
        if self._candidate_started is not None and result.status != "skipped":
            seconds = self._clock() - self._candidate_started
        self._candidate_started = None
        self.step(candidate_line(result, metric=self._metric or "score", seconds=seconds))

    def final_fit_started(self, name: str, *, rows: int, projected_seconds: float | None) -> None:
        self._stop_bar()
        projected = f" (projected {format_seconds(projected_seconds)})" if projected_seconds else ""
        self.step(f"final fit: {name} on {rows:,} rows{projected}")
        self._start_bar(f"final fit: {name}", projected_seconds)

    def final_fit_finished(self, seconds: float) -> None:
        self._stop_bar()
        self.step(f"final fit done in {format_seconds(seconds)}")

    def finished(
        self,
        *,
        candidates: Sequence[Mapping[str, Any]],
        winner: str | None,
        metric: str,
        timings: Mapping[str, float],
        total_seconds: float,
    ) -> None:
        self._stop_bar()
        lines = ["candidates:"]
        lines += leaderboard_lines(candidates, winner=winner, metric=metric)
        lines.append(phase_line(timings, total_seconds=total_seconds))
        self._stream.write("\n".join(lines) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stop_bar()

    def _start_bar(self, description: str, expected_seconds: float | None) -> None:
        if self._bar_wanted:
            self._bar = _TimeBar(
                description=description,
                expected_seconds=expected_seconds,
                stream=self._stream,
                clock=self._clock,
            )

    def _stop_bar(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()
