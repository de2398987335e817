"""Headless Chromium (Debian's ``chromium`` package) for the report tests.

``.ci/run`` installs it when missing and sets ``CI``; there a missing browser is a
failure, elsewhere the browser tests are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")


def chromium() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is required in CI (.ci/run installs Debian's chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # containers and CI runners run as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    """Every console message (log, warning, error, uncaught exception) the page produced."""


def render(page: Path | str, profile: Path, *, budget_ms: int | None = None) -> Rendered:
    """The DOM after the page's scripts ran, and its console messages. ``page`` is a
    file or a URL; ``budget_ms`` lets the page's timers and fetches run first (virtual
    time: it passes as soon as nothing is pending)."""
    target = page if isinstance(page, str) else page.resolve().as_uri()
    budget = [f"--virtual-time-budget={budget_ms}"] if budget_ms is not None else []
    done = subprocess.run(
        [chromium(), *_flags(profile), *budget, "--dump-dom", target],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return Rendered(done.stdout, CONSOLE.findall(done.stderr))


def screenshot(page: Path, target: Path, profile: Path, *, size: str = "1280,1500") -> None:
    subprocess.run(
        [
            chromium(),
            *_flags(profile),
            "--hide-scrollbars",
            f"--window-size={size}",
            f"--screenshot={target.resolve()}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
