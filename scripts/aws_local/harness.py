"""`make aws-local-test`: the synthesized system stack, run end to end on this machine.

    python -m scripts.aws_local.harness --template cdk.out/mlsys-dev.template.json \\
        --bundle .build/lambda-x86_64 --architecture x86_64 --tools-python TOOLS/bin/python

1. A moto server on the docker bridge address holds the stack's bucket, table and topic
   (created as the template declares them, :mod:`scripts.aws_local.resources`).
2. ``mlsys train --registry s3://...`` (the real CLI) trains the champion, and two more
   versions for the rollouts, into that bucket.
3. ``sam local start-api`` serves the template derived from the synthesized one
   (:mod:`scripts.aws_local.template`) with the real Lambda bundle in the Lambda runtime
   emulator; ``scripts/smoke_test.py`` -- the deploy workflow's check -- runs against it.
4. The predict function's own output lines pass the stack's subscription filter and reach
   the log-ingest function as a CloudWatch Logs subscription event; ``GET /log`` must
   then list every prediction they carried.
5. The model monitor and the rollout evaluator run with their schedules' events
   (``sam local invoke``): the monitor writes its report to the bucket; the evaluator
   completes a canary with evidence and aborts a canary whose candidate fails requests.

Prints one line per check and the time of each step; exits 1 naming the failed step.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from scripts.aws_local.processes import HarnessError
from scripts.aws_local.session import LocalSession
from scripts.smoke_test import SmokeTestError

STEPS = (
    "start moto server, create the stack's bucket, table and topic",
    "train the champion and two candidates with mlsys train --registry s3://...",
    "derive the SAM template and start sam local start-api",
    "smoke test (scripts/smoke_test.py) through the emulated API",
    "ship the predict function's log lines to log-ingest; GET /log lists them",
    "model monitor with its scheduled event; report in the bucket",
    "rollout evaluator completes a canary that has evidence",
    "rollout evaluator aborts a canary whose candidate errors",
)


@contextmanager
def step(number: int, timings: list[tuple[str, float]]) -> Iterator[None]:
    title = STEPS[number - 1]
    print(f"\n== {number}/{len(STEPS)} {title}", flush=True)
    started = time.monotonic()
    try:
        yield
    except (HarnessError, SmokeTestError) as error:
        raise HarnessError(f"step {number} ({title}): {error}") from None
    seconds = time.monotonic() - started
    timings.append((title, seconds))
    print(f"   ({seconds:.1f} s)", flush=True)


def run(session: LocalSession) -> list[tuple[str, float]]:
    timings: list[tuple[str, float]] = []
    with step(1, timings):
        session.start_moto()
    with step(2, timings):
        session.train_versions()
    with step(3, timings):
        session.start_api()
    with step(4, timings):
        session.smoke_test()
    with step(5, timings):
        session.ship_and_check_log()
    with step(6, timings):
        session.run_monitor()
    with step(7, timings):
        session.canary(session.versions.healthy, expect="complete")
    with step(8, timings):
        session.canary(session.versions.failing, expect="abort")
    return timings


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aws_local", description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="synthesized system stack")
    parser.add_argument(
        "--bundle", type=Path, required=True, help="Lambda bundle for --architecture"
    )
    parser.add_argument("--architecture", choices=("x86_64", "arm64"), required=True)
    parser.add_argument("--tools-python", type=Path, required=True, help="python with samcli, moto")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (logs, events)")
    parser.add_argument("--mlsys", type=Path, default=Path(sys.executable).with_name("mlsys"))
    parser.add_argument("--region", default="us-east-1")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with LocalSession.open(
            template_path=args.template,
            bundle=args.bundle.resolve(),
            architecture=args.architecture,
            tools_python=args.tools_python,
            mlsys=args.mlsys,
            work=args.work.resolve(),
            region=args.region,
        ) as session:
            timings = run(session)
    except HarnessError as error:
        print(f"aws-local-test failed: {error} (logs in {args.work})", file=sys.stderr)
        return 1
    print(f"\naws-local-test: functions ran as {args.architecture} in SAM's Lambda emulator")
    for title, seconds in timings:
        print(f"  {seconds:6.1f} s  {title}")
    print(f"aws-local-test passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
