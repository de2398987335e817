"""The SQLite log's checkpoints off the write path (``checkpoint_seconds``; issue 18)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from mlsys.eventlog import Event, SqliteEventLog

EVENTS = 2000
PAGE = 4096


def test_writes_never_checkpoint_and_the_background_checkpoint_moves_the_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite3"
    log = SqliteEventLog(path, checkpoint_seconds=3600.0)  # no periodic run in this test
    for number in range(EVENTS):
        log.append(Event(type="prediction", request_id=f"r{number}", data={"n": number}))
    # SQLite on its own checkpoints (and reuses the WAL) every 1000 pages, in a write.
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > EVENTS * PAGE
    log.close()  # stops the checkpointer, which checkpoints what was written
    uri = f"file:{path}?immutable=1"  # the database file alone, ignoring the WAL
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        (stored,) = connection.execute("SELECT COUNT(*) FROM events").fetchone()
    assert stored == EVENTS


def test_without_the_option_sqlite_checkpoints_as_usual(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    log = SqliteEventLog(path)
    for number in range(EVENTS):
        log.append(Event(type="prediction", request_id=f"r{number}", data={"n": number}))
    assert Path(f"{path}-wal").stat().st_size < EVENTS * PAGE
    log.close()
