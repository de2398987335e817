"""The long-running processes of a local run (moto server, ``sam local start-api``) and
the docker facts the harness needs; each process is stopped by the id it was given."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any


class HarnessError(Exception):
    """A step of the local run failed; ``str()`` is the one line to print."""


class Processes:
    """Starts background processes in their own session and stops exactly those."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: Sequence[str], *, env: Mapping[str, str]) -> Path:
        """Start ``command``; its output goes to ``<log_dir>/<name>.log`` (returned)."""
        log = self._log_dir / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own tools, no shell
                list(command),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self._started.append((name, process))
        return log

    def check_running(self, name: str) -> None:
        for started, process in self._started:
            if started == name and process.poll() is not None:
                log = self._log_dir / f"{name}.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise HarnessError(f"{name} exited ({process.returncode}): {' | '.join(tail)}")

    def stop_all(self) -> None:
        """SIGTERM (SAM then removes its warm containers), then SIGKILL after 20 s."""
        for _, process in reversed(self._started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in reversed(self._started):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._started.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


def docker(*arguments: str) -> subprocess.CompletedProcess[str]:
    """A docker CLI command; raises on failure."""
    return subprocess.run(  # noqa: S603 - fixed docker subcommands, no shell
        ["docker", *arguments],  # noqa: S607 - docker from PATH, as scripts/image_check.sh
        capture_output=True,
        text=True,
        check=True,
    )


def docker_bridge_address() -> str:
    """The host's address on docker's default bridge: what the functions' containers
    reach the moto server at (``--docker-network host`` is not host networking in SAM)."""
    raw = docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}").stdout
    config = json.loads(raw)[0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(url: str, *, seconds: float, processes: Processes, name: str) -> None:
    """Poll ``url`` until any HTTP answer (a 4xx counts: the server is up)."""
    deadline = time.monotonic() + seconds
    while True:
        processes.check_running(name)
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local URL
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise HarnessError(f"{name} did not answer at {url} within {seconds:g} s") from None
            time.sleep(0.5)


def container_of(function: str) -> str:
    """The id of the one warm container SAM runs for ``function``."""
    found = docker("ps", "-q", "--filter", f"label=sam.cli.function.name={function}").stdout.split()
    if len(found) != 1:
        raise HarnessError(f"expected one running container of {function}, found {found}")
    return found[0]


def container_output(container: str) -> list[tuple[int, str]]:
    """What the function printed (standard output and error, as Lambda sends both to its
    log group, one log event per line) as (epoch milliseconds, line), in time order."""
    result = docker("logs", "--timestamps", container)
    lines = [*result.stdout.splitlines(), *result.stderr.splitlines()]
    stamped = [_stamped(line) for line in lines if line.strip()]
    return sorted(stamped, key=lambda item: item[0])


def _stamped(line: str) -> tuple[int, str]:
    """``2026-12-03T01:19:11.368072824Z message`` -> (epoch ms, message)."""
    stamp, _, message = line.partition(" ")
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000) + int((fraction + "000")[:3]), message


def tool_environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` without the caller's own AWS settings, plus ``extra``."""
    keep = {k: v for k, v in base.items() if not k.startswith(("AWS_", "MLSYS_"))}
    return {**keep, **extra, "PATH": base.get("PATH", os.defpath)}


def run_json(command: Sequence[str], *, env: Mapping[str, str], what: str) -> Any:
    """Run ``command``; its standard output (or its last line) is JSON: a CLI's
    ``--json``, a function's result."""
    result = subprocess.run(  # noqa: S603 - our own tools, no shell
        list(command), capture_output=True, text=True, env=dict(env), check=False
    )
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise HarnessError(f"{what} exited {result.returncode}: {tail}")
    output = result.stdout.strip()
    for candidate in (output, *reversed(output.splitlines()[-1:])):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise HarnessError(f"{what}: no JSON result in {output[-300:]!r}")
