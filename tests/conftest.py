"""Fixtures shared by all tests: a fresh data folder and database per test, and personas."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from secondopinion import db
from secondopinion.config import reset_settings
from secondopinion.models import User
from secondopinion.models.base import utcnow
from secondopinion.services import accounts, pending_pages, sessions, uploads
from secondopinion.services.actors import Actor
from tests import fake_stripe
from tests.fake_stripe import FakeStripe
from tests.log_guard import GUARD
from tests.totp_codes import ADMIN_TOTP_SECRET

PASSWORD = 'correct horse battery'
_counter = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """Load the log hygiene check (tests/log_guard.py): the run fails when a log line holds a secret or name."""
    if not config.pluginmanager.has_plugin('secondopinion_log_guard'):
        config.pluginmanager.register(GUARD, 'secondopinion_log_guard')


def _reset_postgres(url: str) -> None:
    """Drop every table of the test database so each test starts from an empty schema."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text('DROP SCHEMA public CASCADE'))
        connection.execute(text('CREATE SCHEMA public'))
    engine.dispose()


@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch) -> Iterator[None]:
    """Point the app at an empty data folder (and database) under the test's temporary folder."""
    monkeypatch.setenv('SECONDOPINION_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setenv('SECONDOPINION_NOTIFICATION_INTERVAL_SECONDS', '0.2')
    postgres_url = os.environ.get('SECONDOPINION_TEST_DATABASE_URL')
    if postgres_url:
        monkeypatch.setenv('SECONDOPINION_DATABASE_URL', postgres_url)
        _reset_postgres(postgres_url)
    else:
        monkeypatch.delenv('SECONDOPINION_DATABASE_URL', raising=False)
    reset_settings()
    db.dispose_engine()
    # Shared board pages and resolved upload sessions belong to the previous test's database.
    pending_pages.clear()
    uploads.clear_resolved_sessions()
    db.migrate()
    yield
    GUARD.collect_names_of_test()
    db.dispose_engine()
    reset_settings()


def open_session(user_id: int) -> str:
    """Sign the user in as the sign-in page does, and return the session cookie value."""
    with db.session_scope() as session:
        ticket = sessions.start(session, user_id, method='password', client_address='127.0.0.1')
    activation = sessions.activate(ticket, client_address='127.0.0.1', user_agent='pytest')
    assert activation is not None
    return activation.token


@pytest.fixture
def admin() -> Actor:
    # Two-step sign-in is on with a secret that tests read from tests/totp_codes.py.
    info = accounts.create_admin(full_name='Ada Admin', email='admin@example.org', password=PASSWORD,
                                 totp_secret=ADMIN_TOTP_SECRET)
    actor = accounts.get_actor(info.user_id)
    assert actor is not None
    return actor


@pytest.fixture
def make_patient() -> Callable[..., Actor]:
    def make(name: str = 'Alice Patient', email: str | None = None, phone: str = '+41791234567',
             verified: bool = True) -> Actor:
        """Register a patient; `verified` confirms the email address, as the link in the welcome email does."""
        email = email or f'patient{next(_counter)}@example.org'
        info = accounts.register_patient(full_name=name, email=email, password=PASSWORD,
                                         date_of_birth=date(1980, 5, 17), phone=phone)
        if verified:
            with db.session_scope() as session:
                user = session.get(User, info.user_id)
                assert user is not None
                user.email_verified_at = utcnow()
        actor = accounts.get_actor(info.user_id)
        assert actor is not None
        return actor
    return make


@pytest.fixture
def make_doctor(admin: Actor) -> Callable[..., Actor]:
    def make(name: str = 'Dr. Bob Radiologist', email: str | None = None) -> Actor:
        number = next(_counter)
        email = email or f'doctor{number}@example.org'
        info = accounts.create_doctor(actor=admin, full_name=name, email=email, password=PASSWORD,
                                      license_number=f'LIC-{number:05d}', specialty='Radiology')
        actor = accounts.get_actor(info.user_id)
        assert actor is not None
        return actor
    return make


@pytest.fixture
def stripe_server(monkeypatch) -> Iterator[FakeStripe]:
    """Serve the fake Stripe API on loopback and point the app's Stripe settings at it."""
    fake, server = fake_stripe.start_fake_stripe()
    monkeypatch.setenv('SECONDOPINION_STRIPE_SECRET_KEY', fake_stripe.API_KEY)
    monkeypatch.setenv('SECONDOPINION_STRIPE_WEBHOOK_SECRET', fake_stripe.WEBHOOK_SECRET)
    monkeypatch.setenv('SECONDOPINION_STRIPE_API_BASE', fake.base_url)
    reset_settings()
    yield fake
    server.shutdown()
    server.server_close()
