"""Settings: the documented example file and the production safety checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic import ValidationError

from secondopinion.config import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / '.env.example'


def test_env_example_lists_every_setting():
    listed = {key.removeprefix('SECONDOPINION_').lower() for key in dotenv_values(EXAMPLE)}
    assert listed == set(Settings.model_fields)


def test_env_example_matches_defaults(monkeypatch):
    for key in list(dotenv_values(EXAMPLE)):
        monkeypatch.delenv(key, raising=False)
    defaults = Settings(_env_file=None)
    example = Settings(_env_file=EXAMPLE)
    assert example.resolved_database_url == defaults.resolved_database_url
    assert example.prices_cents == defaults.prices_cents
    assert example.smtp_host in {None, ''}
    assert example.port == defaults.port


def test_production_rejects_default_secret():
    with pytest.raises(ValidationError, match='STORAGE_SECRET'):
        Settings(_env_file=None, environment='production', database_url='postgresql+psycopg://db/x')


def test_production_requires_database_url(monkeypatch):
    monkeypatch.delenv('SECONDOPINION_DATABASE_URL', raising=False)
    with pytest.raises(ValidationError, match='DATABASE_URL'):
        Settings(_env_file=None, environment='production', storage_secret='x' * 40)


def test_price_includes_urgent_surcharge():
    settings = Settings(_env_file=None)
    assert settings.price_for('ct', 'routine') == 15000
    assert settings.price_for('CT', 'urgent') == 22500
    assert settings.price_for('XA', 'routine') == settings.default_price_cents
