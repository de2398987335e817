"""Open the system log a URI names (``sqlite:///path`` or ``dynamodb://table``)."""

from __future__ import annotations

from typing import Any, Literal, Protocol
from urllib.parse import urlparse

from mlsys.errors import ConfigError
from mlsys.eventlog.model import EventLog
from mlsys.eventlog.sqlite import SqliteEventLog


class LogSettings(Protocol):
    """The operator's log settings a writer opens the log with (:class:`mlsys.settings.Settings`
    has them; the log does not need to know where they come from)."""

    @property
    def log_uri(self) -> str: ...

    @property
    def log_retention_days(self) -> int: ...

    @property
    def log_shards(self) -> int: ...


def parse_log_uri(uri: str) -> tuple[Literal["sqlite", "dynamodb"], str]:
    """Validate a log URI without opening anything: ``(scheme, path or table)``."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as in SQLAlchemy.
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError(f"log URI {uri!r} has no file path")
        return "sqlite", path
    if parsed.scheme == "dynamodb":
        if not parsed.netloc:
            raise ConfigError(f"log URI {uri!r} has no table name")
        return "dynamodb", parsed.netloc
    raise ConfigError(f"log URI {uri!r}: use sqlite:///path or dynamodb://table")


def open_event_log(uri: str, *, checkpoint_seconds: float | None = None, **kwargs: Any) -> EventLog:
    """Open the log a URI names: ``sqlite:///path`` or ``dynamodb://table``.

    ``checkpoint_seconds`` is for SQLite (see :class:`SqliteEventLog`); extra
    keyword arguments go to the DynamoDB implementation (client, retention, shards).
    """
    scheme, location = parse_log_uri(uri)
    if scheme == "sqlite":
        return SqliteEventLog(location, checkpoint_seconds=checkpoint_seconds)
    from mlsys.eventlog.dynamodb import DynamoDBEventLog  # noqa: PLC0415

    return DynamoDBEventLog(location, **kwargs)


def open_event_log_for(
    settings: LogSettings,
    uri: str | None = None,
    *,
    client: Any = None,
    checkpoint_seconds: float | None = None,
) -> EventLog:
    """Open ``uri`` (default ``settings.log_uri``) with the operator's log settings.

    Every writer goes through here so that a changed ``MLSYS_LOG_SHARDS`` or
    ``MLSYS_LOG_RETENTION_DAYS`` reaches training and ``mlsys models`` events too:
    an event written to a shard the readers do not scan would never be served.
    ``client`` is an injectable boto3 DynamoDB client (ignored for SQLite),
    ``checkpoint_seconds`` an SQLite option (ignored for DynamoDB).
    """
    target = settings.log_uri if uri is None else uri
    if parse_log_uri(target)[0] == "sqlite":
        return open_event_log(target, checkpoint_seconds=checkpoint_seconds)
    return open_event_log(
        target,
        client=client,
        retention_days=settings.log_retention_days,
        shards=settings.log_shards,
    )
