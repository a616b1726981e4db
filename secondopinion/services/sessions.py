"""Server-side sessions: one row per signed-in browser, checked on every page, route and event.

Sign-in never hands out a session over the websocket. The page that checked the password (and the
second factor) gets a one-minute, single-use ticket and sends the browser to `/auth/session`,
whose HTTP response sets a new random session cookie and a new NiceGUI browser id. So every
sign-in starts a new session, and a session id fixed before sign-in is worth nothing after it.

A session ends when its owner signs out, after `session_idle_minutes` without a request or a
click, and after `session_max_hours` in any case. The page script reports activity at most once a minute.
It also ends at once when the password changes (the other sessions) or an admin deactivates the
account.
Pages open in a browser whose session ended are sent to the sign-in page by the listeners
registered here. Only SHA-256 digests of tickets and cookie values are stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import UserSession
from ..models.base import utcnow
from . import bus
from .actors import Actor, load_actor

logger = logging.getLogger(__name__)

COOKIE_NAME = 'secondopinion_session'
TICKET_LIFETIME = timedelta(seconds=60)
# A session's last activity is written at most this often, so that busy pages do not write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
USER_AGENT_MAX = 200

SIGNED_OUT = 'signed_out'
IDLE = 'idle'
EXPIRED = 'expired'
PASSWORD_CHANGED = 'password_changed'
DEACTIVATED = 'deactivated'
DELETED = 'deleted'


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Activation:
    token: str
    session_id: int
    user_id: int
    role: str


RevocationListener = Callable[[frozenset[int]], None]
_listeners: list[RevocationListener] = []
_listeners_lock = threading.Lock()
BUS_TOPIC = 'sessions-ended'
# Session ids per message to the other instances, which keeps each message far below the size limit.
IDS_PER_MESSAGE = 500


def add_revocation_listener(callback: RevocationListener) -> Callable[[], None]:
    """Call `callback` with the ids of sessions that ended; returns the function that removes it."""
    with _listeners_lock:
        _listeners.append(callback)

    def remove() -> None:
        with _listeners_lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return remove


def _announce(session_ids: Iterable[int]) -> None:
    """Tell this instance's listeners at once, then the other instances through the event channel."""
    ids = sorted(frozenset(session_ids))
    if not ids:
        return
    _tell_listeners(frozenset(ids))
    for first in range(0, len(ids), IDS_PER_MESSAGE):
        bus.forward(BUS_TOPIC, {'session_ids': ids[first:first + IDS_PER_MESSAGE]})


def _tell_listeners(ids: frozenset[int]) -> None:
    with _listeners_lock:
        callbacks = list(_listeners)
    for callback in callbacks:
        try:
            callback(ids)
        except Exception:
            logger.exception('session revocation listener failed for sessions %s', sorted(ids))


def _receive(data: dict) -> None:
    """Event channel handler: sessions that another instance ended."""
    ids = frozenset(int(value) for value in data.get('session_ids', ()))
    if ids:
        _tell_listeners(ids)


bus.on_message(BUS_TOPIC, _receive)


def start(session: Session, user_id: int, *, method: str, client_address: str | None) -> str:
    """Store a new, not yet active session for the user and return its single-use sign-in ticket."""
    ticket = secrets.token_urlsafe(32)
    now = utcnow()
    settings = get_settings()
    row = UserSession(user_id=user_id, ticket_hash=digest(ticket), ticket_expires_at=now + TICKET_LIFETIME,
                      created_at=now, expires_at=now + timedelta(hours=settings.session_max_hours),
                      method=method, client_address=client_address)
    session.add(row)
    session.flush()
    logger.info('session %s started for user %s (%s)', row.id, user_id, method)
    return ticket


def activate(ticket: str, *, client_address: str | None, user_agent: str | None) -> Activation | None:
    """Trade a ticket for a session cookie value, once, within a minute; None when that is not possible."""
    if not ticket:
        return None
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(UserSession)
            .where(UserSession.ticket_hash == digest(ticket), UserSession.ticket_expires_at > now,
                   UserSession.revoked_at.is_(None))
            .values(ticket_hash=None, ticket_expires_at=None, token_hash=digest(token), activated_at=now,
                    last_seen_at=now, client_address=client_address,
                    user_agent=(user_agent or '')[:USER_AGENT_MAX] or None))
        if result.rowcount != 1:
            logger.info('sign-in ticket rejected: unknown, used or expired')
            return None
        row = session.scalar(select(UserSession).where(UserSession.token_hash == digest(token)))
        assert row is not None
        actor = load_actor(session, row.user_id)
        if actor is None:
            row.revoked_at, row.revoke_reason = now, DEACTIVATED
            return None
        logger.info('session %s active for user %s', row.id, row.user_id)
        return Activation(token=token, session_id=row.id, user_id=row.user_id, role=actor.role)


def resolve(token: str | None, *, client_address: str | None = None, touch: bool = True) -> Actor | None:
    """Return the actor of a live session cookie, or None; ends the session when it has run out."""
    if not token:
        return None
    now = utcnow()
    settings = get_settings()
    ended: int | None = None
    with session_scope() as session:
        row = session.scalar(select(UserSession).where(UserSession.token_hash == digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        reason = None
        if row.expires_at <= now:
            reason = EXPIRED
        elif row.last_seen_at is not None and now - row.last_seen_at > timedelta(minutes=settings.session_idle_minutes):
            reason = IDLE
        actor = load_actor(session, row.user_id) if reason is None else None
        if reason is None and actor is None:
            reason = DEACTIVATED
        if reason is not None:
            row.revoked_at, row.revoke_reason = now, reason
            ended = row.id
            logger.info('session %s of user %s ended: %s', row.id, row.user_id, reason)
        elif touch and (row.last_seen_at is None or now - row.last_seen_at >= TOUCH_INTERVAL):
            row.last_seen_at = now
    if ended is not None:
        _announce([ended])
        return None
    assert actor is not None
    return replace(actor, session_id=row.id, client_address=client_address)


def is_live(session_id: int | None) -> bool:
    """Tell whether the session exists and has not ended (open pages check this every 30 seconds)."""
    if session_id is None:
        return False
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        return row is not None and row.revoked_at is None and row.expires_at > utcnow()


def end_reason(session_id: int | None) -> str | None:
    """Return why the session ended (one of the reasons above), None while it is live or unknown."""
    if session_id is None:
        return None
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        return row.revoke_reason if row is not None else None


def end(token: str | None, reason: str = SIGNED_OUT) -> None:
    """End the session of this cookie value (sign-out). Unknown or ended sessions are ignored."""
    if not token:
        return
    with session_scope() as session:
        row = session.scalar(select(UserSession).where(UserSession.token_hash == digest(token),
                                                       UserSession.revoked_at.is_(None)))
        if row is None:
            return
        row.revoked_at, row.revoke_reason = utcnow(), reason
        session_id, user_id = row.id, row.user_id
    logger.info('session %s of user %s ended: %s', session_id, user_id, reason)
    _announce([session_id])


def end_for_user(session: Session, user_id: int, *, reason: str, keep_session_id: int | None = None) -> list[int]:
    """End every live session of the user in the caller's transaction, except `keep_session_id`.

    Returns the ended ids; pass them to `announce_ended` after the transaction commits.
    """
    query = select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep_session_id is not None:
        query = query.where(UserSession.id != keep_session_id)
    now = utcnow()
    ended = []
    for row in session.scalars(query):
        row.revoked_at, row.revoke_reason = now, reason
        ended.append(row.id)
    if ended:
        logger.info('ended %s session(s) of user %s: %s', len(ended), user_id, reason)
    return ended


def announce_ended(session_ids: Iterable[int]) -> None:
    """Tell open pages that these sessions ended, so they leave at once."""
    _announce(session_ids)


def end_idle() -> int:
    """End sessions idle past the limit or past their lifetime; returns how many (scheduler job)."""
    settings = get_settings()
    now = utcnow()
    idle_before = now - timedelta(minutes=settings.session_idle_minutes)
    with session_scope() as session:
        rows = session.scalars(select(UserSession).where(
            UserSession.revoked_at.is_(None),
            (UserSession.expires_at <= now) | (UserSession.last_seen_at < idle_before)
            | ((UserSession.activated_at.is_(None)) & (UserSession.created_at < now - TICKET_LIFETIME)))).all()
        for row in rows:
            row.revoked_at = now
            row.revoke_reason = EXPIRED if row.expires_at <= now or row.activated_at is None else IDLE
        ended = [row.id for row in rows]
    _announce(ended)
    return len(ended)


def list_live(user_id: int) -> list[UserSession]:
    """Return the user's live sessions, newest first (for the profile page)."""
    with session_scope() as session:
        rows = session.scalars(select(UserSession).where(
            UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
            UserSession.activated_at.is_not(None)).order_by(UserSession.id.desc())).all()
        session.expunge_all()
        return list(rows)
