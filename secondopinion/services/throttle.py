"""Sign-in throttle: failed sign-ins counted per account and per client address, in the database.

Policy:

- An account (keyed by its normalized email address, whether or not the account exists) is locked
  after 5 failed sign-ins, and a client address after 20. The attempt that reaches the limit
  locks the key for 1 minute. Each further failed attempt after a lock has ended locks it again for twice as
  long (2, 4, 8 minutes), capped at 15 minutes. A user is therefore never locked out for longer
  than 15 minutes at a time. NOTE: someone who keeps failing on another person's account keeps that
  account locked in 15-minute steps, which is the usual price of a per-account limit.
- While a key is locked, attempts are rejected before the password is checked, and they do not
  count as failures.
- A key's count starts again from zero after 15 minutes without a failure or a lock.
- A successful sign-in deletes the account's counter and takes back the attempt it counted
  against its address, so many people signing in behind one address do not lock it.

Each attempt is counted before its password is checked (`reserve_attempt`), inside one
transaction that holds the counter row locked, so attempts running at the same time cannot all
pass a check that only one of them should pass. Keys are stored as hex SHA-256 digests, never as
the email address or client address itself. The counters are shared by every app instance that
uses the same database.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db import session_scope
from ..models import SignInAttempt
from ..models.base import utcnow
from ..i18n import N_
from .errors import ValidationError

logger = logging.getLogger(__name__)

ACCOUNT = 'account'
ADDRESS = 'address'
MAX_FAILURES = {ACCOUNT: 5, ADDRESS: 20}
FIRST_LOCK = timedelta(minutes=1)
MAX_LOCK = timedelta(minutes=15)
# Time without a failure or a lock after which a key's count starts again from zero.
RESET_AFTER = timedelta(minutes=15)


class SignInThrottledError(ValidationError):
    """Too many failed sign-ins for the account or the client address; `retry_after` is the wait."""

    def __init__(self, retry_after: timedelta, *, password_was_checked: bool = False) -> None:
        minutes = max(1, math.ceil(retry_after.total_seconds() / 60))
        # NOTE: the one and many forms are separate msgids because DomainError carries no plural form.
        if password_was_checked:
            message = N_('Email or password is incorrect. Too many failed sign-ins. Try again in {count} minute.') \
                if minutes == 1 else \
                N_('Email or password is incorrect. Too many failed sign-ins. Try again in {count} minutes.')
        else:
            message = N_('Too many failed sign-ins. Try again in {count} minute.') if minutes == 1 else \
                N_('Too many failed sign-ins. Try again in {count} minutes.')
        super().__init__(message, count=minutes)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reservation:
    """The attempt that `reserve_attempt` counted, needed to take it back after a successful sign-in."""

    account_hash: str
    address_hash: str | None
    # The lock end that this attempt set on each key, None where it set no lock.
    account_locked_until: datetime | None
    address_locked_until: datetime | None

    @property
    def locked_until(self) -> datetime | None:
        """The later of the two lock ends that this attempt set, None when it set none."""
        ends = [end for end in (self.account_locked_until, self.address_locked_until) if end is not None]
        return max(ends, default=None)


def hash_key(value: str) -> str:
    """Return the hex SHA-256 of a key value (a normalized email address or a client address)."""
    return hashlib.sha256(value.encode('utf-8')).hexdigest()


def lock_duration(failures: int, kind: str) -> timedelta:
    """Return how long a key stays locked after its `failures`-th failure in a row."""
    doublings = failures - MAX_FAILURES[kind]
    # 2**4 minutes already exceeds the cap, so larger exponents need not be computed.
    return min(FIRST_LOCK * 2 ** min(doublings, 4), MAX_LOCK)


def reserve_attempt(session: Session, *, account: str, address: str | None,
                    now: datetime | None = None) -> Reservation:
    """Count one sign-in attempt against the account and the address before the password is checked.

    Raises SignInThrottledError, and counts nothing, while either key is locked. The caller must
    commit before checking the password, so concurrent attempts see this one, and should call
    `take_back` when the password was right.
    """
    account_hash = hash_key(account)
    address_hash = hash_key(address) if address else None
    # reserve_attempt and take_back both change the account row before the address row, so two
    # transactions never wait on each other's rows in opposite order.
    account_locked_until = _count_failure(session, ACCOUNT, account_hash, now)
    address_locked_until = _count_failure(session, ADDRESS, address_hash, now) if address_hash else None
    return Reservation(account_hash, address_hash, account_locked_until, address_locked_until)


def take_back(session: Session, reservation: Reservation) -> None:
    """Undo a reservation after a successful sign-in: clear the account's counter, return the address's attempt."""
    session.execute(delete(SignInAttempt).where(SignInAttempt.key_kind == ACCOUNT,
                                                SignInAttempt.key_hash == reservation.account_hash))
    if reservation.address_hash is None:
        return
    # One UPDATE, so a failure counted by a concurrent attempt in the meantime is kept. The lock is
    # removed only when it is the one this attempt set.
    values: dict[str, Any] = {'failures': case((SignInAttempt.failures > 0, SignInAttempt.failures - 1), else_=0)}
    lock_set_here = reservation.address_locked_until
    if lock_set_here is not None:
        values['locked_until'] = case((SignInAttempt.locked_until == lock_set_here, None),
                                      else_=SignInAttempt.locked_until)
    session.execute(update(SignInAttempt)
                    .where(SignInAttempt.key_kind == ADDRESS, SignInAttempt.key_hash == reservation.address_hash)
                    .values(**values))


def purge_stale(*, now: datetime | None = None) -> int:
    """Delete the counters that time has reset anyway; return how many were deleted."""
    cutoff = (now or utcnow()) - RESET_AFTER
    with session_scope() as session:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment] # DELETE returns a CursorResult
            delete(SignInAttempt).where(SignInAttempt.last_failed_at < cutoff,
                                        SignInAttempt.locked_until.is_(None) | (SignInAttempt.locked_until < cutoff)))
        return result.rowcount or 0


def _count_failure(session: Session, kind: str, key_hash: str, now: datetime | None) -> datetime | None:
    """Count one failure against a key under a row lock; return the lock end it set, or raise while locked."""
    # 1. Create the row if it is missing. This INSERT is the transaction's first statement, so on
    #    SQLite it takes the database write lock, which serializes the whole read-modify-write below.
    _insert_if_missing(session, kind, key_hash, now or utcnow())
    # 2. On PostgreSQL, FOR UPDATE makes a concurrent attempt wait until this transaction ends.
    row = session.execute(
        select(SignInAttempt).where(SignInAttempt.key_kind == kind, SignInAttempt.key_hash == key_hash)
        .with_for_update().execution_options(populate_existing=True)).scalar_one()
    # The clock is read only now, after any wait for the lock, so the remaining time is not overstated.
    now = now or utcnow()
    if row.locked_until is not None and row.locked_until > now:
        logger.info('sign-in rejected: %s key %s... locked until %s', kind, key_hash[:12], row.locked_until)
        raise SignInThrottledError(row.locked_until - now)

    # 3. Forget old failures, count this one, and lock the key when it reaches the limit.
    last_activity = max(row.last_failed_at, row.locked_until or row.last_failed_at)
    if now - last_activity >= RESET_AFTER:
        row.failures = 0
    row.failures += 1
    row.last_failed_at = now
    if row.failures < MAX_FAILURES[kind]:
        return None
    row.locked_until = now + lock_duration(row.failures, kind)
    logger.info('sign-in %s key %s... locked until %s after %s failures', kind, key_hash[:12], row.locked_until,
                row.failures)
    return row.locked_until


def _insert_if_missing(session: Session, kind: str, key_hash: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == 'postgresql' else sqlite_insert
    statement = insert(SignInAttempt).values(key_kind=kind, key_hash=key_hash, failures=0, last_failed_at=now)
    session.execute(statement.on_conflict_do_nothing(index_elements=['key_kind', 'key_hash']))
