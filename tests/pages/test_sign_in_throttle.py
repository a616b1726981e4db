"""Sign-in page under the throttle: repeated wrong passwords lock the account for a while, not forever."""

from __future__ import annotations

from datetime import timedelta

from nicegui.testing import User
from sqlalchemy import select, update

from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, SignInAttempt
from secondopinion.models.base import utcnow

from .helpers import sign_in

WRONG = 'wrong password here'
LOCKED = 'Too many failed sign-ins. Try again in 1 minute.'


async def test_wrong_passwords_lock_then_unlock(user: User, make_patient):
    make_patient('Carol', email='carol@example.org')
    for _ in range(4):
        await sign_in(user, 'carol@example.org', WRONG)
        await user.should_see('Email or password is incorrect.')
        await user.should_not_see('Too many failed sign-ins')
    await sign_in(user, 'carol@example.org', WRONG)
    await user.should_see(LOCKED)

    await sign_in(user, 'carol@example.org')
    await user.should_see(LOCKED)
    await user.should_not_see('My examinations')

    # Waiting out the lock: its stored end moves into the past.
    with session_scope() as session:
        session.execute(update(SignInAttempt).values(locked_until=utcnow() - timedelta(seconds=1)))
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')


async def test_page_passes_client_address(user: User, make_patient):
    make_patient('Carol', email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    with session_scope() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == 'sign_in.succeeded')).one()
    # httpx's ASGI transport, which the User fixture uses, reports this client address.
    assert event.client_address == '127.0.0.1'


async def test_unknown_account_locked_alike(user: User):
    for _ in range(5):
        await sign_in(user, 'nobody@example.org', WRONG)
        await user.should_see('Email or password is incorrect.')
    await sign_in(user, 'nobody@example.org', WRONG)
    await user.should_see(LOCKED)
