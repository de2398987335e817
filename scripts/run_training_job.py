"""Submit an mlsys training job to AWS Batch and wait for it: the deploy workflow's
training step, also handy by hand (see docs/operations.md).

    python scripts/run_training_job.py --job-queue QUEUE --job-definition JOBDEF \\
        [--bucket BUCKET] [--region REGION] [--timeout-minutes 60] \\
        [--data s3://BUCKET/data/file.csv] [--env MLSYS_MIN_IMPROVEMENT=0.01 ...]

``--data`` fills the job definition's ``data`` parameter (its default is the
bucket's ``data/`` prefix, i.e. the newest object there); ``--env`` overrides
container environment variables such as ``MLSYS_TARGET`` or ``MLSYS_CONFIDENCE``.

``--bucket`` (the stack's ``ModelStoreBucket`` output) covers a new stage's first
deploy: without ``--data``, when ``data/`` holds no CSV or Parquet object yet, the
job trains on the bundled ``sklearn:diabetes`` data set (and its own target column)
instead of failing on an empty prefix.

Prints each status change. Exits 0 when the job SUCCEEDED (whether or not the
challenger was promoted: that is the training job's decision, recorded in the
registry and the system log), 1 when it FAILED or did not finish in time (the
job is then terminated so it cannot promote after the workflow gave up), and
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_s3 import S3Client

DONE_STATES = frozenset({"SUCCEEDED", "FAILED"})
DATA_PREFIX = "data/"
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
"""What the training job reads from a prefix (training_job.data; a test keeps them equal)."""
BUNDLED_DATA = "sklearn:diabetes"


@dataclass(frozen=True)
class Outcome:
    """What the workflow should do after one poll."""

    finished: bool
    succeeded: bool
    message: str


def judge(job: Mapping[str, Any], *, elapsed_seconds: float, timeout_seconds: float) -> Outcome:
    """Decide from one ``describe_jobs`` entry whether to stop waiting, and how it ended."""
    status = str(job.get("status", "UNKNOWN"))
    name = job.get("jobName", job.get("jobId", "job"))
    if status == "SUCCEEDED":
        return Outcome(True, True, f"training job {name} succeeded")
    if status == "FAILED":
        return Outcome(True, False, f"training job {name} failed: {failure_reason(job)}")
    if elapsed_seconds >= timeout_seconds:
        return Outcome(
            True,
            False,
            f"training job {name} did not finish within {timeout_seconds / 60:g} min "
            f"(last status {status})",
        )
    return Outcome(False, False, status)


def failure_reason(job: Mapping[str, Any]) -> str:
    """The most specific reason Batch gives: the container's, then the job's."""
    container = job.get("container") or {}
    parts = [
        str(job.get("statusReason") or "no reason given"),
        f"container: {container['reason']}" if container.get("reason") else "",
        f"exit code {container['exitCode']}" if container.get("exitCode") is not None else "",
        f"log stream {container['logStreamName']}" if container.get("logStreamName") else "",
    ]
    return "; ".join(part for part in parts if part)


def has_training_data(s3: S3Client, bucket: str) -> bool:
    """Whether ``s3://bucket/data/`` holds an object the training job can read."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=DATA_PREFIX):
        if any(o["Key"].lower().endswith(DATA_SUFFIXES) for o in page.get("Contents", [])):
            return True
    return False


def first_deploy_fallback(
    s3: S3Client,
    bucket: str,
    environment: Sequence[Mapping[str, str]],
    report: Callable[[str], None],
) -> tuple[str | None, list[dict[str, str]]]:
    """``(data override, environment)`` for a run without ``--data``: the bundled data
    set when the bucket has no training data yet, else the job definition's default."""
    if has_training_data(s3, bucket):
        return None, [dict(e) for e in environment]
    report(
        f"notice: s3://{bucket}/{DATA_PREFIX} holds no CSV or Parquet object yet; "
        f"training on the bundled {BUNDLED_DATA} data set instead"
    )
    # A configured target column (training_target) names a column of the real data.
    overridden = {e["name"] for e in environment}
    extra = [] if "MLSYS_TARGET" in overridden else [{"name": "MLSYS_TARGET", "value": ""}]
    return BUNDLED_DATA, [*(dict(e) for e in environment), *extra]


def parse_env(pairs: Sequence[str]) -> list[dict[str, str]]:
    """``["KEY=VALUE", ...]`` -> Batch container-override environment entries."""
    environment = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env expects KEY=VALUE, got {pair!r}")
        environment.append({"name": key, "value": value})
    return environment


def submit_and_wait(
    batch: BatchClient,
    *,
    job_name: str,
    job_queue: str,
    job_definition: str,
    data_uri: str | None = None,
    environment: Sequence[Mapping[str, str]] = (),
    timeout_seconds: float,
    poll_seconds: float,
    report: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Submit the job, poll until it finishes or times out (then terminate it)."""
    overrides: dict[str, Any] = {}
    if data_uri:
        overrides["parameters"] = {"data": data_uri}
    if environment:
        overrides["containerOverrides"] = {"environment": [dict(e) for e in environment]}
    submitted = batch.submit_job(
        jobName=job_name, jobQueue=job_queue, jobDefinition=job_definition, **overrides
    )
    job_id = submitted["jobId"]
    report(f"submitted {job_name} ({job_id}) to {job_queue}")
    started = clock()
    last_status = None
    while True:
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        job: Mapping[str, Any] = jobs[0] if jobs else {"jobId": job_id, "status": "UNKNOWN"}
        if job.get("status") != last_status:
            last_status = job.get("status")
            report(f"{clock() - started:6.0f} s  {last_status}")
        outcome = judge(job, elapsed_seconds=clock() - started, timeout_seconds=timeout_seconds)
        if outcome.finished:
            if not outcome.succeeded and job.get("status") not in DONE_STATES:
                return Outcome(True, False, outcome.message + "; " + terminate(batch, job_id))
            return outcome
        sleep(poll_seconds)


def terminate(batch: BatchClient, job_id: str) -> str:
    """Stop a job the workflow gave up on, so it cannot promote a model later."""
    from botocore.exceptions import ClientError  # noqa: PLC0415 - boto3 is imported lazily

    try:
        batch.terminate_job(jobId=job_id, reason="deploy workflow timed out")
    except ClientError as exc:
        return f"could not terminate it ({exc.response['Error'].get('Code', 'error')})"
    return "terminated"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_training_job", description=__doc__.splitlines()[0])
    parser.add_argument("--job-queue", required=True, help="Batch job queue name or ARN")
    parser.add_argument("--job-definition", required=True, help="job definition name or ARN")
    parser.add_argument("--job-name", default="mlsys-training", help="name shown in the console")
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    parser.add_argument(
        "--bucket",
        help="the model-store bucket (stack output ModelStoreBucket): without --data, "
        f"train on {BUNDLED_DATA} while its data/ prefix is empty",
    )
    parser.add_argument(
        "--data",
        metavar="S3_URI",
        help="training data: an object, or a prefix ending in / for its newest object "
        "(default: the job definition's, the bucket's data/ prefix)",
    )
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="container environment override, e.g. MLSYS_CONFIDENCE=0.95 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.environment = parse_env(args.env)
    except ValueError as exc:
        parser.error(str(exc))
    if args.timeout_minutes <= 0 or args.poll_seconds <= 0:
        parser.error("--timeout-minutes and --poll-seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import boto3  # noqa: PLC0415 - keeps --help instant
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        data_uri, environment = args.data, args.environment
        if data_uri is None and args.bucket:
            data_uri, environment = first_deploy_fallback(
                boto3.client("s3", region_name=args.region), args.bucket, environment, print
            )
        outcome = submit_and_wait(
            boto3.client("batch", region_name=args.region),
            job_name=args.job_name,
            job_queue=args.job_queue,
            job_definition=args.job_definition,
            data_uri=data_uri,
            environment=environment,
            timeout_seconds=args.timeout_minutes * 60,
            poll_seconds=args.poll_seconds,
            report=print,
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"run_training_job: {exc}", file=sys.stderr)
        return 1
    print(outcome.message, file=sys.stdout if outcome.succeeded else sys.stderr)
    return 0 if outcome.succeeded else 1


if __name__ == "__main__":
    raise SystemExit(main())
