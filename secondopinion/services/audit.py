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
