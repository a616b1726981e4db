"""Email transports: .eml files in the outbox folder by default, SMTP through yagmail when a host is set."""

from __future__ import annotations

import logging
import os
import smtplib
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Protocol

import yagmail

from ..config import Settings, get_settings

logger = logging.getLogger(__name__)

# Header that carries the outbox row id, so a delivered message can be traced back to its notification.
NOTIFICATION_HEADER = 'X-SecondOpinion-Notification'
# Seconds that one SMTP socket operation (connect, STARTTLS, each command) may block.
SMTP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class OutgoingEmail:
    """A message ready to send. Each attachment is (file name, content type, content)."""

    to: str
    subject: str
    text: str
    html: str
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    notification_id: int | None = None


class Transport(Protocol):
    def send(self, message: OutgoingEmail) -> None:
        """Deliver the message or raise. Returning means the SMTP server or the outbox folder accepted it."""


def build_message(message: OutgoingEmail, *, sender: str, sender_name: str = '') -> EmailMessage:
    """Build an RFC 5322 message: a text and HTML alternative, followed by the attachments."""
    mime = EmailMessage()
    mime['From'] = formataddr((sender_name, sender)) if sender_name else sender
    mime['To'] = message.to
    mime['Subject'] = message.subject
    mime['Date'] = format_datetime(datetime.now(UTC))
    mime['Message-ID'] = make_msgid(domain=sender.rpartition('@')[2] or None)
    if message.notification_id is not None:
        mime[NOTIFICATION_HEADER] = str(message.notification_id)
    # Quoted-printable keeps the body 7-bit, so servers without 8BITMIME pass non-ASCII names unchanged.
    mime.set_content(message.text, cte='quoted-printable')
    if message.html:
        mime.add_alternative(message.html, subtype='html', cte='quoted-printable')
    for filename, content_type, content in message.attachments:
        maintype, _, subtype = content_type.partition('/')
        if not subtype:
            maintype, subtype = 'application', 'octet-stream'
        mime.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return mime


class EmlFileTransport:
    """Write each message as `<UTC timestamp>-<notification id>.eml` into a folder, for the admin panel."""

    def __init__(self, folder: Path, *, sender: str, sender_name: str = '') -> None:
        self.folder = folder
        self.sender = sender
        self.sender_name = sender_name

    def send(self, message: OutgoingEmail) -> None:
        data = build_message(message, sender=self.sender, sender_name=self.sender_name).as_bytes()
        self.folder.mkdir(parents=True, exist_ok=True)
        # A fixed-width timestamp makes the file names sort by write time.
        stamp = datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')
        reference = message.notification_id if message.notification_id is not None else uuid.uuid4().hex
        target = self.folder / f'{stamp}-{reference}.eml'
        # Written under a temporary name first, so a reader never sees a half-written .eml file.
        handle, temp_name = tempfile.mkstemp(dir=self.folder, prefix='.writing-', suffix='.tmp')
        try:
            with os.fdopen(handle, 'wb') as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        logger.info('notification %s written to outbox file %s', message.notification_id, target.name)


class SmtpTransport:
    """Send through an SMTP server with yagmail, with STARTTLS when `smtp_starttls` is set.

    yagmail opens the connection, runs STARTTLS and logs in. The message itself is built by
    `build_message` and sent on yagmail's connection, because yagmail 0.16's own builder puts the
    HTML source into the text/plain part and always uses the login user as the From address.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError('SECONDOPINION_SMTP_HOST is empty: set it, or use the .eml outbox transport')
        if settings.smtp_user and settings.smtp_password is None:
            # yagmail would otherwise ask for the password on the terminal and block the delivery job.
            raise ValueError('SECONDOPINION_SMTP_PASSWORD is missing: set it together with SECONDOPINION_SMTP_USER')
        if settings.smtp_user and '@' not in settings.smtp_user:
            # yagmail 0.16 appends "@gmail.com" to a user name without "@" before logging in.
            raise ValueError(f'SECONDOPINION_SMTP_USER "{settings.smtp_user}" is invalid: '
                             'yagmail needs the full email address as the SMTP user name')
        self.settings = settings

    def send(self, message: OutgoingEmail) -> None:
        settings = self.settings
        mime = build_message(message, sender=settings.mail_from, sender_name=settings.practice_name)
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        client = yagmail.SMTP(
            settings.smtp_user or settings.mail_from, password, settings.smtp_host, settings.smtp_port,
            smtp_starttls=settings.smtp_starttls, smtp_ssl=False, smtp_skip_login=not settings.smtp_user,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
        with client:
            client.login()
            refused_recipients = client.smtp.send_message(mime, from_addr=settings.mail_from,
                                                          to_addrs=[message.to])
        if refused_recipients:
            raise smtplib.SMTPRecipientsRefused(refused_recipients)
        logger.info('notification %s sent by SMTP via %s:%s', message.notification_id, settings.smtp_host,
                    settings.smtp_port)


def get_transport(settings: Settings | None = None) -> Transport:
    """Return the SMTP transport when `smtp_host` is set, else the .eml outbox folder transport."""
    settings = settings or get_settings()
    if settings.smtp_host:
        return SmtpTransport(settings)
    return EmlFileTransport(settings.outbox_dir, sender=settings.mail_from, sender_name=settings.practice_name)
