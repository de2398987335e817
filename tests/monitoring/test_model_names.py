"""Several models, one system log (issue 19): ``GET /log?model=``, ``mlsys monitor
--model-name`` and ``GET /monitor`` each show one model, and an unknown name is an error
that lists the names that exist."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.handler import Api
from lambda_inference.local.monitor_page import monitor_page
from mlsys.eventlog import SqliteEventLog
from tests.inference_support import api_event, body_of
from tests.monitoring.support import Trained, make_api, records, send_batches
from tests.training_support import run_main


@dataclass(frozen=True)
class Shared:
    registry: Path
    log: str
    reg: Api
    cls: Api


@pytest.fixture
def shared(regressor: Trained, classifier: Trained, tmp_path: Path) -> Shared:
    """One registry with both models (reg, cls) and one log they both served to (120 and
    60 records)."""
    registry = tmp_path / "registry"
    shutil.copytree(regressor.registry, registry)
    shutil.copytree(classifier.registry / "models" / "cls", registry / "models" / "cls")
    log = f"sqlite:///{tmp_path}/log.sqlite3"
    reg = make_api(Trained(registry, "reg", regressor.frame, "y"), log)
    cls = make_api(Trained(registry, "cls", classifier.frame, "label"), log)
    send_batches(reg, records(regressor.features().iloc[:120]), prefix="reg")
    send_batches(cls, records(classifier.features().iloc[:60]), prefix="cls")
    return Shared(registry, log, reg, cls)


def _get_log(api: Api, **query: str) -> tuple[int, dict[str, Any]]:
    response = api.handle_admin(api_event("GET", "/log", query={"limit": "1000", **query}))
    return response["statusCode"], body_of(response)


def test_get_log_keeps_one_model_and_every_event_names_its_model(shared: Shared) -> None:
    api = shared.reg
    status, page = _get_log(api, model="cls", type="prediction")
    assert status == 200
    events = page["result"]
    assert len(events) == 1
    assert events[0]["model"] == "cls"
    assert events[0]["data"]["records"] == 60
    status, everything = _get_log(api, type="prediction")
    assert {e["model"] for e in everything["result"]} == {"reg", "cls"}


def test_get_log_for_an_unknown_model_is_a_404_listing_the_known_ones(
    shared: Shared,
) -> None:
    status, body = _get_log(shared.reg, model="nosuchmodel")
    assert status == 404
    error = body["error"]
    assert error["code"] == "model_not_found"
    assert error["details"]["models"] == ["cls", "reg"]
    assert "models: cls, reg" in error["message"]
    # The default model is always a valid name: events from before models were named read as it.
    assert _get_log(shared.reg, model="default") == (200, {"result": [], "next": None})


def test_the_served_model_is_known_before_it_logged_anything(
    regressor: Trained, tmp_path: Path
) -> None:
    api = make_api(regressor, f"sqlite:///{tmp_path}/log.sqlite3")
    assert _get_log(api, model="reg") == (200, {"result": [], "next": None})


def _monitor(registry: Path, log: str, name: str, *extra: str) -> list[str]:
    return ["monitor", "--registry", str(registry), "--model-name", name, "--log", log, *extra]


def test_monitor_reports_the_named_model_only(
    shared: Shared, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(_monitor(shared.registry, shared.log, "cls", "--json")) == 0
    (version,) = json.loads(capsys.readouterr().out)["versions"]
    assert version["records"] == 60
    assert set(version["features"]) == {"age in years", "home city", "score (z)"}


def test_monitor_of_a_registered_model_that_served_nothing_shows_nothing(
    shared: Shared,
    regressor: Trained,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's grunfeld case: the log holds another model's traffic only."""
    only_reg = f"sqlite:///{tmp_path}/only-reg.sqlite3"
    served = Trained(shared.registry, "reg", regressor.frame, "y")
    send_batches(make_api(served, only_reg), records(regressor.features().iloc[:50]), prefix="r")
    assert run_main(_monitor(shared.registry, only_reg, "cls")) == 0
    assert "no predictions in this window" in capsys.readouterr().out


def test_monitor_of_an_unknown_model_exits_2_naming_the_models(
    shared: Shared, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(_monitor(shared.registry, shared.log, "nosuchmodel")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no model 'nosuchmodel'" in err
    assert err.endswith("models: cls, reg")


def test_the_monitor_page_shows_the_served_model_or_the_one_asked_for(
    shared: Shared,
) -> None:
    service = shared.reg.service
    status, page, _ = monitor_page(service, {"since": "1h"})
    assert status == 200
    assert "mlsys model monitor: reg" in page.decode()
    assert "120 records" in page.decode()
    assert "60 records" not in page.decode()
    status, page, _ = monitor_page(service, {"since": "1h", "model": "cls"})
    assert status == 200
    assert "60 records" in page.decode()
    status, body, _ = monitor_page(service, {"model": "nosuchmodel"})
    assert status == 404
    assert json.loads(body)["error"]["details"]["models"] == ["cls", "reg"]
    status, body, _ = monitor_page(service, {"model": "../x"})
    assert status == 400


def test_training_names_its_model_in_the_log(regressor: Trained, classifier: Trained) -> None:
    for trained in (regressor, classifier):
        log = SqliteEventLog(trained.registry.parent / "train-log.sqlite3")
        (event,) = log.query(event_type="training").events
        assert event.model == trained.model_name
        assert log.models() == [trained.model_name]
