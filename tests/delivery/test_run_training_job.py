"""The deploy workflow's training step: submit to Batch, wait, fail when the job fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import run_training_job
from scripts.run_training_job import judge, parse_env

REGION = "eu-west-1"
SIMPLE_BATCH = {"batch": {"use_docker": False}}  # moto marks jobs done without running them


@pytest.fixture
def batch_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    with mock_aws(config=SIMPLE_BATCH):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch = boto3.client("batch", region_name=REGION)
        env = batch.create_compute_environment(
            computeEnvironmentName="training", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        batch.create_job_queue(
            jobQueueName="training",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
            ],
        )
        batch.register_job_definition(
            jobDefinitionName="mlsys-training",
            type="container",
            containerProperties={"image": "mlsys-training:abc123", "vcpus": 1, "memory": 512},
        )
        yield {"queue": "training", "definition": "mlsys-training"}


def test_succeeded_job_exits_zero_with_the_data_and_environment_overrides(
    batch_queue: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_training_job.main(
        [
            "--job-queue", batch_queue["queue"],
            "--job-definition", batch_queue["definition"],
            "--region", REGION,
            "--data", "s3://bucket/data/new.csv",
            "--env", "MLSYS_CONFIDENCE=0.95",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "SUCCEEDED" in out
    assert out.strip().endswith("training job mlsys-training succeeded")
    batch = boto3.client("batch", region_name=REGION)
    (summary,) = batch.list_jobs(jobQueue="training", jobStatus="SUCCEEDED")["jobSummaryList"]
    (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
    assert job["parameters"] == {"data": "s3://bucket/data/new.csv"}
    assert {"name": "MLSYS_CONFIDENCE", "value": "0.95"} in job["container"]["environment"]


def test_failed_job_fails_the_workflow_with_one_line(
    batch_queue: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    code = run_training_job.main(
        ["--job-queue", batch_queue["queue"], "--job-definition", batch_queue["definition"]]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith("training job mlsys-training failed")


def test_unknown_queue_is_reported_not_raised(
    batch_queue: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_training_job.main(["--job-queue", "nope", "--job-definition", "mlsys-training"])
    assert code == 1
    assert "nope" in capsys.readouterr().err


def test_bad_env_override_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_training_job.main(["--job-queue", "q", "--job-definition", "d", "--env", "NOEQUALS"])
    assert exit_info.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_parse_env_keeps_everything_after_the_first_equals_sign() -> None:
    assert parse_env(["MLSYS_DATA=s3://b/k=v.csv"]) == [
        {"name": "MLSYS_DATA", "value": "s3://b/k=v.csv"}
    ]


@pytest.mark.parametrize(
    ("job", "elapsed", "finished", "succeeded", "words"),
    [
        ({"status": "RUNNING"}, 10, False, False, "RUNNING"),
        ({"status": "RUNNABLE", "jobName": "t"}, 3600, True, False, "did not finish within 60 min"),
        ({"status": "SUCCEEDED", "jobName": "t"}, 9999, True, True, "succeeded"),
        (
            {
                "status": "FAILED",
                "jobName": "t",
                "statusReason": "Essential container in task exited",
                "container": {"exitCode": 2, "logStreamName": "mlsys/default/abc"},
            },
            5,
            True,
            False,
            "exit code 2; log stream mlsys/default/abc",
        ),
    ],
)
def test_judge(
    job: dict[str, Any], elapsed: float, finished: bool, succeeded: bool, words: str
) -> None:
    outcome = judge(job, elapsed_seconds=elapsed, timeout_seconds=3600)
    assert (outcome.finished, outcome.succeeded) == (finished, succeeded)
    assert words in outcome.message


def submitted_job() -> dict[str, Any]:
    batch = boto3.client("batch", region_name=REGION)
    (summary,) = batch.list_jobs(jobQueue="training", jobStatus="SUCCEEDED")["jobSummaryList"]
    (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
    return job  # type: ignore[no-any-return]


def run_with_bucket(queue: dict[str, str], *extra: str) -> int:
    return run_training_job.main(
        [
            "--job-queue", queue["queue"],
            "--job-definition", queue["definition"],
            "--region", REGION,
            "--bucket", "models",
            *extra,
        ]
    )  # fmt: skip


def test_first_deploy_with_no_training_data_trains_on_the_bundled_data_set(
    batch_queue: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION})
    # Not training data: the README of the prefix and an object outside it.
    s3.put_object(Bucket="models", Key="data/README.txt", Body=b"put CSV files here")
    s3.put_object(Bucket="models", Key="elsewhere.csv", Body=b"a,b\n1,2\n")

    assert run_with_bucket(batch_queue) == 0
    out = capsys.readouterr().out
    assert "notice: s3://models/data/ holds no CSV or Parquet object yet" in out
    job = submitted_job()
    assert job["parameters"] == {"data": "sklearn:diabetes"}
    # A training_target set for the real data would not exist in the bundled set.
    assert {"name": "MLSYS_TARGET", "value": ""} in job["container"]["environment"]


def test_existing_training_data_keeps_the_job_definitions_default(
    batch_queue: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="models", Key="data/2026/houses.parquet", Body=b"PAR1")

    assert run_with_bucket(batch_queue, "--env", "MLSYS_CONFIDENCE=0.9") == 0
    assert "notice" not in capsys.readouterr().out
    job = submitted_job()
    assert job.get("parameters", {}) == {}
    names = [e["name"] for e in job["container"]["environment"]]
    assert "MLSYS_TARGET" not in names
    assert "MLSYS_CONFIDENCE" in names


def test_explicit_data_is_never_replaced(
    batch_queue: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # No bucket exists at all: with --data the script must not even look.
    assert run_with_bucket(batch_queue, "--data", "s3://models/data/new.csv") == 0
    assert "notice" not in capsys.readouterr().out
    assert submitted_job()["parameters"] == {"data": "s3://models/data/new.csv"}


def test_data_suffixes_match_what_the_training_job_reads() -> None:
    from training_job.data import _FORMATS  # noqa: PLC0415

    assert set(run_training_job.DATA_SUFFIXES) == set(_FORMATS)
