"""Writing audit events: who did what to which object, when, and from which client address.

The table is append-only: migration 0005 makes the database refuse UPDATE and DELETE on it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session

from ..db import after_scope, session_scope
from ..models import AuditEvent
from .actors import Actor

logger = logging.getLogger(__name__)

# The page or HTTP route (its path) that the current request or page event serves, for access.denied rows.
_where: ContextVar[str | None] = ContextVar('secondopinion_audit_where', default=None)
WHERE_MAX = 200


def set_where(path: str | None) -> None:
    """Name the page or route being served, so that refusals deep in the services can record where they happened."""
    _where.set(path[:WHERE_MAX] if path else None)


def current_where() -> str | None:
    return _where.get()


def record(session: Session, actor: Actor, action: str, object_type: str, object_id: str | int,
           **detail: Any) -> None:
    """Add an event inside the caller's transaction, so it is written exactly when the change is."""
    session.add(AuditEvent(actor_user_id=actor.user_id or None, action=action, object_type=object_type,
                           object_id=str(object_id), client_address=actor.client_address, detail=detail))


def record_now(actor: Actor, action: str, object_type: str, object_id: str | int, **detail: Any) -> None:
    """Write an event in its own transaction: for reads and refusals, where the caller's may roll back."""
    try:
        with session_scope() as session:
            record(session, actor, action, object_type, object_id, **detail)
    except Exception:
        # A read must not fail because of its audit row, but the failure is logged for the operators.
        logger.exception('audit event %s for %s %s of user %s could not be written', action, object_type, object_id,
                         actor.user_id)


def record_denied(actor: Actor, object_type: str, object_id: str | int, **detail: Any) -> None:
    """Write that the actor asked for an object that is not theirs, with the page or route it happened on."""
    where = detail.pop('where', None) or current_where()
    if where:
        detail['where'] = where
    logger.info('access to %s %s denied to user %s', object_type, str(object_id)[:64], actor.user_id)
    record_now(actor, 'access.denied', object_type, str(object_id)[:64], **detail)


def record_denied_after(session: Session, actor: Actor, object_type: str, object_id: str | int,
                        **detail: Any) -> None:
    """Write `access.denied` once the caller's transaction has ended, committed or rolled back.

    A refusal usually rolls the caller's transaction back, and on SQLite a second writer would
    wait for the first, so the row is written in its own transaction after the caller's.
    """
    detail.setdefault('where', current_where())
    after_scope(session, lambda: record_denied(actor, object_type, object_id, **detail))


def record_sign_in(session: Session, action: str, *, user_id: int | None, email_hash: str,
                   client_address: str | None, **detail: Any) -> None:
    """Write a sign-in event for the user, or for the email's SHA-256 when no account has that email.

    The email address itself and the password are never written.
    """
    if user_id:
        object_type, object_id = 'user', str(user_id)
    else:
        object_type, object_id = 'email_sha256', email_hash
    session.add(AuditEvent(actor_user_id=user_id or None, action=action, object_type=object_type,
                           object_id=object_id, client_address=client_address, detail=detail))
