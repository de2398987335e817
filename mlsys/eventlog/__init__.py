"""The system log served by ``GET /log``: predictions, training outcomes and errors.

One small interface, :class:`EventLog`, with implementations chosen by URI via
:func:`open_event_log`:

* ``sqlite:///path/to/log.sqlite3`` -- the embedded default for local use
  (:mod:`mlsys.eventlog.sqlite`).
* ``dynamodb://table`` -- on AWS (:mod:`mlsys.eventlog.dynamodb`, imported only when
  such a URI is opened, so SQLite-only users never load it).

Events are newest-first when read, paginated with an opaque ``next`` token.
Modules: :mod:`~mlsys.eventlog.model` (events, tokens, the interface; imports no
store), :mod:`~mlsys.eventlog.sqlite`, :mod:`~mlsys.eventlog.dynamodb` (both import
only the model) and :mod:`~mlsys.eventlog.factory` (URI -> store).
"""

from mlsys.eventlog.factory import open_event_log, open_event_log_for, parse_log_uri
from mlsys.eventlog.model import (
    DEFAULT_MODEL_NAME,
    EVENT_TYPES,
    Event,
    EventLog,
    EventLogError,
    EventPage,
    EventType,
    InvalidPageTokenError,
    cursor_from_token,
    decode_token,
    encode_token,
    events_from_lines,
    new_event_id,
    now_iso,
    token_after,
)
from mlsys.eventlog.sqlite import SqliteEventLog

__all__ = [
    "DEFAULT_MODEL_NAME",
    "EVENT_TYPES",
    "Event",
    "EventLog",
    "EventLogError",
    "EventPage",
    "EventType",
    "InvalidPageTokenError",
    "SqliteEventLog",
    "cursor_from_token",
    "decode_token",
    "encode_token",
    "events_from_lines",
    "new_event_id",
    "now_iso",
    "open_event_log",
    "open_event_log_for",
    "parse_log_uri",
    "token_after",
]
