"""Training benchmarks: a full `python -m training_job` run, measured in child processes.

1. Default data (scikit-learn diabetes): train + evaluate + export + promote, wall time
   of the whole process (imports included). Baseline: a child process that loads the
   same data and fits one plain scikit-learn Ridge.
2. 1,000,000 rows x 20 features (synthetic, Parquet): target < 5 minutes wall time and
   < 4 GB peak RSS for the whole run. Baseline: a child process that reads the same
   file and fits one plain scikit-learn Ridge on all rows.

Peak memory is each child's own ``ru_maxrss`` from ``os.wait4``. Exit status 1 when a
target is missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIG_ROWS = 1_000_000
BIG_FEATURES = 20
BIG_TIME_TARGET_SECONDS = 300.0
BIG_MEMORY_TARGET_BYTES = 4 * 1024**3
DEFAULT_TIME_TARGET_SECONDS = 10.0

BASELINE = """
import sys, time
import pandas as pd
from sklearn.linear_model import Ridge
started = time.perf_counter()
if sys.argv[1] == "diabetes":
    from sklearn.datasets import load_diabetes
    frame = load_diabetes(as_frame=True).frame
    target = "target"
else:
    frame = pd.read_parquet(sys.argv[1])
    target = "y"
Ridge().fit(frame.drop(columns=[target]).to_numpy(), frame[target].to_numpy())
print(time.perf_counter() - started)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_bytes: int
    stdout: str


def measure(argv: list[str]) -> Measured:
    """Run a child process: its wall time and its own peak resident set size (wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({child.returncode}): {stderr.strip()[-2000:]}")
    return Measured(seconds, usage.ru_maxrss * 1024, stdout)  # Linux reports KiB


def train_argv(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training_job",
        "--no-emf",
        "--json",
        "--registry",
        str(workdir / "registry"),
        "--log",
        f"sqlite:///{workdir / 'log.sqlite3'}",
        *extra,
    ]


def synthetic(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BIG_ROWS, BIG_FEATURES))
    y = (
        2 * x[:, 0]
        + np.sin(2 * x[:, 1])
        + x[:, 2] * x[:, 3]
        + np.where(x[:, 4] > 0, 1.0, -1.0)
        + 0.5 * rng.normal(size=BIG_ROWS)
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(BIG_FEATURES)])
    frame["y"] = y
    frame.to_parquet(path)


def gib(value: int) -> str:
    return f"{value / 1024**3:.2f} GiB"


def bench_default(workdir: Path) -> bool:
    baseline = measure([sys.executable, "-c", BASELINE, "diabetes"])
    runs = [measure(train_argv(workdir)) for _ in range(3)]
    results = [json.loads(r.stdout) for r in runs]
    first = runs[0]
    print("default data (diabetes, 442 rows x 10 features), whole process incl. imports:")
    for run, result in zip(runs, results, strict=True):
        print(
            f"  mlsys train: {run.seconds:6.2f} s  peak RSS {gib(run.peak_rss_bytes)}  "
            f"{result['estimator']:<17} {result['metric']}={result['challenger_score']:.4f} "
            f"promoted={result['promoted']}  (in-process {result['duration_seconds']:.2f} s)"
        )
    print(
        f"  baseline (load + one Ridge fit): {baseline.seconds:6.2f} s  "
        f"peak RSS {gib(baseline.peak_rss_bytes)}"
    )
    print(
        f"  ratio first run / baseline: {first.seconds / baseline.seconds:.1f}x time, "
        f"{first.peak_rss_bytes / baseline.peak_rss_bytes:.1f}x memory"
    )
    ok = results[0]["promoted"] and first.seconds <= DEFAULT_TIME_TARGET_SECONDS
    print(
        f"  target: first run promoted within {DEFAULT_TIME_TARGET_SECONDS:g} s -> "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return bool(ok)


def bench_large(workdir: Path) -> bool:
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "synthetic.parquet"
    started = time.perf_counter()
    synthetic(data)
    print(
        f"\nsynthetic data: {BIG_ROWS:,} rows x {BIG_FEATURES} features "
        f"({data.stat().st_size / 1024**2:.0f} MiB Parquet, generated in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    baseline = measure([sys.executable, "-c", BASELINE, str(data)])
    run = measure(train_argv(workdir, "--data", str(data), "--target", "y"))
    result = json.loads(run.stdout)
    timings = result["timings"]
    print(
        f"  mlsys train: {run.seconds:6.1f} s  peak RSS {gib(run.peak_rss_bytes)}  "
        f"{result['estimator']} {result['metric']}={result['challenger_score']:.4f} "
        f"promoted={result['promoted']}"
    )
    print(
        "  phases: "
        + ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s" for k, v in timings.items())
    )
    for note in result["notes"]:
        print(f"  note: {note}")
    print(
        f"  baseline (read Parquet + one Ridge fit on all rows): {baseline.seconds:6.1f} s  "
        f"peak RSS {gib(baseline.peak_rss_bytes)}"
    )
    print(
        f"  ratio / baseline: {run.seconds / baseline.seconds:.1f}x time, "
        f"{run.peak_rss_bytes / baseline.peak_rss_bytes:.1f}x memory"
    )
    ok = run.seconds < BIG_TIME_TARGET_SECONDS and run.peak_rss_bytes < BIG_MEMORY_TARGET_BYTES
    print(
        f"  target: < {BIG_TIME_TARGET_SECONDS:g} s and < {gib(BIG_MEMORY_TARGET_BYTES)} -> "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-") as tmp:
        default_ok = bench_default(Path(tmp) / "default")
        large_ok = bench_large(Path(tmp) / "large")
    return 0 if default_ok and large_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
