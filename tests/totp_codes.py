"""TOTP codes for tests: the admin fixture's secret, and a code that the app has not accepted yet."""

from __future__ import annotations

import time

import pyotp
from sqlalchemy import select

from secondopinion.db import session_scope
from secondopinion.models import User

# Made once per test run; the `admin` fixture turns on two-step sign-in with it.
ADMIN_TOTP_SECRET = pyotp.random_base32()
# Secrets that the sign-in helpers use by default, by email address.
TOTP_SECRETS = {'admin@example.org': ADMIN_TOTP_SECRET}


def fresh_step(secret: str, last_step: int | None) -> int:
    """Return a time step after `last_step` that the app accepts now, waiting for the next step if needed.

    The app accepts each step once, and only the current step and its neighbours, so signing in
    twice within 30 seconds needs the code of the next step.
    """
    totp = pyotp.TOTP(secret)
    while True:
        current = totp.timecode(time.time())
        step = current if last_step is None else max(current, last_step + 1)
        if step <= current + 1:
            return step
        time.sleep(totp.interval - time.time() % totp.interval + 0.05)


def fresh_code(secret: str, last_step: int | None) -> str:
    """Return the code of `fresh_step`."""
    return pyotp.TOTP(secret).generate_otp(fresh_step(secret, last_step))


def fresh_code_for(email: str, secret: str) -> str:
    """Return a code that the app accepts now for the account, reading the last step it accepted."""
    with session_scope() as session:
        last_step = session.scalar(select(User.totp_last_step).where(User.email == email))
    return fresh_code(secret, last_step)
