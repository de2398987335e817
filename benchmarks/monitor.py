"""Monitor benchmark: ``mlsys monitor`` over a 1,000,000-event window, in a child process.

Setup (not timed): train a small model (8 numeric features + 1 categorical) and write
1,000,000 ``/stream``-shaped prediction events (one record each, the worst case: one
event per record) plus feedback for 10,000 of them into a SQLite system log.

Measured: wall time and peak RSS of ``mlsys monitor --json --html`` over the window
(imports, the registry read, two streaming passes, PSI, the join, the report).
Baseline: a child process that only reads every event body of the window from the
same SQLite file and parses it with orjson -- the floor of any monitor that reads
the log. Targets (exit status 1 when missed): under 15 minutes (Lambda's limit) and
under 1 GiB peak RSS (the monitor function's memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.training import ROOT, measure
from mlsys.eventlog import Event, SqliteEventLog
from mlsys.registry import ModelRegistry

EVENTS = 1_000_000
FEEDBACK = 10_000
TIME_TARGET_SECONDS = 900.0
MEMORY_TARGET_BYTES = 1024**3
NUMERIC = 8
CITIES = ("Paris", "Lyon", "Nice", "Lille", "Brest")

BASELINE = """
import sqlite3, sys, orjson
conn = sqlite3.connect(sys.argv[1])
cursor = conn.execute("SELECT body FROM events WHERE type IN ('prediction', 'feedback')")
code = n = 0
while rows := cursor.fetchmany(1000):
    for (body,) in rows:
        orjson.loads(body)
        n += 1
print(n)
"""

PEAK = (
    "import sys\n"
    "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "print('peak_kib', peak.split()[1], file=sys.stderr)\n"
)
"""Appended to each measured child: its own peak RSS. ``wait4``'s ``ru_maxrss`` would
include the parent's size at fork; ``VmHWM`` belongs to the exec'd process alone."""
MONITOR = "import sys\nfrom mlsys.cli import main\ncode = main(sys.argv[1:])\n"


@dataclass(frozen=True)
class Peak:
    seconds: float
    peak_rss_bytes: int
    stdout: str


def measure_peak(script: str, *args: str) -> Peak:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script + PEAK + "sys.exit(code)\n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {done.stderr.strip()[-2000:]}")
    kib = int(done.stderr.strip().splitlines()[-1].split()[1])
    return Peak(seconds, kib * 1024, done.stdout)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, NUMERIC))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(NUMERIC)])
    frame["city"] = rng.choice(CITIES, size=rows)
    frame["y"] = x[:, 0] * 2 + np.where(frame["city"] == "Paris", 1.0, 0.0) + rng.normal(size=rows)
    return frame


def _train(workdir: Path) -> str:
    data = workdir / "train.csv"
    _frame(5000, 0).to_csv(data, index=False)
    measure(
        [
            sys.executable,
            "-m",
            "mlsys",
            "train",
            "--no-emf",
            "--registry",
            str(workdir / "registry"),
            "--log",
            f"sqlite:///{workdir / 'train-log.sqlite3'}",
            "--data",
            str(data),
            "--target",
            "y",
            "--models",
            "linear",
        ]
    )
    return (
        ModelRegistry.open(str(workdir / "registry"), model_name="default")
        .require_champion()
        .version
    )


def _fill_log(path: Path | str, version: str) -> None:
    log = SqliteEventLog(path)
    frame = _frame(EVENTS, 1)
    rows = json.loads(frame.drop(columns=["y"]).to_json(orient="records"))
    outputs = frame["y"].to_numpy()
    chunk: list[Event] = []
    for i, row in enumerate(rows):
        chunk.append(
            Event(
                type="prediction",
                request_id=f"r-{i}",
                model_version=version,
                data={
                    "endpoint": "stream",
                    "records": 1,
                    "inputs": row,
                    "outputs": float(outputs[i]),
                    "latency_ms": 0.3,
                },
            )
        )
        if len(chunk) == 10_000:
            log.append_many(chunk)
            chunk = []
    items = [
        {"request_id": f"r-{i}", "index": 0, "actual": float(outputs[i])} for i in range(FEEDBACK)
    ]
    for start in range(0, FEEDBACK, 200):
        chunk.append(
            Event(
                type="feedback", model_version=version, data={"items": items[start : start + 200]}
            )
        )
    log.append_many(chunk)
    log.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-monitor-") as tmp:
        workdir = Path(tmp)
        version = _train(workdir)
        log_path = workdir / "log.sqlite3"
        # In a child process: a forked child's peak RSS starts from its parent's, so the
        # parent must stay small for the measurements below to be the children's own.
        fill = "import sys; from benchmarks.monitor import _fill_log; _fill_log(*sys.argv[1:])"
        measure([sys.executable, "-c", fill, str(log_path), version])
        size_mb = log_path.stat().st_size / 1e6
        print(
            f"  {EVENTS:,} prediction events + {FEEDBACK:,} feedback items, SQLite {size_mb:.0f} MB"
        )
        baseline = measure_peak(BASELINE, str(log_path))
        run = measure_peak(
            MONITOR,
            *[
                "monitor",
                "--json",
                "--since",
                "1d",
                "--registry",
                str(workdir / "registry"),
                "--log",
                f"sqlite:///{log_path}",
                "--html",
                str(workdir / "report.html"),
            ],
        )
    report = json.loads(run.stdout)
    (entry,) = report["versions"]
    gib, mib = 1024**3, 1024**2
    print(
        f"  baseline (read + parse every event body): {baseline.seconds:6.1f} s  "
        f"peak RSS {baseline.peak_rss_bytes / mib:.0f} MiB"
    )
    print(
        f"  mlsys monitor --json --html:               {run.seconds:6.1f} s  "
        f"peak RSS {run.peak_rss_bytes / mib:.0f} MiB  "
        f"({entry['records']:,} records, quality n={entry['quality']['n']})"
    )
    print(
        f"  ratio / baseline: {run.seconds / baseline.seconds:.1f}x time, "
        f"{run.peak_rss_bytes / baseline.peak_rss_bytes:.1f}x memory; "
        f"per 1M events {run.seconds:.0f} s (target < {TIME_TARGET_SECONDS:.0f} s, "
        f"< {MEMORY_TARGET_BYTES / gib:.0f} GiB)"
    )
    ok = run.seconds < TIME_TARGET_SECONDS and run.peak_rss_bytes < MEMORY_TARGET_BYTES
    ok = ok and entry["records"] == EVENTS and entry["quality"]["n"] == FEEDBACK
    return 0 if ok else 1
