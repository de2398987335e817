"""The monitor's time window: ``--since`` as an ISO-8601 time or a duration back from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mlsys.errors import ConfigError

DEFAULT_SINCE = "24h"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def iso_z(moment: datetime) -> str:
    """The log's time format: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_since(raw: str, *, now: datetime, name: str = "--since") -> str:
    """``raw`` (``2026-01-31T12:00:00Z`` or ``90m``, ``24h``, ``7d``...) as a log time."""
    match = _DURATION.match(raw)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return iso_z(now - timedelta(**{_UNITS[unit]: amount}))
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{name} must be an ISO-8601 time (2026-01-31T12:00:00Z) or a duration "
            f"such as 90m, 24h or 7d, got {raw!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_z(moment)
