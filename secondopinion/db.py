"""Database engine, sessions and schema migration."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from .config import get_settings

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / 'migrations'

# Key in Session.info of the callbacks that `session_scope` runs after the session closed.
AFTER_SCOPE = 'secondopinion_after_scope'

_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None


def _configure_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute('PRAGMA foreign_keys=ON')
    cursor.execute('PRAGMA journal_mode=WAL')
    # Writers wait up to 30 s for the lock instead of failing at once when two requests write together.
    cursor.execute('PRAGMA busy_timeout=30000')
    cursor.close()


def get_engine() -> Engine:
    global _engine, _session_factory
    if _engine is None:
        url = get_settings().resolved_database_url
        if url.startswith('sqlite'):
            get_settings().data_dir.mkdir(parents=True, exist_ok=True)
            _engine = create_engine(url, connect_args={'check_same_thread': False, 'timeout': 30})
            event.listen(_engine, 'connect', _configure_sqlite)
        else:
            _engine = create_engine(url, pool_pre_ping=True)
        _session_factory = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def dispose_engine() -> None:
    """Close every pooled connection and forget the engine (on shutdown and between tests)."""
    global _engine, _session_factory
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _session_factory = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """Yield a session that commits when the block ends normally and rolls back on any exception."""
    get_engine()
    assert _session_factory is not None
    session = _session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        for callback in session.info.pop(AFTER_SCOPE, ()):
            callback()


def after_scope(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's scope has ended, committed or rolled back.

    For writes that must happen whatever the caller's transaction does, in a transaction of their
    own that does not wait for the caller's (SQLite has one writer at a time).
    """
    session.info.setdefault(AFTER_SCOPE, []).append(callback)


# Key of the PostgreSQL advisory lock held while migrating; any number unique to this app.
MIGRATION_LOCK_KEY = 0x5EC0_0D01


def migrate() -> None:
    """Bring the database schema to the newest Alembic revision."""
    engine = get_engine()
    config = Config()
    config.set_main_option('script_location', str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == 'postgresql':
            # Instances that start together migrate one after the other: the lock lasts until this
            # transaction ends, and the next instance then finds the schema up to date.
            connection.execute(text('SELECT pg_advisory_xact_lock(:key)'), {'key': MIGRATION_LOCK_KEY})
        config.attributes['connection'] = connection
        command.upgrade(config, 'head')
    logger.info('database schema is up to date (%s)', engine.url.render_as_string(hide_password=True))


def ping() -> None:
    """Run a trivial query, raising when the database is unreachable."""
    with get_engine().connect() as connection:
        connection.execute(text('SELECT 1'))
