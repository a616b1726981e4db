"""Reading the audit log for admins: filters, pages of 50 newest first, and a CSV export.

Writing events is in audit.py; the table itself is append-only.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from ..db import session_scope
from ..models import AuditEvent, Doctor, Patient, Role, User
from . import audit
from .actors import Actor, require_role
from .errors import ValidationError
from .throttle import hash_key

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
# Rows in one CSV export; a larger selection must be narrowed with the filters.
EXPORT_LIMIT = 100_000


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit log view. Empty text matches every row, and times are UTC: `start` inclusive, `end` exclusive."""

    user: str = ''
    action: str = ''
    object_type: str = ''
    object_id: str = ''
    client_address: str = ''
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user_id: int | None
    user_email: str
    action: str
    object_type: str
    object_id: str
    client_address: str
    detail: str


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int
    page: int
    pages: int


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _user_condition(session: Session, text: str) -> ColumnElement[bool]:
    """Match events by or about a user given by id or email address.

    For an email address without an account, the sign-in attempts made with it match, because
    they are stored under the SHA-256 of the address.
    """
    if text.isdigit():
        return _by_or_about(session, int(text))
    email = text.lower()
    if '@' not in email:
        raise ValidationError(f'User "{text}" is neither a user id (digits) nor an email address. '
                              'Type the id or the full email address.', field='user')
    user_id = session.scalar(select(User.id).where(func.lower(User.email) == email))
    by_hash = (AuditEvent.object_type == 'email_sha256') & (AuditEvent.object_id == hash_key(email))
    if user_id is None:
        return by_hash
    return or_(_by_or_about(session, user_id), by_hash)


def _by_or_about(session: Session, user_id: int) -> ColumnElement[bool]:
    """Events the user made, and events whose object is the user's account or their patient or doctor record."""
    about = [(AuditEvent.object_type == 'user') & (AuditEvent.object_id == str(user_id))]
    for model, object_type in ((Patient, 'patient'), (Doctor, 'doctor')):
        record_id = session.scalar(select(model.id).where(model.user_id == user_id))
        if record_id is not None:
            about.append((AuditEvent.object_type == object_type) & (AuditEvent.object_id == str(record_id)))
    return or_(AuditEvent.actor_user_id == user_id, *about)


def _query(session: Session, filters: AuditFilter) -> Select:
    start, end = _as_utc(filters.start), _as_utc(filters.end)
    if start is not None and end is not None and start >= end:
        raise ValidationError('The "from" date must be on or before the "to" date.', field='start')
    query = select(AuditEvent)
    if filters.user.strip():
        query = query.where(_user_condition(session, filters.user.strip()))
    for column, value in ((AuditEvent.action, filters.action), (AuditEvent.object_type, filters.object_type),
                          (AuditEvent.object_id, filters.object_id),
                          (AuditEvent.client_address, filters.client_address)):
        if value.strip():
            query = query.where(column == value.strip())
    if start is not None:
        query = query.where(AuditEvent.at >= start)
    if end is not None:
        query = query.where(AuditEvent.at < end)
    return query


def _entries(session: Session, events: list[AuditEvent]) -> list[AuditEntry]:
    user_ids = {event.actor_user_id for event in events if event.actor_user_id}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}
    return [AuditEntry(id=event.id, at=_as_utc(event.at) or event.at, user_id=event.actor_user_id,
                       user_email=emails.get(event.actor_user_id, '') if event.actor_user_id else '',
                       action=event.action, object_type=event.object_type, object_id=event.object_id,
                       client_address=event.client_address or '',
                       detail=json.dumps(event.detail or {}, sort_keys=True, ensure_ascii=False))
            for event in events]


def search(*, actor: Actor, filters: AuditFilter = AuditFilter(), page: int = 1) -> AuditPage:
    """Return one page of up to 50 matching events, newest first, and the number of all matching events."""
    require_role(actor, Role.ADMIN)
    if page < 1:
        raise ValidationError(f'Page {page} is invalid: pages start at 1.', field='page')
    with session_scope() as session:
        query = _query(session, filters)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        pages = max(1, -(-total // PAGE_SIZE))
        events = session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                 .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        return AuditPage(entries=_entries(session, list(events)), total=total, page=page, pages=pages)


def choices(*, actor: Actor) -> tuple[list[str], list[str]]:
    """Return the actions and the object types that occur in the log, for the filter lists."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        actions = session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
        types = session.scalars(select(AuditEvent.object_type).distinct().order_by(AuditEvent.object_type)).all()
        return list(actions), list(types)


def export_csv(*, actor: Actor, filters: AuditFilter = AuditFilter()) -> str:
    """Return the matching events as CSV, newest first, and record the export itself in the log.

    Cells that a spreadsheet would read as a formula get a leading apostrophe.
    """
    require_role(actor, Role.ADMIN)
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(['id', 'at_utc', 'user_id', 'user_email', 'action', 'object_type', 'object_id',
                     'client_address', 'detail'])
    with session_scope() as session:
        query = _query(session, filters).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(EXPORT_LIMIT)
        entries = _entries(session, list(session.scalars(query).all()))
        for entry in entries:
            writer.writerow([entry.id, entry.at.strftime('%Y-%m-%d %H:%M:%S'), entry.user_id or '',
                             *(_csv_text(value) for value in (entry.user_email, entry.action, entry.object_type,
                                                              entry.object_id, entry.client_address, entry.detail))])
        applied = {key: (value.isoformat() if isinstance(value, datetime) else value)
                 for key, value in asdict(filters).items() if value}
        if '@' in applied.get('user', ''):
            # An address typed by the admin may match no account, so the log keeps only its SHA-256.
            applied['user'] = 'email_sha256:' + hash_key(applied['user'].strip().lower())
        audit.record(session, actor, 'audit_log.exported', 'audit_log', '-', rows=len(entries), filters=applied)
    logger.info('audit log export of %d rows by user %s', len(entries), actor.user_id)
    return output.getvalue()


def _csv_text(value: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula (same rule as the ledger export)."""
    return "'" + value if value[:1] in ('=', '+', '-', '@', '\t', '\r') else value
