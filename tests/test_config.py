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


PRODUCTION = {'environment': 'production', 'storage_secret': 's' * 48,
              'database_url': 'postgresql+psycopg://db/x', 'stripe_secret_key': 'sk_live_x',
              'stripe_webhook_secret': 'whsec_x', 'smtp_host': 'smtp.example.org',
              'public_base_url': 'https://second.example.org'}


def test_complete_production_settings_are_accepted():
    settings = Settings(_env_file=None, **PRODUCTION)
    assert settings.production_problems() == []
    assert settings.cookies_secure


@pytest.mark.parametrize(('change', 'setting'), [
    ({'storage_secret': 'too-short'}, 'STORAGE_SECRET'),
    ({'stripe_secret_key': None, 'stripe_webhook_secret': None}, 'STRIPE_SECRET_KEY'),
    ({'smtp_host': None}, 'SMTP_HOST'),
    ({'public_base_url': 'http://second.example.org'}, 'PUBLIC_BASE_URL'),
])
def test_production_refuses_missing_keys(change, setting):
    with pytest.raises(ValidationError, match=setting):
        Settings(_env_file=None, **{**PRODUCTION, **change})


def test_production_lists_every_problem_at_once(monkeypatch):
    monkeypatch.delenv('SECONDOPINION_DATABASE_URL', raising=False)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, environment='production')
    message = str(raised.value)
    for setting in ('STORAGE_SECRET', 'DATABASE_URL', 'STRIPE_SECRET_KEY', 'SMTP_HOST', 'PUBLIC_BASE_URL'):
        assert f'SECONDOPINION_{setting}' in message


def test_price_includes_urgent_surcharge():
    settings = Settings(_env_file=None)
    assert settings.price_for('ct', 'routine') == 15000
    assert settings.price_for('CT', 'urgent') == 22500
    assert settings.price_for('XA', 'routine') == settings.default_price_cents


def test_public_url_follows_port(monkeypatch):
    monkeypatch.delenv('SECONDOPINION_PUBLIC_BASE_URL', raising=False)
    assert Settings(_env_file=None, port=8391).public_base_url == 'http://127.0.0.1:8391'
    assert Settings(_env_file=None).public_base_url == 'http://127.0.0.1:8080'
    chosen = Settings(_env_file=None, port=8391, public_base_url='https://second.example.org')
    assert chosen.public_base_url == 'https://second.example.org'
