"""Password rules: at least 12 characters, long passphrases kept whole, and hashes with argon2."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import User
from secondopinion.services import accounts
from secondopinion.services.errors import ValidationError


def _register(email: str, password: str) -> None:
    accounts.register_patient(full_name='Pat Long', email=email, password=password, date_of_birth=date(1990, 1, 2))


def test_short_password_refused_and_nothing_written():
    with pytest.raises(ValidationError, match='at least 12 characters') as raised:
        _register('short@example.org', 'elevenchars')
    assert raised.value.field == 'password'
    with db.session_scope() as session:
        assert session.scalars(select(User)).all() == []


def test_long_passphrase_is_never_cut():
    passphrase = ('the quick brown fox jumps over the lazy dog, grüße aus Zürich ' * 5)[:accounts.MAX_PASSWORD_LENGTH]
    assert len(passphrase) == accounts.MAX_PASSWORD_LENGTH
    _register('long@example.org', passphrase)
    assert accounts.authenticate(email='long@example.org', password=passphrase).role == 'patient'
    # A password that differs only in its last character fails, so nothing was cut off.
    with pytest.raises(ValidationError, match='incorrect'):
        accounts.authenticate(email='long@example.org', password=passphrase[:-1] + 'X')
    with db.session_scope() as session:
        assert session.scalar(select(User.password_hash)).startswith('$argon2')


def test_too_long_password_refused_with_the_limit():
    with pytest.raises(ValidationError, match=f'at most {accounts.MAX_PASSWORD_LENGTH}'):
        _register('huge@example.org', 'x' * (accounts.MAX_PASSWORD_LENGTH + 1))
