"""Writing audit events inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..models import AuditEvent
from .actors import Actor


def record(session: Session, actor: Actor, action: str, object_type: str, object_id: str | int,
           **detail: Any) -> None:
    session.add(AuditEvent(actor_user_id=actor.user_id or None, action=action, object_type=object_type,
                           object_id=str(object_id), detail=detail))


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
                           object_id=object_id, detail={'client_address': client_address or '', **detail}))
