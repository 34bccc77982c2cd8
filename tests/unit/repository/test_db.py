"""Write transactions: SQLite writers of several processes take turns on a lock, not on SQLite's busy polling."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, text

from xdsi.repository import db

HOLD_SECONDS = 1.5


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "xdsi.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_a_writer_waits_for_another_process_writer_past_the_busy_timeout(sqlite_url: str) -> None:
    """Another process holds a write transaction for longer than the busy timeout and retries allow.

    SQLite's busy handler would give up (RepositoryBusy, a 503) after about 0.1 s per try and four
    tries; a writer queued on the writers lock waits its turn and then commits, at once.
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from sqlalchemy import text
        from xdsi.repository import db
        engine = db.create_engine_for({sqlite_url!r})
        with db.writing(db.make_session_factory(engine)) as session:
            session.execute(text("CREATE TABLE held (n INTEGER)"))
            print("holding", flush=True)
            time.sleep({HOLD_SECONDS})
        print("released", flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        engine = db.create_engine_for(sqlite_url, sqlite_busy_timeout_ms=100)
        started = time.monotonic()
        with db.writing(db.make_session_factory(engine)) as session:
            waited = time.monotonic() - started
            session.execute(text("INSERT INTO held VALUES (1)"))  # the holder's table: it committed first
        assert holder.wait(30) == 0
        assert 0.5 < waited < HOLD_SECONDS + 5
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM held")) == 1
        engine.dispose()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_threads_of_one_process_queue_too(sqlite_url: str) -> None:
    engine = db.create_engine_for(sqlite_url, sqlite_busy_timeout_ms=100)
    factory = db.make_session_factory(engine)
    with db.writing(factory) as session:
        session.execute(text("CREATE TABLE turns (n INTEGER)"))
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        with db.writing(factory) as session:
            order.append("second")
            session.execute(text("INSERT INTO turns VALUES (2)"))

    with db.writing(factory) as session:
        session.execute(text("INSERT INTO turns VALUES (1)"))
        thread = threading.Thread(target=second)
        thread.start()
        inside.wait(HOLD_SECONDS)  # past what the busy handler and its retries would wait
        order.append("first")
    thread.join(30)
    assert order == ["first", "second"]
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM turns")) == 2
    engine.dispose()


def test_busy_threads_reuse_their_connections(database_url: str) -> None:
    """Eight threads reading at once, again and again, open eight connections once: none is closed on
    its return and opened again for the next request (SQLite and PostgreSQL alike)."""
    engine = db.create_engine_for(database_url, connections=8)
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    sessions = db.make_session_factory(engine)
    start = threading.Barrier(8)

    def read() -> None:
        for _ in range(20):
            start.wait()  # all eight hold a connection at the same moment
            with sessions() as session:
                session.execute(text("SELECT 1"))
                start.wait()

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert len(opened) == 8


def test_a_threads_read_sessions_share_one_connection_and_see_every_commit(database_url: str) -> None:
    """SQLite: the sessions of one thread reuse its connection, each in a transaction of its own (a
    commit made between two of them is seen by the second); a session opened while another is open
    gets a pool connection. PostgreSQL sessions always come from the pool."""
    engine = db.create_engine_for(database_url, connections=2)
    sessions = db.make_session_factory(engine)
    readers = db.ThreadConnections(engine, sessions)
    with sessions() as writer:
        writer.execute(text("CREATE TABLE seen (n INTEGER)"))
        writer.commit()
    used = []
    for n in range(3):
        with readers.session() as session:
            assert session.execute(text("SELECT count(*) FROM seen")).scalar() == n
            used.append(session.connection())
            with readers.session() as inner:  # opened inside the first
                assert inner.connection() is not session.connection()
                assert inner.execute(text("SELECT count(*) FROM seen")).scalar() == n
        with sessions() as writer:
            writer.execute(text("INSERT INTO seen VALUES (1)"))
            writer.commit()
    if engine.dialect.name == "sqlite":
        assert used[0] is used[1] is used[2]
    else:
        assert used[0] is not used[1] and used[1] is not used[2]  # each session its own pool checkout
    with sessions() as writer:
        writer.execute(text("DROP TABLE seen"))
        writer.commit()
    engine.dispose()
