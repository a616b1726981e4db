"""The Alembic revisions create exactly the schema the models describe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from secondopinion import db
from secondopinion.models import Base


def test_migrations_match_models():
    with db.get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={'compare_type': False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrate_twice_is_harmless():
    db.migrate()
    db.migrate()
    db.ping()


def test_instances_starting_together_migrate_one_after_another():
    """Two processes that start at once on an empty PostgreSQL database both end with the newest schema."""
    url = os.environ.get('SECONDOPINION_TEST_DATABASE_URL')
    if not url:
        pytest.skip('concurrent migrations are checked on PostgreSQL')
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text('DROP SCHEMA public CASCADE'))
        connection.execute(text('CREATE SCHEMA public'))
    engine.dispose()
    script = ('from secondopinion import db\n'
              'db.migrate()\n')
    env = {**os.environ, 'SECONDOPINION_DATABASE_URL': url}
    processes = [subprocess.Popen([sys.executable, '-c', script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], '\n'.join(outputs)
