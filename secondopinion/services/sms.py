"""Text messages: short status texts for patients who chose SMS, sent through Twilio or, by default, logged.

Texts name no finding or diagnosis, only what changed and where to sign in. They are queued in
the notification outbox like emails (channel "sms") and delivered by the same job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from .. import i18n
from ..config import Settings, get_settings
from ..i18n import N_
from ..models import Notification, NotificationStatus
from ..models.base import utcnow

logger = logging.getLogger(__name__)

SMS_CHANNEL = 'sms'
TWILIO_API_BASE = 'https://api.twilio.com'
# One SMS segment has room for 160 GSM-7 characters; longer texts are split and cost more.
MAX_SMS_CHARACTERS = 160
# English msgids, translated into the recipient's language when the text is queued. Turkish texts use
# letters outside GSM-7 (ı, ş, ğ), so they are sent as UCS-2, with room for 70 characters per segment.
SMS_TEXTS = {
    'payment_received': N_('{practice}: payment received. Your examination is waiting for a radiologist.'),
    'case_accepted': N_('{practice}: a radiologist has started reviewing your examination.'),
    'report_ready': N_('{practice}: your report is ready. Sign in to read it: {link}'),
    'report_amended': N_('{practice}: your report has an addendum (version {version}). Sign in to read it: {link}'),
    'refund': N_('{practice}: your examination was cancelled and {amount} refunded.'),
    'question_answered': N_('{practice}: the radiologist answered your question. Sign in to read it: {link}'),
}


class SmsTransport(Protocol):
    def send(self, *, to: str, body: str, notification_id: int) -> str: ...


@dataclass(frozen=True)
class LogSmsTransport:
    """The embedded default with no Twilio account: the text is written to the log instead of being sent."""

    def send(self, *, to: str, body: str, notification_id: int) -> str:
        logger.info('SMS for notification %s to %s (not sent, no Twilio account configured): %s', notification_id,
                    mask_phone(to), body)
        return 'logged'


class TwilioSmsTransport:
    """Sends texts with the Twilio library, from the configured sender number or messaging service."""

    def __init__(self, settings: Settings) -> None:
        from twilio.rest import Client

        assert settings.twilio_account_sid and settings.twilio_auth_token
        self.sender = settings.twilio_from
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                             http_client=_http_client(settings.twilio_api_base))

    def send(self, *, to: str, body: str, notification_id: int) -> str:
        if self.sender.startswith('MG'):
            message = self.client.messages.create(to=to, body=body, messaging_service_sid=self.sender)
        else:
            message = self.client.messages.create(to=to, body=body, from_=self.sender)
        logger.info('SMS for notification %s sent to %s as %s', notification_id, mask_phone(to), message.sid)
        return message.sid


def _http_client(api_base: str | None):  # noqa: ANN202 (a twilio HttpClient)
    """Return Twilio's HTTP client, pointed at `api_base` instead of Twilio's API when one is configured."""
    from twilio.http.http_client import TwilioHttpClient

    class RedirectedHttpClient(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any):  # noqa: ANN202
            if api_base and url.startswith(TWILIO_API_BASE):
                url = api_base.rstrip('/') + url[len(TWILIO_API_BASE):]
            return super().request(method, url, *args, **kwargs)

    return RedirectedHttpClient(timeout=30)


def get_sms_transport(settings: Settings) -> SmsTransport:
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        return TwilioSmsTransport(settings)
    return LogSmsTransport()


def render_sms(template: str, context: Mapping[str, Any], *, language: str | None = None) -> str:
    """Return the text for a template in `language` (the current language when None), or raise ValueError for an
    unknown template or a missing value. An amount may come as `amount_cents` and `currency`."""
    text = SMS_TEXTS.get(template)
    if text is None:
        raise ValueError(f'SMS template "{template}" is unknown: use one of {", ".join(sorted(SMS_TEXTS))}')
    settings = get_settings()
    with i18n.use_language(language or i18n.current_language()):
        if context.get('amount_cents') is not None:
            context = {**context, 'amount': i18n.format_money(int(context['amount_cents']), context.get('currency'))}
        values = {'practice': settings.practice_name, **{key: str(value) for key, value in context.items()}}
        if 'examination_id' in values:
            values['link'] = f'{settings.public_base_url.rstrip("/")}/exams/{values["examination_id"]}'
        missing = sorted(set(i18n.PLACEHOLDER.findall(text)) - set(values))
        if missing:
            raise ValueError(f'SMS template "{template}" is missing the context value {missing[0]!r}')
        return i18n.gettext(text, **values)


def enqueue_sms(session: Session, *, user_id: int | None, examination_id: str | None, recipient: str,
                template: str, context: Mapping[str, Any], language: str | None = None) -> Notification:
    """Add a queued text to the outbox in the caller's session; `recipient` is an E.164 number like +41791234567.

    The text is rendered now in `language`, English when None.
    """
    if not (recipient.startswith('+') and recipient[1:].isdigit() and 8 <= len(recipient) <= 16):
        raise ValueError(f'SMS recipient "{mask_phone(recipient)}" is invalid: expected an E.164 number')
    body = render_sms(template, context, language=language or i18n.DEFAULT_LANGUAGE)
    notification = Notification(
        user_id=user_id, examination_id=examination_id, channel=SMS_CHANNEL, recipient=recipient,
        template=template, subject='', body_text=body, body_html='', status=NotificationStatus.QUEUED,
        attempts=0, next_attempt_at=utcnow(), last_error='')
    session.add(notification)
    session.flush()
    logger.info('notification %s queued: SMS %s for examination %s', notification.id, template, examination_id)
    return notification


def mask_phone(number: str) -> str:
    """Return the number with all but its last three digits hidden, for logs."""
    return number[:3] + '*' * max(len(number) - 6, 0) + number[-3:] if len(number) > 6 else '***'
