"""Sign-in throttle: counts per account and per client address, growing locks, reset, audit, concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, SignInAttempt
from secondopinion.models.base import utcnow
from secondopinion.services import accounts, throttle
from secondopinion.services.errors import ValidationError
from secondopinion.services.throttle import SignInThrottledError
from tests.conftest import PASSWORD

WRONG = 'not the right password'
ADDRESS = '192.0.2.10'
INCORRECT = 'Email or password is incorrect.'
LOCKED_ONE_MINUTE = 'Too many failed sign-ins. Try again in 1 minute.'


def _sign_in_message(email: str, password: str = WRONG, address: str | None = ADDRESS) -> str:
    """Return the error message of one sign-in attempt, or 'signed in'."""
    try:
        accounts.authenticate(email=email, password=password, client_address=address)
    except ValidationError as error:
        return str(error)
    return 'signed in'


def _audit_actions() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like('sign_in.%'))
                                    .order_by(AuditEvent.id)))


def _counter(kind: str, value: str) -> SignInAttempt | None:
    with session_scope() as session:
        return session.scalar(select(SignInAttempt).where(SignInAttempt.key_kind == kind,
                                                          SignInAttempt.key_hash == throttle.hash_key(value)))


def _end_all_locks() -> None:
    """Move every stored lock end into the past, as if the user had waited."""
    with session_scope() as session:
        session.execute(update(SignInAttempt).values(locked_until=utcnow() - timedelta(seconds=1)))


def _reserve(account: str, now: datetime, address: str | None = None) -> throttle.Reservation:
    with session_scope() as session:
        return throttle.reserve_attempt(session, account=account, address=address, now=now)


def test_account_locked_after_five_failures(make_patient):
    make_patient(email='alice@example.org')
    messages = [_sign_in_message('alice@example.org') for _ in range(5)]
    assert messages[:4] == [INCORRECT] * 4
    assert messages[4] == f'{INCORRECT} {LOCKED_ONE_MINUTE}'

    # The right password is not even checked while the account is locked.
    assert _sign_in_message('alice@example.org', PASSWORD) == LOCKED_ONE_MINUTE
    assert _audit_actions() == ['sign_in.failed'] * 5 + ['sign_in.throttled']


def test_lock_ends_and_right_password_works(make_patient):
    make_patient(email='alice@example.org')
    for _ in range(5):
        _sign_in_message('alice@example.org')
    _end_all_locks()
    assert _sign_in_message('Alice@Example.org', PASSWORD) == 'signed in'
    assert _counter('account', 'alice@example.org') is None


def test_unknown_account_gets_same_messages(make_patient):
    make_patient(email='alice@example.org')
    known = [_sign_in_message('alice@example.org') for _ in range(6)]
    unknown = [_sign_in_message('nobody@example.org') for _ in range(6)]
    assert unknown == known


def test_invalid_email_counted_too():
    messages = [_sign_in_message('not an email') for _ in range(6)]
    assert messages[0] == INCORRECT
    assert messages[5] == LOCKED_ONE_MINUTE


def test_address_locked_after_twenty_failures(make_patient):
    make_patient(email='alice@example.org')
    # 20 different accounts, one failure each, so only the address count reaches its limit.
    messages = [_sign_in_message(f'guess{number}@example.org') for number in range(20)]
    assert messages[:19] == [INCORRECT] * 19
    assert messages[19] == f'{INCORRECT} {LOCKED_ONE_MINUTE}'

    assert _sign_in_message('alice@example.org', PASSWORD) == LOCKED_ONE_MINUTE
    assert _sign_in_message('alice@example.org', PASSWORD, address='198.51.100.7') == 'signed in'
    assert _sign_in_message('alice@example.org', PASSWORD, address=None) == 'signed in'


def test_success_clears_account_count(make_patient):
    make_patient(email='alice@example.org')
    for _ in range(4):
        _sign_in_message('alice@example.org')
    assert _sign_in_message('alice@example.org', PASSWORD) == 'signed in'
    assert _counter('account', 'alice@example.org') is None
    messages = [_sign_in_message('alice@example.org') for _ in range(5)]
    assert messages[:4] == [INCORRECT] * 4
    assert messages[4] == f'{INCORRECT} {LOCKED_ONE_MINUTE}'


def test_success_takes_back_address_attempt(make_patient):
    make_patient(email='alice@example.org')
    for number in range(3):
        _sign_in_message(f'guess{number}@example.org')
    for _ in range(30):
        assert _sign_in_message('alice@example.org', PASSWORD) == 'signed in'
    counter = _counter('address', ADDRESS)
    assert counter is not None
    assert counter.failures == 3
    assert counter.locked_until is None


def test_success_removes_lock_it_set():
    now = utcnow()
    for number in range(19):
        _reserve(f'guess{number}@example.org', now, ADDRESS)
    reservation = _reserve('alice@example.org', now, ADDRESS)
    assert reservation.address_locked_until == now + timedelta(minutes=1)
    with session_scope() as session:
        throttle.take_back(session, reservation)
    counter = _counter('address', ADDRESS)
    assert counter is not None
    assert counter.failures == 19
    assert counter.locked_until is None


def test_lock_doubles_up_to_cap():
    start = utcnow()
    now = start
    for _ in range(4):
        assert _reserve('alice@example.org', now).locked_until is None
    locks = []
    for _ in range(7):
        reservation = _reserve('alice@example.org', now)
        assert reservation.locked_until is not None
        locks.append(reservation.locked_until - now)
        now = reservation.locked_until
    assert locks == [timedelta(minutes=minutes) for minutes in (1, 2, 4, 8, 15, 15, 15)]


def test_locked_attempt_counts_nothing():
    now = utcnow()
    for _ in range(5):
        _reserve('alice@example.org', now)
    with pytest.raises(SignInThrottledError) as raised:
        _reserve('alice@example.org', now + timedelta(seconds=50))
    assert raised.value.retry_after == timedelta(seconds=10)
    assert str(raised.value) == LOCKED_ONE_MINUTE
    counter = _counter('account', 'alice@example.org')
    assert counter is not None
    assert counter.failures == 5


def test_wait_message_in_whole_minutes():
    assert str(SignInThrottledError(timedelta(seconds=61))) == 'Too many failed sign-ins. Try again in 2 minutes.'
    assert str(SignInThrottledError(timedelta(seconds=1))) == LOCKED_ONE_MINUTE
    assert str(SignInThrottledError(timedelta(minutes=15))) == 'Too many failed sign-ins. Try again in 15 minutes.'


def test_count_restarts_after_quiet_period():
    now = utcnow()
    for _ in range(4):
        _reserve('alice@example.org', now)
    later = now + throttle.RESET_AFTER
    for _ in range(4):
        assert _reserve('alice@example.org', later).locked_until is None
    assert _reserve('alice@example.org', later).locked_until == later + timedelta(minutes=1)


def test_escalation_kept_within_quiet_period():
    now = utcnow()
    for _ in range(5):
        reservation = _reserve('alice@example.org', now)
    assert reservation.locked_until is not None
    # Fourteen minutes after the lock ended, the next failure still doubles the lock.
    later = reservation.locked_until + timedelta(minutes=14)
    assert _reserve('alice@example.org', later).locked_until == later + timedelta(minutes=2)


def test_purge_keeps_recent_counters():
    now = utcnow()
    _reserve('old@example.org', now - timedelta(hours=1))
    _reserve('recent@example.org', now)
    assert throttle.purge_stale(now=now) == 1
    assert _counter('account', 'old@example.org') is None
    assert _counter('account', 'recent@example.org') is not None


def test_audit_rows_without_email(make_patient):
    alice = make_patient(email='alice@example.org')
    _sign_in_message('alice@example.org')
    _sign_in_message('nobody@example.org')
    _sign_in_message('alice@example.org', PASSWORD)
    with session_scope() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action.like('sign_in.%'))
                                      .order_by(AuditEvent.id)))
    assert [event.action for event in events] == ['sign_in.failed', 'sign_in.failed', 'sign_in.succeeded']
    assert [event.actor_user_id for event in events] == [alice.user_id, None, alice.user_id]
    assert [(event.object_type, event.object_id) for event in events] == [
        ('user', str(alice.user_id)), ('email_sha256', throttle.hash_key('nobody@example.org')),
        ('user', str(alice.user_id))]
    for event in events:
        assert event.client_address == ADDRESS
        assert event.at is not None
        assert 'example.org' not in repr(event.detail)
        assert PASSWORD not in repr(event.detail)
        assert WRONG not in repr(event.detail)


def test_counters_store_hashes_only(make_patient):
    make_patient(email='alice@example.org')
    _sign_in_message('alice@example.org')
    with session_scope() as session:
        keys = {(row.key_kind, row.key_hash) for row in session.scalars(select(SignInAttempt))}
    assert keys == {('account', throttle.hash_key('alice@example.org')), ('address', throttle.hash_key(ADDRESS))}


def _concurrent_messages(emails: list[str]) -> list[str]:
    """Start one sign-in per email, all released at the same moment, and return their messages."""
    barrier = threading.Barrier(len(emails))

    def attempt(email: str) -> str:
        barrier.wait()
        return _sign_in_message(email)

    with ThreadPoolExecutor(max_workers=len(emails)) as pool:
        return list(pool.map(attempt, emails))


def test_concurrent_account_attempts_counted(make_patient):
    make_patient(email='alice@example.org')
    messages = _concurrent_messages(['alice@example.org'] * 10)
    checked = [message for message in messages if message.startswith(INCORRECT)]
    rejected = [message for message in messages if message == LOCKED_ONE_MINUTE]
    assert len(checked) == 5, messages
    assert len(rejected) == 5, messages
    assert _audit_actions().count('sign_in.failed') == 5
    assert _audit_actions().count('sign_in.throttled') == 5
    counter = _counter('account', 'alice@example.org')
    assert counter is not None
    assert counter.failures == 5


def test_concurrent_address_attempts_counted():
    messages = _concurrent_messages([f'guess{number}@example.org' for number in range(24)])
    checked = [message for message in messages if message.startswith(INCORRECT)]
    assert len(checked) == 20
    assert messages.count(LOCKED_ONE_MINUTE) == 4
    counter = _counter('address', ADDRESS)
    assert counter is not None
    assert counter.failures == 20
