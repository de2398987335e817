"""File scoring: ``mlsys predict`` on a large Parquet file against the bare minimum.

``python -m benchmarks scoring``. A LightGBM champion (binary classifier, trained by
``mlsys train --models lightgbm`` on 50,000 rows of the 15 numeric + 5 categorical mixed
data) scores :data:`ROWS` rows of the same kind of data (10,000,000 by default;
``SCORING_BENCH_ROWS`` sets fewer for a quick run), Parquet to Parquet:

* ``mlsys predict`` as a user runs it: a fresh process, timed end to end (start-up, model
  load, reading, validating, encoding, scoring, writing the prediction and two probability
  columns);
* the baseline, in its own fresh process: only the pyarrow read of the same batches, the
  ``InferenceSession.run`` calls on feeds built beforehand (outside the clock, categories as
  shared string objects, the cheapest form for onnxruntime) and the pyarrow write of the
  same output columns (built outside the clock) -- the time no file scorer can avoid.

Both use one onnxruntime session with the same options and thread count. Peak memory is
each child's own ``ru_maxrss``. Targets: ``mlsys predict`` within 2x the baseline's time,
and peak RSS < 2 GB whatever the row count (chunked reads and writes).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.training import Measured, gib, measure, mixed_frame, train_argv, verdict

ROWS = int(os.environ.get("SCORING_BENCH_ROWS", "10000000"))
TRAIN_ROWS = 50_000
WRITE_CHUNK_ROWS = 1_000_000
TIME_RATIO_TARGET = 2.0
MEMORY_TARGET_BYTES = 2 * 1024**3

BASELINE = r"""
import json, os, sys, time
import numpy as np
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
from mlsys.contract import MISSING_CATEGORY, FeedEncoder, create_session, output_names
from mlsys.registry import ModelRegistry
from lambda_inference.scoring import CHUNK_ROWS

registry = ModelRegistry.open(sys.argv[1], model_name="default")
version = registry.require_champion().version
card = registry.card(version)
session = create_session(registry.model_bytes(version),
                         intra_op_threads=len(os.sched_getaffinity(0)))
encoder = FeedEncoder(card.features, layout=card.input_layout)
numeric = [f.name for f in card.features if f.kind == "numeric"]
categorical = [f.name for f in card.features if f.kind == "categorical"]
classes = pa.array(list(card.classes))
outputs = output_names(card)
clock = {"read": 0.0, "run": 0.0, "write": 0.0}
writer = None
batches = pq.ParquetFile(sys.argv[2], pre_buffer=False).iter_batches(batch_size=CHUNK_ROWS)
rows = 0
while True:
    started = time.perf_counter()
    batch = next(batches, None)
    clock["read"] += time.perf_counter() - started
    if batch is None:
        break
    rows += batch.num_rows
    # Feeds built outside the clock. Categories as one shared str object per distinct value
    # (onnxruntime converts those faster than a fresh object per cell).
    matrix = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False) for n in numeric])
    codes = np.empty((batch.num_rows, len(categorical)), dtype=object)
    for j, name in enumerate(categorical):
        encoded = pc.dictionary_encode(pc.fill_null(batch.column(name), MISSING_CATEGORY))
        values = np.array(encoded.dictionary.to_pylist(), dtype=object)
        codes[:, j] = values[encoded.indices.to_numpy(zero_copy_only=False)]
    feeds = encoder.from_encoded(matrix.astype(np.float32), codes)
    started = time.perf_counter()
    labels, probabilities = session.run(outputs, feeds)
    clock["run"] += time.perf_counter() - started
    table = pa.table({"prediction": classes.take(pa.array(labels.reshape(-1))),
                      **{f"probability_{c}": probabilities[:, i].astype(np.float64)
                         for i, c in enumerate(card.classes)}})
    started = time.perf_counter()
    writer = writer or pq.ParquetWriter(sys.argv[3], table.schema)
    writer.write_table(table)
    clock["write"] += time.perf_counter() - started
writer.close()
print(json.dumps({"rows": rows, **clock}))
"""


def write_input(path: Path, rows: int) -> None:
    """The mixed data without its target, written 1M rows at a time."""
    writer: pq.ParquetWriter | None = None
    for index, start in enumerate(range(0, rows, WRITE_CHUNK_ROWS)):
        chunk = mixed_frame(min(WRITE_CHUNK_ROWS, rows - start), "binary", seed=index + 1)
        table = pa.Table.from_pandas(chunk.drop(columns=["y"]), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def bench(workdir: Path) -> bool:
    train = workdir / "train.parquet"
    mixed_frame(TRAIN_ROWS, "binary").to_parquet(train, index=False)
    trained = measure(
        train_argv(workdir, "--data", str(train), "--target", "y", "--models", "lightgbm")
    )
    version = json.loads(trained.stdout)["version"]
    data = workdir / "score.parquet"
    started = time.perf_counter()
    write_input(data, ROWS)
    size = data.stat().st_size
    print(
        f"\n{ROWS:,} rows x 20 columns (15 numeric, 5 categorical), Parquet {gib(size)} "
        f"(written in {time.perf_counter() - started:.0f} s); LightGBM champion {version}"
    )
    registry = str(workdir / "registry")
    baseline_run = measure(
        [sys.executable, "-c", BASELINE, registry, str(data), str(workdir / "baseline.parquet")]
    )
    clock = json.loads(baseline_run.stdout)
    baseline = clock["read"] + clock["run"] + clock["write"]
    predict = measure(
        [
            *train_argv(workdir)[:3],
            "predict",
            "--json",
            "--registry",
            registry,
            "--log",
            f"sqlite:///{workdir / 'log.sqlite3'}",
            "--data",
            str(data),
            "--out",
            str(workdir / "scores.parquet"),
        ]
    )
    result = json.loads(predict.stdout)
    assert result["rows_written"] == ROWS == clock["rows"], (result, clock)
    return report(predict, baseline_run, clock, baseline)


def report(
    predict: Measured, baseline_run: Measured, clock: dict[str, float], baseline: float
) -> bool:
    ratio = predict.seconds / baseline
    print(
        f"  mlsys predict (whole process): {predict.seconds:7.1f} s  "
        f"{ROWS / predict.seconds:12,.0f} rows/s  peak RSS {gib(predict.peak_rss_bytes)}"
    )
    print(
        f"  baseline read+run+write:       {baseline:7.1f} s  {ROWS / baseline:12,.0f} rows/s  "
        f"peak RSS {gib(baseline_run.peak_rss_bytes)}  (read {clock['read']:.1f} s, run "
        f"{clock['run']:.1f} s, write {clock['write']:.1f} s)"
    )
    ok_time = ratio <= TIME_RATIO_TARGET
    ok_memory = predict.peak_rss_bytes < MEMORY_TARGET_BYTES
    print(f"  ratio / baseline: {ratio:.2f}x time")
    print(f"  target: <= {TIME_RATIO_TARGET:g}x the baseline's time -> {verdict(ok_time)}")
    print(f"  target: peak RSS < {gib(MEMORY_TARGET_BYTES)} -> {verdict(ok_memory)}")
    return ok_time and ok_memory


def main() -> int:
    print("note: the machine may be shared with other work; compare with the same-run baseline")
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-scoring-") as tmp:
        return 0 if bench(Path(tmp)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
