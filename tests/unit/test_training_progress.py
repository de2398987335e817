"""What `mlsys train` tells while it works: lines per phase, the bar, the leaderboard."""

from __future__ import annotations

import io
import re
import threading

from training_job.progress import (
    StreamProgress,
    candidate_line,
    format_seconds,
    leaderboard_lines,
    phase_line,
)
from training_job.search import CandidateResult


class StepClock:
    """A clock the test moves by hand (no wall-clock time in any assertion)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_each_event_is_one_line_stamped_with_the_time_since_the_start() -> None:
    stream, clock = io.StringIO(), StepClock()
    progress = StreamProgress(stream, clock=clock)
    progress.step("loading data.csv")
    clock.now += 3.25
    progress.search_started(
        candidates=("linear", "lightgbm"),
        search_rows=20_000,
        training_rows=800_000,
        folds=3,
        budget_seconds=120,
        metric="r2",
    )
    progress.candidate_started("linear")
    clock.now += 2.0
    progress.candidate_finished(
        CandidateResult(
            name="linear",
            status="ok",
            cv_score=0.8123,
            cv_scores=(0.81, 0.8123, 0.8146),
            fit_seconds=0.4,
            fold_rows=13_333,
        )
    )
    assert lines_of(stream) == [
        "[    0.0s] loading data.csv",
        "[    3.2s] search: 2 candidate(s) (linear, lightgbm), 3-fold CV on a sample of "
        "20,000 of 800,000 training rows, time budget 2m00s",
        "[    5.2s] candidate linear: CV r2 = 0.8123 ± 0.0023 (3 folds of 13,333 rows, "
        "0.40s per fit, 2.0s)",
    ]


def test_a_candidate_that_cannot_win_says_why() -> None:
    too_slow = CandidateResult(
        name="random_forest",
        status="too_slow",
        cv_score=0.95,
        cv_scores=(0.95,),
        fit_seconds=22.8,
        fold_rows=13_333,
        detail="final fit on 900,000 rows projected at 3572s, over the 300s limit",
    )
    skipped = CandidateResult(
        name="gradient_boosting", status="skipped", detail="search time budget used up"
    )
    failed = CandidateResult(name="lightgbm", status="failed", detail="ValueError: bad input")
    assert candidate_line(too_slow, metric="r2", seconds=23.5) == (
        "candidate random_forest: CV r2 = 0.9500 (1 fold of 13,333 rows, 22.8s per fit, "
        "23.5s); cannot win, too slow: final fit on 900,000 rows projected at 3572s, over "
        "the 300s limit"
    )
    assert candidate_line(skipped, metric="r2", seconds=None) == (
        "candidate gradient_boosting skipped: search time budget used up"
    )
    assert candidate_line(failed, metric="r2", seconds=1.0) == (
        "candidate lightgbm failed: ValueError: bad input"
    )


def test_the_leaderboard_ranks_by_the_metrics_own_direction_and_marks_the_winner() -> None:
    candidates = [
        {"name": "linear", "status": "ok", "cv_score": 31.0, "fit_seconds": 0.1, "detail": ""},
        {"name": "lightgbm", "status": "ok", "cv_score": 24.5, "fit_seconds": 2.0, "detail": ""},
        {
            "name": "random_forest",
            "status": "too_slow",
            "cv_score": 22.0,
            "fit_seconds": 9.0,
            "detail": "projected at 3572s",
        },
        {"name": "gb", "status": "skipped", "cv_score": None, "fit_seconds": None, "detail": "x"},
    ]
    # rmse: lower is better, so the forest ranks first although it cannot win.
    board = leaderboard_lines(candidates, winner="lightgbm", metric="rmse")
    assert [line.split()[:2] for line in board[1:]] == [
        ["1", "random_forest"],
        ["2", "lightgbm"],
        ["3", "linear"],
        ["-", "gb"],
    ]
    assert board[1].endswith("too_slow: projected at 3572s")
    assert board[2].endswith("winner")
    assert board[3].endswith("lower CV score")
    assert board[0].split() == ["#", "model", "CV", "rmse", "per", "fit", "outcome"]


def test_the_phase_times_read_in_the_order_the_phases_ran() -> None:
    timings = {"search_seconds": 45.8, "load_seconds": 8.3, "final_fit_seconds": 130.0}
    assert phase_line(timings, total_seconds=190.2) == (
        "phases: load 8.3s, search 45.8s, final fit 2m10s (total 3m10s)"
    )
    assert [format_seconds(s) for s in (0.042, 9.96, 59.4, 61.0)] == [
        "0.04s",
        "10.0s",
        "59.4s",
        "1m01s",
    ]


def test_finished_prints_the_leaderboard_and_the_phases_last() -> None:
    stream = io.StringIO()
    StreamProgress(stream, clock=StepClock()).finished(
        candidates=[{"name": "linear", "status": "ok", "cv_score": 0.5, "fit_seconds": 0.1}],
        winner="linear",
        metric="r2",
        timings={"load_seconds": 1.0},
        total_seconds=2.0,
    )
    lines = lines_of(stream)
    assert lines[0] == "candidates:"
    assert lines[2].split() == ["1", "linear", "0.5000", "0.10s", "winner"]
    assert lines[-1] == "phases: load 1.0s (total 2.0s)"


def test_a_pipe_gets_plain_lines_and_a_terminal_gets_a_bar() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, terminal = io.StringIO(), Terminal()
    for stream in (plain, terminal):
        progress = StreamProgress.for_stream(stream)
        progress.search_started(
            candidates=("linear",),
            search_rows=100,
            training_rows=100,
            folds=5,
            budget_seconds=60,
            metric="r2",
        )
        progress.step("a line while the bar runs")
        progress.final_fit_started("linear", rows=100, projected_seconds=None)
        progress.final_fit_finished(0.5)
        progress.close()
    assert "\r" not in plain.getvalue()
    assert [re.sub(r"^\[ *[\d.]+s\] ", "", line) for line in lines_of(plain)] == [
        "search: 1 candidate(s) (linear), 5-fold CV on 100 training rows, time budget 1m00s",
        "a line while the bar runs",
        "final fit: linear on 100 rows",
        "final fit done in 0.50s",
    ]
    drawn = terminal.getvalue()
    assert "search: " in drawn
    assert "ETA" in drawn
    assert "a line while the bar runs\n" in drawn
    assert "final fit done in 0.50s\n" in drawn
    # close() stops the thread that redraws the bar.
    assert not [t for t in threading.enumerate() if t.name == "mlsys-progress"]
