"""mlsys as a Python package: one declaration of the pins, a wheel that installs on its own.

The slow test builds the wheel from a copy of the checkout, installs ``mlsys[serve]`` into a
fresh venv and serves a model this checkout trained. It runs offline: the wheel is built
without build isolation (the venv's pinned setuptools), and pip resolves the ``serve``
extra with ``--no-index`` from ``.build/wheelhouse``, which ``make wheelhouse`` (a
prerequisite of ``make test``) fills with ``pip download`` while the registries are used
anyway. So the fresh venv holds exactly what the wheel's metadata asks for and nothing
else: a training import on the serving path would fail there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import mlsys
from mlsys.registry import ModelRegistry
from scripts import requirements
from tests.serve_support import ServeProcess
from tests.training_support import run_main, train

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".build" / "wheelhouse"
TRAINING_STACK = ("sklearn", "lightgbm", "skl2onnx", "onnxmltools", "scipy", "pandas")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared_requirements() -> list[str]:
    extras = PYPROJECT["optional-dependencies"]
    return [*PYPROJECT["dependencies"], *(r for pins in extras.values() for r in pins)]


def test_the_requirements_files_are_generated_from_pyproject() -> None:
    assert requirements.stale_files() == []


def test_the_generator_notices_a_pin_changed_in_one_place_only(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text().replace('"gunicorn==', '"gunicorn==0.0.1+')
    )
    for spec in requirements.FILES:
        target = tmp_path / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / spec.path, target)
    assert requirements.stale_files(tmp_path) == ["lambda_inference/local/requirements.txt"]


def test_every_dependency_is_pinned_exactly_with_one_version() -> None:
    versions: dict[str, set[str]] = {}
    for requirement in declared_requirements():
        name, extras, rest = requirements.split(requirement)
        if name == "mlsys":
            assert set(extras) <= set(PYPROJECT["optional-dependencies"]), requirement
            continue
        assert re.fullmatch(r"==[0-9][0-9A-Za-z.+]*", rest), requirement
        versions.setdefault(name, set()).add(rest)
    assert {name: pins for name, pins in versions.items() if len(pins) > 1} == {}


def test_each_deployable_installs_what_its_extra_declares() -> None:
    def pinned(*paths: str) -> set[str]:
        lines = (line for p in paths for line in (ROOT / p).read_text().splitlines())
        return {line for line in lines if line and not line.startswith(("#", "-r"))}

    def flattened(extra: str) -> set[str]:
        pins = requirements.pins(PYPROJECT, [extra], follow=True, seen=set())
        return {*PYPROJECT["dependencies"], *pins}

    assert pinned("training_job/requirements.txt") == flattened("train")
    assert "boto3==" in (ROOT / "training_job/requirements.txt").read_text()  # via mlsys[aws]
    assert pinned("lambda_inference/requirements.txt") == flattened("lambda")
    serve = pinned("lambda_inference/requirements.txt", "lambda_inference/local/requirements.txt")
    assert serve == flattened("serve")
    assert not {line.split("==")[0] for line in serve} & {"scikit-learn", "lightgbm", "pandas"}


def test_version_is_declared_once_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert "version" in PYPROJECT["dynamic"]
    assert "version" not in PYPROJECT
    assert run_main(["--version"]) == 0
    assert capsys.readouterr().out == f"mlsys {mlsys.__version__}\n"
    assert importlib.metadata.version("mlsys") == mlsys.__version__


def test_the_serving_path_imports_no_training_library() -> None:
    code = (
        "import sys, mlsys.cli, mlsys.cli.serve, mlsys.cli.models, lambda_inference.local.server;"
        f"print([m for m in {TRAINING_STACK!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def build_wheel(destination: Path) -> Path:
    """``make dist``'s build, from a copy holding only what the wheel is made of."""
    source = destination / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in ("mlsys", "lambda_inference", "training_job"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    dist = destination / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("mlsys-*.whl")
    return wheel


def offline_pip_env() -> dict[str, str]:
    """No pip configuration of this machine (indexes, find-links, constraints) applies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def fresh_serve_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    subprocess.run(
        [*pip, "--no-index", "--find-links", WHEELHOUSE, f"{wheel}[serve]"],
        check=True,
        env=offline_pip_env(),
        timeout=600,
    )
    return venv


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    tops = {name.split("/")[0] for name in names}
    dist_info = f"mlsys-{mlsys.__version__}.dist-info"
    assert tops == {"mlsys", "lambda_inference", "training_job", dist_info}
    assert wheel.name.startswith(f"mlsys-{mlsys.__version__}-")
    assert b"mlsys = mlsys.cli:main" in entry_points
    assert b"Provides-Extra: serve" in metadata
    assert b"Requires-Dist: onnxruntime==" in metadata


@pytest.mark.slow
def test_the_wheel_serves_a_model_trained_by_the_checkout_in_a_fresh_venv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (WHEELHOUSE / ".built").is_file():
        if os.environ.get("CI"):
            pytest.fail("no .build/wheelhouse: make test builds it (make wheelhouse)")
        pytest.skip("no .build/wheelhouse: run make wheelhouse (make test does)")
    wheel = build_wheel(tmp_path)
    check_wheel_contents(wheel)
    venv = fresh_serve_venv(tmp_path, wheel)
    python, mlsys_script = venv / "bin" / "python", venv / "bin" / "mlsys"
    probe = f"import importlib.util as u; print([m for m in {TRAINING_STACK!r} if u.find_spec(m)])"
    installed = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == "[]"  # no training stack in a serve install
    version = subprocess.run(
        [mlsys_script, "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout == f"mlsys {mlsys.__version__}\n"

    registry = tmp_path / "registry"
    code, trained, err = train(capsys, registry, tmp_path / "train.sqlite3")
    assert code == 0, err
    assert trained is not None
    assert trained["promoted"]
    rows = load_diabetes(as_frame=True).data.iloc[:5]
    expected = ModelRegistry.open(str(registry), model_name="default").load_champion()
    want = np.asarray(expected.predict_frame(rows).values)

    served = ServeProcess(
        str(registry),
        f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        "--workers",
        "1",
        command=(str(mlsys_script),),
        cwd=tmp_path,  # not the checkout: only the installed packages are importable
    )
    try:
        status, health = served.call("GET", "/health")
        assert status == 200
        assert trained["version"] in json.dumps(health)
        status, one = served.call("POST", "/stream", {"data": rows.iloc[0].to_dict()})
        assert status == 200
        assert one["result"] == pytest.approx(want[0], rel=1e-6)
        status, many = served.call("POST", "/batch", {"data": rows.to_dict(orient="records")})
        assert status == 200
        assert np.asarray(many["result"]) == pytest.approx(want, rel=1e-6)
    finally:
        assert served.stop() == 0
    assert "Traceback" not in "".join(served.output)
