"""The notification outbox: emails and texts are queued with the event that causes them, and a job delivers them.

`notify_patient` queues what the patient chose (email, SMS or both), and `enqueue_email` and
`sms.enqueue_sms` add a row in the caller's transaction, so a message exists exactly when its event
committed. `deliver_due` claims due rows one at a time with a compare-and-set UPDATE, sends outside any
transaction and records the result. Delivery is at least once: a run that crashes after the server
accepted a message but before recording it leaves the row in `sending`, and a later run sends it again
once the claim is older than STALE_CLAIM_AFTER.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mimetypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from .. import i18n
from ..config import get_settings
from ..db import session_scope
from ..i18n import _
from ..models import Notification, NotificationStatus, Role, User
from ..models.base import utcnow
from . import audit
from .account_links import redact
from .actors import Actor, require_role
from ..i18n import N_
from .errors import ConflictError, NotFoundError, ValidationError
from .mail import OutgoingEmail, Transport, get_transport
from .sms import SMS_CHANNEL, enqueue_sms, get_sms_transport

logger = logging.getLogger(__name__)

# A row claimed longer ago than this is taken to belong to a run that crashed mid-send, and is sent again.
STALE_CLAIM_AFTER = timedelta(minutes=10)
RETRY_MAX_DELAY = timedelta(hours=1)
MAX_ERROR_LENGTH = 500
EMAIL_CHANNEL = 'email'


# --- templates ---------------------------------------------------------------------------------
# Bodies name the examination and link to the app, but never contain findings or diagnosis text:
# the report itself travels only as the PDF attachment and behind the sign-in.

@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Template:
    required: tuple[str, ...]
    render: Callable[[Mapping[str, str]], RenderedEmail]


def _absolute_link(link: str) -> str:
    """Return an absolute URL: paths starting with "/" are joined to `public_base_url`."""
    if link.startswith(('http://', 'https://')):
        return link
    if not link.startswith('/'):
        raise ValueError(f'email link "{link}" is invalid: use a path starting with "/" or an http(s) URL')
    return get_settings().public_base_url.rstrip('/') + link


def _compose(subject: str, greeting_name: str | None, paragraphs: list[str], link: str | None,
             link_label: str) -> RenderedEmail:
    """Build the text and HTML bodies from plain-text paragraphs, already translated. Every value is HTML-escaped here.

    With no `greeting_name` the greeting is a plain "Hello,".
    """
    practice = get_settings().practice_name
    greeting = _('Hello {name},', name=greeting_name) if greeting_name else _('Hello,')
    regards = _('Kind regards,')
    text_parts = [greeting, *paragraphs]
    html_parts = [f'<p>{escape(greeting)}</p>', *(f'<p>{escape(p)}</p>' for p in paragraphs)]
    if link:
        text_parts.append(f'{link_label}:\n{link}')
        html_parts.append(f'<p><a href="{escape(link, quote=True)}">{escape(link_label)}</a></p>')
    text_parts.append(f'{regards}\n{practice}')
    html_parts.append(f'<p>{escape(regards)}<br>{escape(practice)}</p>')
    html = (f'<!DOCTYPE html>\n<html lang="{i18n.current_language()}">'
            '<body style="font-family: Arial, sans-serif; color: #1f2933;">\n'
            + '\n'.join(html_parts) + '\n</body></html>\n')
    return RenderedEmail(subject=subject, text='\n\n'.join(text_parts) + '\n', html=html)


def _render_report_ready(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    link = _absolute_link(context.get('link') or f'/exams/{exam_id}')
    return _compose(
        _('Your second opinion report is ready'), context['patient_name'],
        [_('The radiologist has finalized the second opinion for your examination {examination_id}.',
           examination_id=exam_id),
         _('The report is attached to this email as a PDF file. You can also read and download it after signing '
           'in.')],
        link, _('Sign in to view your report'))


def _render_report_amended(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    link = _absolute_link(context.get('link') or f'/exams/{exam_id}')
    return _compose(
        _('Your second opinion report has an addendum'), context['patient_name'],
        [_('The radiologist added an addendum to the report of examination {examination_id}, which makes it version '
           '{version}.', examination_id=exam_id, version=context['version']),
         _('The new version is attached as a PDF file; the earlier versions stay available after signing in.')],
        link, _('Sign in to view your report'))


def _render_payment_received(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    link = _absolute_link(context.get('link') or f'/exams/{exam_id}')
    return _compose(
        _('Payment received for your examination'), context['patient_name'],
        [_('We received your payment of {amount} for examination {examination_id}.', amount=context['amount'],
           examination_id=exam_id),
         _('Your case now waits for a radiologist. We will email you when a radiologist accepts it.')],
        link, _('Follow the status of your examination'))


def _render_case_accepted(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    link = _absolute_link(context.get('link') or f'/exams/{exam_id}')
    return _compose(
        _('A radiologist is reviewing your examination'), context['patient_name'],
        [_('A radiologist has accepted examination {examination_id} and is now reviewing your images.',
           examination_id=exam_id),
         _('We will email you when the report is ready.')],
        link, _('Follow the status of your examination'))


def _render_refund(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    link = _absolute_link(context.get('link') or f'/exams/{exam_id}')
    return _compose(
        _('Your examination was cancelled and refunded'), context['patient_name'],
        [_('Examination {examination_id} was cancelled.', examination_id=exam_id),
         _('We refunded {amount} to your original payment method.', amount=context['amount'])],
        link, _('View your examinations'))


def _render_welcome(context: Mapping[str, str]) -> RenderedEmail:
    """Render the registration email, which with `verify_link` also contains the link that confirms the address."""
    practice = get_settings().practice_name
    paragraphs = [_('Your account is ready. After signing in you can upload a study, describe your question '
                    'and follow your examination until the report arrives.')]
    if context.get('verify_link'):
        paragraphs.append(_('Please confirm your email address with the link below. You can prepare an examination '
                            'before that, but you can pay for it only once the address is confirmed. The link works '
                            'once, for 48 hours.'))
        return _compose(_('Welcome to {practice}', practice=practice), context['patient_name'], paragraphs,
                        _absolute_link(context['verify_link']), _('Confirm your email address'))
    # NOTE: the default sign-in path "/login" must match the route of the sign-in page.
    link = _absolute_link(context.get('link') or '/login')
    return _compose(_('Welcome to {practice}', practice=practice), context['patient_name'], paragraphs, link,
                    _('Sign in'))


def _render_verify_email(context: Mapping[str, str]) -> RenderedEmail:
    return _compose(
        _('Confirm your email address'), context['name'],
        [_('Please confirm that this is your email address. Once it is confirmed you can pay for your examinations.'),
         _('The link works once, for 48 hours. If you did not create an account with us, ignore this email.')],
        _absolute_link(context['link']), _('Confirm your email address'))


def _render_password_reset(context: Mapping[str, str]) -> RenderedEmail:
    return _compose(
        _('Reset your password'), context['name'],
        [_('We received a request to reset the password of your account. Choose a new password with the link '
           'below.'),
         _('The link works once, for 1 hour. If you did not ask for it, ignore this email: your password stays '
           'as it is.')],
        _absolute_link(context['link']), _('Choose a new password'))


def _render_password_changed(context: Mapping[str, str]) -> RenderedEmail:
    return _compose(
        _('Your password was changed'), context['name'],
        [_('The password of your account was changed on {time}. We signed you out everywhere else.',
           time=_moment(context['changed_at'])),
         _('If you did not change it, reset your password at once with the link below and tell the practice.')],
        _absolute_link('/forgot-password'), _('Reset your password'))


def _render_doctor_invite(context: Mapping[str, str]) -> RenderedEmail:
    practice = get_settings().practice_name
    return _compose(
        _('Your radiologist account at {practice}', practice=practice), context['name'],
        [_('An administrator of {practice} created a radiologist account for you.', practice=practice),
         _('Choose your password with the link below; you are signed in right after. The link works once, '
           'for 7 days. If it has expired, ask the administrator to send a new one.')],
        _absolute_link(context['link']), _('Choose your password'))


def _render_account_deleted(context: Mapping[str, str]) -> RenderedEmail:
    # No name in this message: its row outlives the account, and after sending nothing personal may remain.
    paragraphs = [
        _('As you asked, we deleted your account on {day}.', day=_day(context['deleted_on'])),
        _('We removed your images, your reports, the report files you uploaded, your clinical details and your '
          'personal details. We keep the payment records of your examinations without your name, because the '
          'practice must keep its accounts.'),
    ]
    if context.get('refunds'):
        paragraphs.append(_('We cancelled the examinations that were still waiting and refunded them: '
                            '{refunds}. The money goes back to your original payment method.',
                            refunds=context['refunds']))
    paragraphs.append(_('You can no longer sign in with this email address. You are welcome to register again '
                        'at any time.'))
    return _compose(_('Your account was deleted'), None, paragraphs, None, '')


def _render_question_asked(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    return _compose(
        _('A patient asked a question about your report'), context['name'],
        [_('The patient of examination {examination_id} asked a follow-up question about your report.',
           examination_id=exam_id),
         _('Please answer it in the app; the patient is notified of your answer.')],
        _absolute_link(context.get('link') or f'/doctor/cases/{exam_id}'),
        _('Sign in to read and answer the question'))


def _render_question_answered(context: Mapping[str, str]) -> RenderedEmail:
    exam_id = context['examination_id']
    return _compose(
        _('The radiologist answered your question'), context['patient_name'],
        [_('The radiologist answered your question about examination {examination_id}.', examination_id=exam_id)],
        _absolute_link(context.get('link') or f'/exams/{exam_id}'), _('Sign in to read the answer'))


def _moment(value: str) -> str:
    """Format a moment given as an ISO 8601 string in UTC for the reader's language; other text stays as it is."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return i18n.format_datetime(moment, ZoneInfo('UTC'))


def _day(value: str) -> str:
    """Format a day given as an ISO 8601 date for the reader's language; other text stays as it is."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    return i18n.format_date(day)


TEMPLATES: dict[str, _Template] = {
    'report_ready': _Template(('patient_name', 'examination_id'), _render_report_ready),
    'report_amended': _Template(('patient_name', 'examination_id', 'version'), _render_report_amended),
    'payment_received': _Template(('patient_name', 'examination_id', 'amount'), _render_payment_received),
    'case_accepted': _Template(('patient_name', 'examination_id'), _render_case_accepted),
    'refund': _Template(('patient_name', 'examination_id', 'amount'), _render_refund),
    'welcome': _Template(('patient_name',), _render_welcome),
    'verify_email': _Template(('name', 'link'), _render_verify_email),
    'password_reset': _Template(('name', 'link'), _render_password_reset),
    'password_changed': _Template(('name', 'changed_at'), _render_password_changed),
    'doctor_invite': _Template(('name', 'link'), _render_doctor_invite),
    'account_deleted': _Template(('deleted_on',), _render_account_deleted),
    'question_asked': _Template(('name', 'examination_id'), _render_question_asked),
    'question_answered': _Template(('patient_name', 'examination_id'), _render_question_answered),
}

# Templates whose body contains the secret of a single-use link. Once such an email is sent, the stored
# body keeps the link without its secret, so that neither the outbox rows nor the admin panel show it.
LINK_TEMPLATES = frozenset({'welcome', 'verify_email', 'password_reset', 'doctor_invite'})

# Templates whose recipient address is erased once the message was sent or finally failed, because
# the account it belonged to was deleted and the address may not be kept.
ERASE_RECIPIENT_AFTER_DELIVERY = frozenset({'account_deleted'})
ERASED_RECIPIENT = '(erased)'


def _recipient_after_delivery(claimed: _Claimed) -> dict[str, str]:
    """Return the column values that erase the recipient of a delivered message, when its template requires it."""
    return {'recipient': ERASED_RECIPIENT} if claimed.template in ERASE_RECIPIENT_AFTER_DELIVERY else {}


def render_template(template: str, context: Mapping[str, Any], *, language: str | None = None) -> RenderedEmail:
    """Render a named template in `language` (the current language when None).

    An amount may come as `amount_cents` and `currency`, which are formatted for the language into
    `amount`. Raises ValueError for an unknown template or a missing context value.
    """
    spec = TEMPLATES.get(template)
    if spec is None:
        raise ValueError(f'email template "{template}" is unknown: use one of {", ".join(sorted(TEMPLATES))}')
    with i18n.use_language(language or i18n.current_language()):
        context = with_formatted_amount(context)
        missing = [key for key in spec.required if context.get(key) in (None, '')]
        if missing:
            raise ValueError(f'email template "{template}" is missing context values: {", ".join(missing)}')
        values = {key: str(value) for key, value in context.items() if value is not None}
        return spec.render(values)


def with_formatted_amount(context: Mapping[str, Any]) -> dict[str, Any]:
    """Return the context with `amount` formatted in the current language from `amount_cents` and `currency`."""
    values = dict(context)
    if values.get('amount_cents') is not None:
        values['amount'] = i18n.format_money(int(values['amount_cents']), values.get('currency'))
    return values


def recipient_language(session: Session, user_id: int | None) -> str:
    """Return the language of the user who receives a message; English for a message to no account."""
    user = session.get(User, user_id) if user_id else None
    return user.language if user is not None and i18n.is_supported(user.language) else i18n.DEFAULT_LANGUAGE


# --- queueing ----------------------------------------------------------------------------------

def enqueue_email(session: Session, *, user_id: int | None, examination_id: str | None, recipient: str,
                  template: str, context: dict, attachment_key: str | None = None,
                  attachment_name: str | None = None, language: str | None = None) -> Notification:
    """Add a queued email to the outbox in the caller's session. It is sent only if that transaction commits.

    The email is rendered now in `language`, by default the language of the user `user_id` (the recipient),
    so the actor's page language never decides it.

    The attachment is read from blob storage at send time, so `attachment_key` must be saved before then.
    Raises ValueError for an unknown template, missing context values or an invalid recipient.
    """
    recipient = (recipient or '').strip()
    if '@' not in recipient or any(character.isspace() or ord(character) < 32 for character in recipient):
        raise ValueError(f'email recipient "{recipient}" is invalid: expected one address like name@example.org')
    if attachment_name and not attachment_key:
        raise ValueError('attachment_name was given without attachment_key')
    rendered = render_template(template, context, language=language or recipient_language(session, user_id))
    if attachment_key and not attachment_name:
        attachment_name = attachment_key.rsplit('/', 1)[-1]

    notification = Notification(
        user_id=user_id, examination_id=examination_id, channel=EMAIL_CHANNEL, recipient=recipient,
        template=template, subject=rendered.subject, body_text=rendered.text, body_html=rendered.html,
        attachment_key=attachment_key, attachment_name=attachment_name, status=NotificationStatus.QUEUED,
        attempts=0, next_attempt_at=utcnow(), last_error='',
    )
    session.add(notification)
    session.flush()
    logger.info('notification %s queued: template %s for examination %s', notification.id, template,
                examination_id)
    return notification


def notify_patient(session: Session, *, patient_user_id: int, examination_id: str | None, template: str,
                   context: dict, attachment_key: str | None = None, attachment_name: str | None = None) -> None:
    """Queue a message to a patient by email, SMS or both, as the patient chose in their profile.

    A patient who chose SMS only but has no phone number gets the email, so no message is lost.
    """
    from ..models import Patient, User

    user = session.get(User, patient_user_id)
    assert user is not None
    patient = session.scalar(select(Patient).where(Patient.user_id == user.id))
    by_email = patient is None or patient.notify_email
    by_sms = patient is not None and patient.notify_sms and bool(user.phone)
    if by_sms:
        enqueue_sms(session, user_id=user.id, examination_id=examination_id, recipient=user.phone or '',
                    template=template, context=context, language=user.language)
    if by_email or not by_sms:
        enqueue_email(session, user_id=user.id, examination_id=examination_id, recipient=user.email,
                      template=template, context=context, attachment_key=attachment_key,
                      attachment_name=attachment_name)


# --- delivery ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Candidate:
    """Snapshot of a due row from the selecting query. The claim succeeds only while the row is unchanged."""

    id: int
    status: str
    attempts: int
    claimed_at: datetime | None


@dataclass(frozen=True)
class _Claimed:
    """Copy of the fields needed to send a claimed row, taken so that no session stays open during the send."""

    id: int
    examination_id: str | None
    channel: str
    template: str
    recipient: str
    subject: str
    body_text: str
    body_html: str
    attachment_key: str | None
    attachment_name: str | None
    attempts_before: int
    claimed_at: datetime


def deliver_due(*, now: datetime | None = None, limit: int = 20) -> int:
    """Send up to `limit` due emails and texts and return how many were sent.

    Due means queued with `next_attempt_at <= now`, or stuck in `sending` for longer than
    STALE_CLAIM_AFTER. Every database step uses its own short transaction, and the run uses one
    clock value `now` for claims, `sent_at` and retry times.
    """
    now = _utc(now) if now is not None else utcnow()
    settings = get_settings()
    transport = get_transport(settings)
    sms_transport = get_sms_transport(settings)
    sent = 0
    for candidate in _select_due(now, limit):
        claimed = _claim(candidate, now)
        if claimed is None:
            continue
        if candidate.status == NotificationStatus.SENDING:
            logger.warning('notification %s for examination %s was claimed at %s and never finished; sending it '
                           'again, so the recipient may get it twice', claimed.id, claimed.examination_id,
                           candidate.claimed_at)
        try:
            if claimed.channel == SMS_CHANNEL:
                sms_transport.send(to=claimed.recipient, body=claimed.body_text, notification_id=claimed.id)
            else:
                _send(transport, claimed)
        except Exception as error:  # noqa: BLE001 - any failure of one message is recorded and retried
            _record_failure(claimed, error, now, settings.notification_max_attempts)
            continue
        if _record_success(claimed, now):
            sent += 1
            _after_sent(claimed)
    return sent


def _due_condition(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Notification.status == NotificationStatus.QUEUED, Notification.next_attempt_at <= now),
        and_(Notification.status == NotificationStatus.SENDING, Notification.claimed_at < now - STALE_CLAIM_AFTER),
    )


def _select_due(now: datetime, limit: int) -> list[_Candidate]:
    with session_scope() as session:
        rows = session.execute(
            select(Notification.id, Notification.status, Notification.attempts, Notification.claimed_at)
            .where(_due_condition(now))
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        ).all()
    return [_Candidate(id=row.id, status=row.status, attempts=row.attempts, claimed_at=row.claimed_at)
            for row in rows]


def _claim(candidate: _Candidate, now: datetime) -> _Claimed | None:
    """Mark the row as sending and commit, or return None when another run changed or claimed it first."""
    if candidate.claimed_at is None:
        same_claim = Notification.claimed_at.is_(None)
    else:
        same_claim = Notification.claimed_at == candidate.claimed_at
    with session_scope() as session:
        # The UPDATE comes first in this transaction, so SQLite takes the write lock before any read.
        result = session.execute(
            update(Notification)
            .where(Notification.id == candidate.id, Notification.status == candidate.status,
                   Notification.attempts == candidate.attempts, same_claim, _due_condition(now))
            .values(status=NotificationStatus.SENDING, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            logger.debug('notification %s was claimed by another run', candidate.id)
            return None
        row = session.get(Notification, candidate.id)
        assert row is not None
        return _Claimed(
            id=row.id, examination_id=row.examination_id, channel=row.channel, template=row.template,
            recipient=row.recipient,
            subject=row.subject, body_text=row.body_text, body_html=row.body_html,
            attachment_key=row.attachment_key, attachment_name=row.attachment_name,
            attempts_before=row.attempts, claimed_at=now,
        )


def _send(transport: Transport, claimed: _Claimed) -> None:
    attachments = []
    if claimed.attachment_key:
        from .storage import get_storage

        content = b''.join(get_storage().iter_chunks(claimed.attachment_key))
        name = claimed.attachment_name or claimed.attachment_key.rsplit('/', 1)[-1]
        content_type = mimetypes.guess_type(name)[0] or 'application/octet-stream'
        attachments.append((name, content_type, content))
    transport.send(OutgoingEmail(to=claimed.recipient, subject=claimed.subject, text=claimed.body_text,
                                 html=claimed.body_html, attachments=attachments, notification_id=claimed.id))


def _still_ours(claimed: _Claimed) -> ColumnElement[bool]:
    """Match the row only while this run's claim holds, so a run that reclaimed it is not overwritten."""
    return and_(Notification.id == claimed.id, Notification.status == NotificationStatus.SENDING,
                Notification.claimed_at == claimed.claimed_at)


def _record_success(claimed: _Claimed, now: datetime) -> bool:
    values: dict[str, Any] = {}
    if claimed.template in LINK_TEMPLATES:
        values = {'body_text': redact(claimed.body_text), 'body_html': redact(claimed.body_html)}
    with session_scope() as session:
        result = session.execute(
            update(Notification).where(_still_ours(claimed))
            .values(status=NotificationStatus.SENT, sent_at=now, attempts=claimed.attempts_before + 1,
                    claimed_at=None, **values, **_recipient_after_delivery(claimed))
            .execution_options(synchronize_session=False)
        )
    if result.rowcount != 1:
        logger.warning('notification %s for examination %s was sent, but another run had reclaimed it meanwhile',
                       claimed.id, claimed.examination_id)
        return False
    logger.info('notification %s sent: template %s for examination %s, attempt %s', claimed.id, claimed.template,
                claimed.examination_id, claimed.attempts_before + 1)
    return True


def _after_sent(claimed: _Claimed) -> None:
    """Complete the examination once the report email went out. A failure here is logged and does not undo the send."""
    if claimed.template != 'report_ready' or not claimed.examination_id:
        return
    try:
        from .examinations import mark_patient_notified

        mark_patient_notified(examination_id=claimed.examination_id)
    except Exception:
        logger.exception('notification %s was sent, but marking examination %s as notified failed',
                         claimed.id, claimed.examination_id)


def retry_delay(attempts: int) -> timedelta:
    """Return the wait after `attempts` failed attempts: the base delay, doubled per further attempt, at most 1 hour."""
    delay = timedelta(seconds=get_settings().notification_retry_base_seconds)
    for _attempt in range(1, attempts):
        delay *= 2
        if delay >= RETRY_MAX_DELAY:
            return RETRY_MAX_DELAY
    return delay


def _record_failure(claimed: _Claimed, error: Exception, now: datetime, max_attempts: int) -> None:
    attempts = claimed.attempts_before + 1
    message = _describe_error(error)
    final = attempts >= max_attempts
    next_attempt_at = now if final else now + retry_delay(attempts)
    erase = _recipient_after_delivery(claimed) if final else {}
    with session_scope() as session:
        result = session.execute(
            update(Notification).where(_still_ours(claimed))
            .values(status=NotificationStatus.FAILED if final else NotificationStatus.QUEUED, attempts=attempts,
                    last_error=message, next_attempt_at=next_attempt_at, claimed_at=None, **erase)
            .execution_options(synchronize_session=False)
        )
    if result.rowcount != 1:
        logger.warning('notification %s for examination %s failed (%s), but another run had reclaimed it meanwhile',
                       claimed.id, claimed.examination_id, message)
    elif final:
        logger.error('notification %s for examination %s failed after %s attempts, giving up: %s',
                     claimed.id, claimed.examination_id, attempts, message)
    else:
        logger.warning('notification %s for examination %s: attempt %s of %s failed, next attempt at %s: %s',
                       claimed.id, claimed.examination_id, attempts, max_attempts, next_attempt_at.isoformat(),
                       message)


def _describe_error(error: Exception) -> str:
    """Return "ExceptionClass: message", with the SMTP password and Twilio token masked, cut to MAX_ERROR_LENGTH."""
    text = f'{type(error).__name__}: {error}'
    settings = get_settings()
    for secret in (settings.smtp_password, settings.twilio_auth_token):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), '***')
    return text[:MAX_ERROR_LENGTH]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f'time {moment.isoformat()} has no time zone: pass an aware datetime in UTC')
    return moment.astimezone(UTC)


def _as_utc(moment: datetime | None) -> datetime | None:
    """Return the stored time as aware UTC. The SQLite driver returns naive values, which were written in UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- admin panel -------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotificationRow:
    """One outbox row for the admin panel. Bodies are left out because they contain personal data."""

    id: int
    created_at: datetime
    channel: str
    recipient: str
    template: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    examination_id: str | None
    user_id: int | None
    attachment_name: str | None


def retry_notification(*, actor: Actor, notification_id: int) -> None:
    """Queue a failed notification again with its attempt count reset (admins only)."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        row = session.get(Notification, notification_id)
        if row is None:
            raise NotFoundError(N_('Notification'))
        if row.status != NotificationStatus.FAILED:
            raise ConflictError(N_('Notification {id} is {status}. Only failed notifications can be retried.'),
                                id=notification_id, status=row.status)
        if row.recipient == ERASED_RECIPIENT:
            raise ConflictError(N_('Notification {id} cannot be retried: its recipient address was erased with the '
                                   'deleted account.'), id=notification_id)
        previous_attempts = row.attempts
        row.status = NotificationStatus.QUEUED
        row.attempts = 0
        row.next_attempt_at = utcnow()
        row.claimed_at = None
        audit.record(session, actor, 'notification.retried', 'notification', notification_id,
                     previous_attempts=previous_attempts, examination_id=row.examination_id)
        examination_id = row.examination_id
    logger.info('notification %s for examination %s queued again by user %s', notification_id, examination_id,
                actor.user_id)


def list_notifications(*, actor: Actor, status: str | None = None, limit: int = 200) -> list[NotificationRow]:
    """Return the newest outbox rows, optionally only those with one status (admins only)."""
    require_role(actor, Role.ADMIN)
    if status is not None and status not in set(NotificationStatus):
        allowed = ', '.join(NotificationStatus)
        raise ValidationError(N_('Notification status "{status}" is invalid: use one of {allowed}.'),
                              field='status', status=status, allowed=allowed)
    if limit < 1:
        raise ValidationError(N_('Limit {limit} is invalid: it must be at least 1.'), field='limit', limit=limit)
    with session_scope() as session:
        query = select(Notification).order_by(Notification.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Notification.status == status)
        rows = session.scalars(query).all()
        return [
            NotificationRow(
                id=row.id, created_at=_as_utc(row.created_at), channel=row.channel, recipient=row.recipient,
                template=row.template, subject=row.subject, status=row.status, attempts=row.attempts,
                next_attempt_at=_as_utc(row.next_attempt_at), sent_at=_as_utc(row.sent_at),
                last_error=row.last_error, examination_id=row.examination_id, user_id=row.user_id,
                attachment_name=row.attachment_name,
            )
            for row in rows
        ]


def outbox_files(*, actor: Actor) -> list[Path]:
    """Return the .eml files written by the outbox transport, newest first (admins only)."""
    require_role(actor, Role.ADMIN)
    folder = get_settings().outbox_dir
    if not folder.is_dir():
        return []
    # File names start with a fixed-width UTC timestamp, so name order is write order.
    return sorted((path for path in folder.glob('*.eml') if path.is_file()), key=lambda path: path.name,
                  reverse=True)


def read_eml(*, actor: Actor, name: str) -> str:
    """Return one outbox .eml file as a reader sees it: the main headers, the plain-text body and the
    names of attachments, with the secrets of account links removed (admins only)."""
    require_role(actor, Role.ADMIN)
    if not name or '/' in name or '\\' in name or name.startswith('.') or not name.endswith('.eml'):
        raise ValidationError(N_('Outbox file name "{name}" is invalid: expected a file name ending in .eml '
                                 'without a folder.'), field='name', name=name)
    path = get_settings().outbox_dir / name
    if not path.is_file():
        raise NotFoundError(N_('Outbox file'))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    lines = [f'{header}: {message[header]}' for header in ('From', 'To', 'Date', 'Subject') if message[header]]
    body = message.get_body(preferencelist=('plain',))
    text = body.get_content() if body is not None else ''
    attachments = [part.get_filename() or 'unnamed' for part in message.iter_attachments()]
    shown = '\n'.join(lines) + '\n\n' + text.strip()
    if attachments:
        shown += '\n\nAttachments: ' + ', '.join(attachments)
    # The file is the email as delivered, so it contains the secrets of account links, which the panel removes.
    return redact(shown)
