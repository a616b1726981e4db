"""The Alembic revisions create exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
