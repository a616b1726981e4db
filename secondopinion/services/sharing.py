"""Share links: a patient lets their own physician read one examination's images and report.

A link carries a random secret; only its SHA-256 digest is stored. It expires (7 days unless the
patient chooses otherwise), the patient can revoke it at any time, and it may require an access
code that the patient passes on separately. Opening a link with a valid code gives a grant: a
signed, one-hour string that the shared page puts into its image and download addresses, so the
code is typed once per visit. Every grant use is checked against the link again, so a revoked link
stops working at once. Every opening, refusal and download is written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import Examination, ExamStatus, Role, ShareLink
from ..models.base import utcnow
from . import audit
from .accounts import password_context
from .actors import SHARE_ROLE, Actor, require_role
from ..i18n import N_
from .errors import DomainError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 7
MAX_DAYS = 30
CODE_MIN_LENGTH = 4
CODE_MAX_LENGTH = 32
LABEL_MAX_LENGTH = 120
# Wrong codes in a row after which the link locks, and for how long.
MAX_FAILED_CODES = 5
LOCK_DURATION = timedelta(minutes=15)
GRANT_LIFETIME = timedelta(hours=1)
# Examinations in these states have nothing to share yet, or no longer.
UNSHAREABLE = frozenset({ExamStatus.DRAFT, ExamStatus.CANCELLED})


class ShareLinkError(DomainError):
    """A link that cannot be opened. `reason` is one of the constants below; the message explains what to do next."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


UNKNOWN = 'unknown'
EXPIRED = 'expired'
REVOKED = 'revoked'
CODE_REQUIRED = 'code_required'
WRONG_CODE = 'wrong_code'
LOCKED = 'locked'


@dataclass(frozen=True)
class ShareLinkView:
    id: int
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    has_code: bool
    use_count: int
    last_used_at: datetime | None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()


@dataclass(frozen=True)
class Grant:
    """The permission an opened link gives: reading one examination until `expires_at`."""

    value: str
    link_id: int
    examination_id: str
    expires_at: datetime

    def actor(self, client_address: str | None = None) -> Actor:
        """Return the actor for service calls made through this grant."""
        return _share_actor(self.link_id, self.examination_id, client_address)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(link: ShareLink) -> ShareLinkView:
    return ShareLinkView(id=link.id, label=link.label, created_at=link.created_at, expires_at=link.expires_at,
                         revoked_at=link.revoked_at, has_code=link.access_code_hash is not None,
                         use_count=link.use_count, last_used_at=link.last_used_at)


def _own_exam(session: Session, actor: Actor, examination_id: str) -> Examination:
    from .access import get_visible_exam

    require_role(actor, Role.PATIENT)
    return get_visible_exam(session, actor, examination_id)


def create_link(*, actor: Actor, examination_id: str, days: int = DEFAULT_DAYS, access_code: str = '',
                label: str = '') -> tuple[ShareLinkView, str]:
    """Create a link for the patient's examination; return it and its secret, which is shown only now."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(N_('Choose between 1 and {maximum} days, not {days}.'), field='days', maximum=MAX_DAYS,
                              days=days)
    access_code = (access_code or '').strip()
    if access_code and not CODE_MIN_LENGTH <= len(access_code) <= CODE_MAX_LENGTH:
        raise ValidationError(N_('The access code needs {minimum} to {maximum} characters, or leave it empty.'),
                              field='access_code', minimum=CODE_MIN_LENGTH, maximum=CODE_MAX_LENGTH)
    label = (label or '').strip()
    if len(label) > LABEL_MAX_LENGTH:
        raise ValidationError(N_('Shorten the name to at most {maximum} characters.'), field='label',
                              maximum=LABEL_MAX_LENGTH)
    token = secrets.token_urlsafe(24)
    with session_scope() as session:
        exam = _own_exam(session, actor, examination_id)
        if exam.status in UNSHAREABLE:
            raise ValidationError(N_('Only a submitted examination can be shared.'))
        now = utcnow()
        link = ShareLink(examination_id=exam.id, created_by_user_id=actor.user_id, token_hash=_digest(token),
                         label=label, access_code_hash=password_context.hash(access_code) if access_code else None,
                         created_at=now, expires_at=now + timedelta(days=days), use_count=0, failed_codes=0)
        session.add(link)
        session.flush()
        audit.record(session, actor, 'share.created', 'examination', exam.id, share_link_id=link.id, days=days,
                     with_code=bool(access_code))
        logger.info('share link %s created for examination %s, valid %s days', link.id, exam.id, days)
        return _view(link), token


def list_links(*, actor: Actor, examination_id: str) -> list[ShareLinkView]:
    with session_scope() as session:
        exam = _own_exam(session, actor, examination_id)
        links = session.scalars(select(ShareLink).where(ShareLink.examination_id == exam.id)
                                .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())).all()
        return [_view(link) for link in links]


def revoke_link(*, actor: Actor, examination_id: str, link_id: int) -> None:
    with session_scope() as session:
        exam = _own_exam(session, actor, examination_id)
        link = session.get(ShareLink, link_id)
        if link is None or link.examination_id != exam.id:
            raise NotFoundError(N_('Share link'))
        if link.revoked_at is None:
            link.revoked_at = utcnow()
            audit.record(session, actor, 'share.revoked', 'examination', exam.id, share_link_id=link.id)
            logger.info('share link %s of examination %s revoked', link.id, exam.id)


def _usable(link: ShareLink | None, now: datetime) -> ShareLink:
    if link is None:
        raise ShareLinkError(UNKNOWN, N_('This link is not valid. Check that you copied the whole address, or ask '
                                         'the patient for a new link.'))
    if link.revoked_at is not None:
        raise ShareLinkError(REVOKED, N_('The patient has withdrawn this link. Ask the patient for a new one.'))
    if link.expires_at <= now:
        raise ShareLinkError(EXPIRED, N_('This link has expired. Ask the patient for a new one.'))
    return link


def open_link(token: str, access_code: str = '', *, client_address: str | None = None) -> Grant:
    """Check a link and its code, count the use, and return a grant; raise ShareLinkError otherwise."""
    now = utcnow()
    with session_scope() as session:
        link = session.scalar(select(ShareLink).where(ShareLink.token_hash == _digest(token or '')))
        try:
            link = _usable(link, now)
            if link.locked_until is not None and link.locked_until > now:
                raise ShareLinkError(LOCKED, N_('Too many wrong access codes. Try again in 15 minutes, or ask the '
                                                'patient for the code.'))
            if link.access_code_hash is not None:
                if not access_code:
                    raise ShareLinkError(CODE_REQUIRED, N_('Enter the access code the patient gave you.'))
                if not password_context.verify(access_code.strip(), link.access_code_hash):
                    _count_wrong_code(session, link, now)
                    raise ShareLinkError(WRONG_CODE, N_('The access code is wrong. Check it with the patient.'))
        except ShareLinkError as error:
            if link is not None and error.reason != CODE_REQUIRED:
                logger.info('share link %s of examination %s refused: %s', link.id, link.examination_id,
                            error.reason)
                audit.record(session, _visitor(link, client_address), 'share.refused', 'examination',
                             link.examination_id, share_link_id=link.id, reason=error.reason)
                # Keep the refusal and the count of wrong codes, although the opening fails.
                session.commit()
            raise
        link.use_count += 1
        link.last_used_at, link.failed_codes, link.locked_until = now, 0, None
        grant = _issue_grant(link.id, link.examination_id, now + GRANT_LIFETIME)
        audit.record(session, _visitor(link, client_address), 'share.opened', 'examination', link.examination_id,
                     share_link_id=link.id)
        logger.info('share link %s of examination %s opened', link.id, link.examination_id)
        return grant


def _count_wrong_code(session: Session, link: ShareLink, now: datetime) -> None:
    session.execute(update(ShareLink).where(ShareLink.id == link.id)
                    .values(failed_codes=ShareLink.failed_codes + 1))
    session.refresh(link)
    if link.failed_codes >= MAX_FAILED_CODES:
        link.locked_until, link.failed_codes = now + LOCK_DURATION, 0
        logger.warning('share link %s locked after %s wrong access codes', link.id, MAX_FAILED_CODES)


def _visitor(link: ShareLink, client_address: str | None) -> Actor:
    return _share_actor(link.id, link.examination_id, client_address)


def _share_actor(link_id: int, examination_id: str, client_address: str | None) -> Actor:
    return Actor(user_id=0, role=SHARE_ROLE, name=f'share link {link_id}', client_address=client_address,
                 shared_examination_id=examination_id)


def _signature(payload: str) -> str:
    key = hashlib.sha256(b'share-grant:' + get_settings().storage_secret.get_secret_value().encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


def _issue_grant(link_id: int, examination_id: str, expires_at: datetime) -> Grant:
    payload = f'{link_id}.{int(expires_at.timestamp())}'
    return Grant(value=f'{payload}.{_signature(payload)}', link_id=link_id, examination_id=examination_id,
                 expires_at=expires_at)


def check_grant(value: str, *, what: str = '', client_address: str | None = None) -> Grant:
    """Return the grant when its signature, its time and its link are valid; raise NotFoundError otherwise.

    A non-empty `what` ("report_downloaded", "images_downloaded") writes the audit event `share.<what>`.
    """
    try:
        link_text, expiry_text, signature = value.split('.')
        link_id, expiry = int(link_text), int(expiry_text)
    except ValueError:
        raise NotFoundError(N_('Share link')) from None
    if not hmac.compare_digest(signature, _signature(f'{link_id}.{expiry}')):
        raise NotFoundError(N_('Share link'))
    now = utcnow()
    if expiry <= now.timestamp():
        raise NotFoundError(N_('Share link'))
    with session_scope() as session:
        link = session.get(ShareLink, link_id)
        try:
            link = _usable(link, now)
        except ShareLinkError:
            raise NotFoundError(N_('Share link')) from None
        if what:
            audit.record(session, _visitor(link, client_address), f'share.{what}', 'examination',
                         link.examination_id, share_link_id=link.id)
        return Grant(value=value, link_id=link.id, examination_id=link.examination_id,
                     expires_at=datetime.fromtimestamp(expiry, tz=now.tzinfo))


def shared_summary(grant: Grant) -> dict[str, str]:
    """Return what the shared page shows about the examination: patient, type and status."""
    from .examinations import MODALITIES, STATUS_LABELS
    from ..models import Patient

    with session_scope() as session:
        exam = session.get(Examination, grant.examination_id)
        assert exam is not None
        patient = session.get(Patient, exam.patient_id)
        assert patient is not None
        return {'patient': patient.user.full_name, 'born': patient.date_of_birth.isoformat(),
                'type': MODALITIES.get(exam.modality, exam.modality), 'body_part': exam.body_part,
                'question': exam.clinical_question, 'status': STATUS_LABELS[ExamStatus(exam.status)]}



def has_final_report(grant: Grant) -> bool:
    """Return whether the shared examination has a finalized report to download."""
    from ..models import Report

    with session_scope() as session:
        report = session.scalar(select(Report).where(Report.examination_id == grant.examination_id))
        return report is not None and report.is_final and bool(report.pdf_key)
