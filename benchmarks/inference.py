"""Inference benchmarks: handler overhead, batch throughput, cold start, package size.

Everything is measured in this run, in-process and warm unless stated, next to a
baseline timed in the same run:

* /stream handler p50 vs bare ``InferenceSession.run`` on one pre-built row
  (targets: the AWS predict function as deployed -- entry point with its request
  context, stdout event line carrying the EMF metrics -- within 4x; the local
  deliveries within 10x), for each log delivery as it is deployed: ``stdout``
  with EMF metrics (the predict function on AWS; the metrics' share is
  reported), ``background`` to the local SQLite store without metrics (what
  ``mlsys serve`` runs; the local-store target) and ``sync`` SQLite, with
  the SQLite append alone reported separately, plus the background writer's sustained
  throughput next to the request rate it has to keep up with;
* /batch of 10,000 records, array and object records (targets: 1M and
  250k records/s) vs ``InferenceSession.run`` on pre-built feeds;
* cold start proxy (fresh process: import handler + load model + first
  request, median of 5; target < 500 ms) vs scikit-learn + pickle;
* Lambda package size (``.build/lambda``, target < 150 MB) vs the installed
  size of scikit-learn + SciPy.

The model is the default one: ``mlsys train`` on the diabetes data when the
training job is available, otherwise an equivalent scikit-learn pipeline
exported with skl2onnx.
"""

from __future__ import annotations

import functools
import os
import pickle
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_BUILD = ROOT / ".build" / "lambda"
STREAM_TARGET_RATIO = 10.0
AWS_TARGET_RATIO = 5.0
"""Issue 18: the AWS predict handler within 5x of ``InferenceSession.run``."""
PEER_STREAM_TARGET = 0.4
"""Issue 18: our /stream handler at most 0.4x the peer's (benchmarks.peer)."""
PEER_BATCH_TARGET = 1.5
"""Issue 18: our /batch of object records at least 1.5x the peer's rec/s on arrays."""
ARRAY_TARGET = 1_000_000
OBJECT_TARGET = 250_000
COLD_START_TARGET_MS = 500.0
PACKAGE_TARGET_MB = 150.0
BATCH_RECORDS = 10_000
WRITER_EVENTS = 20_000


def _samples(func: Callable[[], Any], *, repeat: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def _p50(func: Callable[[], Any], *, repeat: int, warmup: int = 50) -> float:
    return statistics.median(_samples(func, repeat=repeat, warmup=warmup))


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _train_default(registry_uri: str) -> str:
    """Train the default model with ``mlsys train``; fall back to skl2onnx Ridge."""
    try:
        import training_job.run  # noqa: F401, PLC0415
    except ImportError:
        pass
    else:
        result = subprocess.run(
            [sys.executable, "-m", "mlsys", "train", "--registry", registry_uri],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if result.returncode == 0:
            return "mlsys train (default diabetes model)"
        print(f"  mlsys train failed ({result.stderr.strip()[-200:]}); using skl2onnx Ridge")
    from mlsys.registry import ModelRegistry  # noqa: PLC0415
    from tests.inference_support import build_regression, publish  # noqa: PLC0415

    publish(
        ModelRegistry.open(registry_uri, model_name="default"), build_regression(version="bench")
    )
    return "skl2onnx Ridge pipeline on diabetes (training job not available)"


def _event(path: str, body: bytes) -> dict[str, Any]:
    return {
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": "bench"},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def _build_api(
    registry_uri: str, log_uri: str, *, delivery: str, stdout: Any, metrics: bool
) -> Any:
    from lambda_inference.events import StdoutSink  # noqa: PLC0415
    from lambda_inference.handler import Api  # noqa: PLC0415
    from lambda_inference.local.sink import BackgroundSink  # noqa: PLC0415
    from lambda_inference.service import InferenceService  # noqa: PLC0415
    from mlsys.eventlog import open_event_log_for  # noqa: PLC0415
    from mlsys.settings import Settings  # noqa: PLC0415

    settings = Settings(registry_uri=registry_uri, log_uri=log_uri, log_delivery=delivery)
    sink = None
    if delivery == "background":  # the service cannot build it (see InferenceService._sink_for)
        log = functools.cache(lambda: open_event_log_for(settings))
        sink = BackgroundSink(log, fallback=StdoutSink(stdout))
    return Api(
        InferenceService.from_settings(settings, emit_metrics=metrics, stdout=stdout, sink=sink)
    )


class _LambdaContext:
    function_name = "mlsys-predict"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:mlsys-predict"
    aws_request_id = "bench"


def _as_deployed(api: Any) -> Callable[[dict[str, Any]], Any]:
    """The predict entry point as Lambda calls it: request-context keys, then the handler."""
    from lambda_inference.observability import inject_request_context  # noqa: PLC0415

    entry = inject_request_context(api.handle_predict)
    context = _LambdaContext()
    return lambda event: entry(event, context)


def bench_writer_throughput(workdir: Path, data: dict[str, Any]) -> tuple[float, int]:
    """Events/s one background writer appends to SQLite when it never runs dry.

    The queue gets 20,000 prediction events as fast as ``emit`` takes them
    (back-pressure included) and the clock stops when ``flush`` confirms all
    of them are in the store. Returns the rate and the events that overflowed
    to synchronous writes (should be 0).
    """
    from lambda_inference.local.sink import BackgroundSink  # noqa: PLC0415
    from mlsys.eventlog import Event, SqliteEventLog  # noqa: PLC0415

    log = SqliteEventLog(workdir / "writer.sqlite3")
    sink = BackgroundSink(lambda: log)
    events = [
        Event(type="prediction", request_id=f"w{i}", model_version="v", data=data)
        for i in range(WRITER_EVENTS)
    ]
    start = time.perf_counter()
    for event in events:
        sink.emit(event)
    if not sink.flush(timeout=120.0):
        raise RuntimeError("the background writer did not drain 20,000 events in 120 s")
    elapsed = time.perf_counter() - start
    sink.close(timeout=10.0)
    log.close()
    with closing(sqlite3.connect(log.path)) as check:
        (stored,) = check.execute("SELECT COUNT(*) FROM events").fetchone()
    if stored != WRITER_EVENTS:
        raise RuntimeError(f"the writer stored {stored} of {WRITER_EVENTS} events")
    return WRITER_EVENTS / elapsed, sink.counters.written_synchronously


def bench_stream_and_batch(registry_uri: str, workdir: Path) -> bool:
    from lambda_inference.local.sink import BackgroundSink  # noqa: PLC0415
    from mlsys.eventlog import Event, SqliteEventLog  # noqa: PLC0415
    from mlsys.registry import ModelRegistry  # noqa: PLC0415

    registry = ModelRegistry.open(registry_uri, model_name="default")
    model = registry.load_champion()
    from sklearn.datasets import load_diabetes  # noqa: PLC0415

    frame = load_diabetes(as_frame=True).data
    names = [f.name for f in model.card.features]
    rows = frame[names].to_numpy(dtype=np.float64)
    record = dict(zip(names, rows[0].tolist(), strict=True))
    # Pre-built in the model's own input layout, by the contract's encoder.
    one_feeds = model.encoder.from_matrix(rows[:1].astype(np.float32))
    outputs = ["variable"] if not model.card.is_classifier else ["label", "probabilities"]
    session = model.session
    bare = _p50(lambda: session.run(outputs, one_feeds), repeat=3000)

    devnull = open(os.devnull, "w")  # noqa: SIM115 - EMF metric lines go here during timing
    real_stdout = sys.stdout
    sys.stdout = devnull
    try:
        # Each delivery as it is deployed: the AWS predict function prints events and
        # EMF metrics to stdout; `mlsys serve` (background or sync) emits no metrics.
        apis = {
            name: _build_api(
                registry_uri,
                f"sqlite:///{workdir}/{name}.sqlite3",
                delivery=delivery,
                stdout=devnull,
                metrics=metrics,
            )
            for name, delivery, metrics in (
                ("stdout", "stdout", True),
                ("stdout_no_metrics", "stdout", False),
                ("background", "background", False),
                ("sync", "sync", False),
            )
        }
        stream_event = _event("/stream", orjson.dumps({"data": record}))
        for api in apis.values():
            response = api.handle_predict(stream_event)
            assert response["statusCode"] == 200, response["body"]
        deployed = _as_deployed(apis["stdout"])
        stdout_samples = _samples(lambda: deployed(stream_event), repeat=3000)
        stream_stdout = statistics.median(stdout_samples)
        stream_no_metrics = _p50(
            lambda: apis["stdout_no_metrics"].handle_predict(stream_event), repeat=3000
        )
        background = apis["background"].service
        background.sink.flush(timeout=60.0)
        background_samples = _samples(
            lambda: apis["background"].handle_predict(stream_event), repeat=3000
        )
        stream_background = statistics.median(background_samples)
        backlog = background.sink.describe()["queued"]
        drain_start = time.perf_counter()
        drained = background.sink.flush(timeout=60.0)
        drain = time.perf_counter() - drain_start
        sink = background.sink
        assert isinstance(sink, BackgroundSink)
        loop_counters = sink.counters
        background.close()
        sync_samples = _samples(lambda: apis["sync"].handle_predict(stream_event), repeat=3000)
        stream_sqlite = statistics.median(sync_samples)
        log = SqliteEventLog(workdir / "append.sqlite3")
        sample = Event(
            type="prediction",
            request_id="bench",
            model_version="v",
            data={
                "endpoint": "stream",
                "records": 1,
                "inputs": record,
                "outputs": 151.0,
                "latency_ms": 0.05,
            },
        )
        log_write = _p50(
            lambda: log.append(Event(type="prediction", data=sample.data)), repeat=2000
        )
        writer_rate, writer_overflow = bench_writer_throughput(workdir, dict(sample.data))

        batch_rows = np.resize(rows, (BATCH_RECORDS, rows.shape[1]))
        array_body = orjson.dumps({"data": batch_rows.tolist()})
        object_body = orjson.dumps(
            {"data": [dict(zip(names, r, strict=True)) for r in batch_rows.tolist()]}
        )
        batch_feeds = model.encoder.from_matrix(batch_rows.astype(np.float32))
        bare_batch = _p50(lambda: session.run(outputs, batch_feeds), repeat=30, warmup=3)
        parse_only = _p50(lambda: orjson.loads(object_body), repeat=30, warmup=3)
        timings = {}
        for label, body in (("array", array_body), ("object", object_body)):
            event = _event("/batch", body)
            response = apis["stdout"].handle_predict(event)
            assert response["statusCode"] == 200, response["body"][:300]
            timings[label] = _p50(
                lambda e=event: apis["stdout"].handle_predict(e), repeat=30, warmup=3
            )
        peer = _time_peer(session, rows[:1].tolist(), batch_rows.tolist())
    finally:
        sys.stdout = real_stdout
        devnull.close()

    ratio = stream_background / bare
    aws_ratio = stream_stdout / bare
    ok = (
        ratio <= STREAM_TARGET_RATIO
        and aws_ratio <= AWS_TARGET_RATIO
        and drained
        and writer_overflow == 0
    )
    request_rate = 1.0 / stream_background
    print(
        f"model: {model.card.training.get('estimator', 'see card')} ({model.version}), "
        f"{len(names)} features"
    )
    print("/stream (one record, warm, in-process, p50; log write included)")
    print(f"  baseline InferenceSession.run, one pre-built row:   {bare * 1e6:8.1f} us")
    print(
        f"  local server (mlsys serve): background delivery to SQLite, no metrics: "
        f"{stream_background * 1e6:8.1f} us = {ratio:.1f}x baseline "
        f"(target <= {STREAM_TARGET_RATIO:.0f}x) {_verdict(ratio <= STREAM_TARGET_RATIO)}"
    )
    print(
        f"    p99 {_p99(background_samples) * 1e6:.0f} us; after the loop {backlog} event(s) "
        f"were queued, {'flushed' if drained else 'NOT flushed'} in {drain * 1e3:.1f} ms; "
        f"{loop_counters.batches} batches, "
        f"{loop_counters.written_synchronously} queue overflow(s)"
    )
    print(
        f"  AWS predict function: stdout event delivery + EMF metrics:          "
        f"{stream_stdout * 1e6:8.1f} us = {aws_ratio:.1f}x baseline "
        f"(target <= {AWS_TARGET_RATIO:.0f}x) {_verdict(aws_ratio <= AWS_TARGET_RATIO)}"
        f" p99 {_p99(stdout_samples) * 1e6:.0f} us\n"
        f"    of which EMF metrics (same handler without them: "
        f"{stream_no_metrics * 1e6:.1f} us): {(stream_stdout - stream_no_metrics) * 1e6:.1f} us"
    )
    print(
        f"  local server with --log-delivery sync (SQLite write in the request): "
        f"{stream_sqlite * 1e6:8.1f} us = {stream_sqlite / bare:.1f}x baseline "
        f"(p99 {_p99(sync_samples) * 1e6:.0f} us)"
    )
    print(f"  of which SQLite log append alone:                   {log_write * 1e6:8.1f} us")
    print(
        f"  background writer, sustained: {writer_rate:12,.0f} events/s = "
        f"{writer_rate / request_rate:.1f}x the single-thread request rate "
        f"({request_rate:,.0f} req/s at the p50 above); {writer_overflow} overflow(s) "
        f"{_verdict(writer_rate >= request_rate and writer_overflow == 0)}"
    )
    ok &= writer_rate >= request_rate
    print(f"/batch of {BATCH_RECORDS:,} records (warm, p50, handler end to end incl. JSON)")
    print(
        f"  baseline InferenceSession.run on pre-built feeds: {bare_batch * 1e3:8.2f} ms"
        f" = {BATCH_RECORDS / bare_batch:12,.0f} rec/s"
    )
    print(f"  baseline orjson.loads of the object-record body:  {parse_only * 1e3:8.2f} ms")
    for label, target in (("array", ARRAY_TARGET), ("object", OBJECT_TARGET)):
        rate = BATCH_RECORDS / timings[label]
        ok &= rate >= target
        print(
            f"  {label:6} records: {timings[label] * 1e3:8.2f} ms = {rate:12,.0f} rec/s "
            f"({timings[label] / bare_batch:.1f}x inference alone; target >= {target:,}) "
            f"{_verdict(rate >= target)}"
        )
    ok &= _report_peer(peer, stream_stdout, BATCH_RECORDS / timings["object"])
    return ok


def _time_peer(
    session: Any, one_row: list[list[float]], batch_rows: list[list[float]]
) -> tuple[float, float] | None:
    """(one-record p50, 10,000-array-record p50) of the peer handler on the same model,
    or None when ``BENCH_PEER_CHECKOUT`` names no checkout (see :mod:`benchmarks.peer`)."""
    from benchmarks.peer import call_peer, load_peer, peer_event, peer_root  # noqa: PLC0415

    root = peer_root()
    if root is None:
        return None
    module = load_peer(root, session)
    one, batch = peer_event(one_row), peer_event(batch_rows)
    stream = _p50(lambda: call_peer(module, one), repeat=3000)
    batch_p50 = _p50(lambda: call_peer(module, batch), repeat=30, warmup=3)
    return stream, batch_p50


def _report_peer(peer: tuple[float, float] | None, ours_stream: float, ours_rate: float) -> bool:
    from benchmarks.peer import PEER_ENV  # noqa: PLC0415

    print("peer: aws-samples/sample-serverless-ml-inference-pipeline, inference handler")
    if peer is None:
        print(f"  not measured: set {PEER_ENV} to a checkout of it (see benchmarks/peer.py)")
        return True
    stream, batch = peer
    peer_rate = BATCH_RECORDS / batch
    stream_ok = ours_stream / stream <= PEER_STREAM_TARGET
    batch_ok = ours_rate / peer_rate >= PEER_BATCH_TARGET
    print(
        f"  one record, its hot path (warm, cache off, EMF on): {stream * 1e6:8.1f} us; "
        f"our AWS predict function = {ours_stream / stream:.2f}x it "
        f"(target <= {PEER_STREAM_TARGET}x) {_verdict(stream_ok)}"
    )
    print(
        f"  {BATCH_RECORDS:,} array records: {peer_rate:12,.0f} rec/s; our object records = "
        f"{ours_rate / peer_rate:.2f}x it (target >= {PEER_BATCH_TARGET}x) {_verdict(batch_ok)}"
    )
    return stream_ok and batch_ok


_COLD_HANDLER = """
import time
start = time.perf_counter()
from lambda_inference.entrypoints import handle_predict
response = handle_predict({EVENT}, None)
elapsed = time.perf_counter() - start
assert response["statusCode"] == 200, response
print(elapsed)
"""

_COLD_SKLEARN = """
import time
start = time.perf_counter()
import pickle
with open({PATH!r}, "rb") as handle:
    model = pickle.load(handle)
model.predict({ROW})
print(time.perf_counter() - start)
"""


def _run_cold(code: str, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-500:])
    return float(result.stdout.strip().splitlines()[-1]), wall


def bench_gzip_bomb(registry_uri: str, workdir: Path) -> bool:
    """Issue 18: gzip bodies of many empty members through the predict entry point as
    deployed: 295,000 (5.9 MB; over the event limit once base64-encoded) and 200,000
    (fits the event: inflated until the member cap)."""
    import base64  # noqa: PLC0415

    from benchmarks.hostile import (  # noqa: PLC0415
        GZIP_BOMB_MEMBERS,
        GZIP_FITTING_MEMBERS,
        GZIP_TARGET_SECONDS,
        gzip_bomb,
        inflate_baseline,
    )

    record = b'{"data": [[0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]]}'
    ok = True
    with open(os.devnull, "w") as devnull:
        api = _build_api(
            registry_uri, f"sqlite:///{workdir}/bomb.sqlite3", delivery="stdout",
            stdout=devnull, metrics=False,
        )  # fmt: skip
        entry = _as_deployed(api)
        print("gzip bodies of empty members + one record (base64 in the event, as on AWS)")
        for members in (GZIP_BOMB_MEMBERS, GZIP_FITTING_MEMBERS):
            bomb = gzip_bomb(record, members)
            event = _event("/batch", b"")
            event.update(body=base64.b64encode(bomb).decode(), isBase64Encoded=True)
            event["headers"] = {"Content-Type": "application/gzip"}
            start = time.perf_counter()
            status = entry(event)["statusCode"]
            elapsed = time.perf_counter() - start
            baseline = inflate_baseline(len(bomb))
            fine = status in (400, 413) and elapsed < GZIP_TARGET_SECONDS
            ok &= fine
            print(
                f"  {members:,} members ({len(bomb) / 1e6:.1f} MB): HTTP {status} in "
                f"{elapsed * 1e3:.1f} ms; baseline gzip.decompress of one member that size "
                f"{baseline * 1e3:.1f} ms (target 400/413 in < {GZIP_TARGET_SECONDS:.0f} s) "
                f"{_verdict(fine)}"
            )
    return ok


def bench_cold_start(registry_uri: str, workdir: Path) -> bool:
    from sklearn.datasets import load_diabetes  # noqa: PLC0415
    from sklearn.ensemble import GradientBoostingRegressor  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    data = load_diabetes()
    sk_model = make_pipeline(StandardScaler(), GradientBoostingRegressor(n_estimators=50))
    sk_model.fit(data.data, data.target)
    pickle_path = workdir / "model.pkl"
    pickle_path.write_bytes(pickle.dumps(sk_model))
    names = [str(n) for n in data.feature_names]
    event = _event(
        "/stream", orjson.dumps({"data": dict(zip(names, data.data[0].tolist(), strict=True))})
    )
    env = {
        **os.environ,
        "MLSYS_REGISTRY_URI": registry_uri,
        "MLSYS_LOG_URI": f"sqlite:///{workdir}/cold.sqlite3",
        "MLSYS_LOG_DELIVERY": "stdout",
        "PYTHONPATH": str(ROOT),
    }
    handler_code = _COLD_HANDLER.replace("{EVENT}", repr(event))
    sklearn_code = _COLD_SKLEARN.format(PATH=str(pickle_path), ROW=[data.data[0].tolist()])
    ours = [_run_cold(handler_code, env) for _ in range(5)]
    theirs = [_run_cold(sklearn_code, env) for _ in range(5)]
    ours_ms = statistics.median(t for t, _ in ours) * 1000
    ours_wall = statistics.median(w for _, w in ours) * 1000
    theirs_ms = statistics.median(t for t, _ in theirs) * 1000
    theirs_wall = statistics.median(w for _, w in theirs) * 1000
    ok = ours_ms < COLD_START_TARGET_MS
    print("cold start proxy (fresh process, median of 5)")
    print(
        f"  handler import + model load + first request: {ours_ms:7.1f} ms "
        f"(process wall incl. interpreter {ours_wall:.0f} ms; target < "
        f"{COLD_START_TARGET_MS:.0f} ms) {_verdict(ok)}"
    )
    print(
        f"  baseline scikit-learn import + pickle.load + predict: {theirs_ms:7.1f} ms "
        f"(wall {theirs_wall:.0f} ms); ours = {ours_ms / theirs_ms:.2f}x baseline"
    )
    return ok


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bench_package_size() -> bool:
    import scipy  # noqa: PLC0415
    import sklearn  # noqa: PLC0415

    site = Path(sklearn.__file__).parent.parent
    sk_paths = [Path(sklearn.__file__).parent, Path(scipy.__file__).parent]
    sk_paths += [p for p in site.iterdir() if p.name in {"scipy.libs", "scikit_learn.libs"}]
    baseline = sum(_tree_size(p) for p in sk_paths) / 1e6
    print("Lambda package (unpacked)")
    if not (LAMBDA_BUILD / ".built").exists():
        print(f"  {LAMBDA_BUILD} is not built; run `make lambda-package` FAIL")
        return False
    size = _tree_size(LAMBDA_BUILD) / 1e6
    ok = size < PACKAGE_TARGET_MB
    print(
        f"  .build/lambda: {size:7.1f} MB (target < {PACKAGE_TARGET_MB:.0f} MB; Lambda's limit "
        f"250 MB) {_verdict(ok)}"
    )
    print(
        f"  baseline scikit-learn + SciPy installed: {baseline:7.1f} MB; ours = "
        f"{size / baseline:.2f}x baseline"
    )
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-") as tmp:
        workdir = Path(tmp)
        registry_uri = str(workdir / "registry")
        source = _train_default(registry_uri)
        print(f"default model from: {source}")
        ok = bench_stream_and_batch(registry_uri, workdir)
        ok &= bench_gzip_bomb(registry_uri, workdir)
        ok &= bench_cold_start(registry_uri, workdir)
    ok &= bench_package_size()
    print(f"inference benchmarks: {'all targets met' if ok else 'SOME TARGETS MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
