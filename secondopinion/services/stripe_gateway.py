"""Stripe Checkout behind the checkout gateway interface, and the webhook that confirms payments.

Only a verified webhook event marks an examination as paid: the patient's return to the success
page proves nothing, and a patient who closes the browser after paying is still served. Every
event id is stored once (ProcessedEvent), so repeated or concurrent deliveries change nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from sqlalchemy import select, update

from ..config import Settings, get_settings
from ..db import session_scope
from ..models import Payment, PaymentStatus, ProcessedEvent
from .errors import ConflictError, DomainError, NotFoundError
from .payments import Checkout, apply_payment_succeeded

logger = logging.getLogger(__name__)

PROVIDER = 'stripe'
# Seconds between an event's signing and its arrival beyond which it is rejected as stale (Stripe's default).
WEBHOOK_TOLERANCE_SECONDS = 300
PAID_EVENTS = ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
CLOSED_EVENTS = ('checkout.session.expired', 'checkout.session.async_payment_failed')
PAID_STATUSES = ('paid', 'no_payment_required')


class InvalidWebhookError(DomainError):
    """A webhook request without a valid, fresh Stripe signature."""


class StripeGateway:
    """Creates Checkout Sessions and refunds through Stripe's API with the configured secret key."""

    name = PROVIDER

    def __init__(self, settings: Settings) -> None:
        assert settings.stripe_secret_key
        self.settings = settings
        base = {'api': settings.stripe_api_base} if settings.stripe_api_base else None
        self.client = stripe.StripeClient(settings.stripe_secret_key.get_secret_value(), base_addresses=base,
                                          max_network_retries=2)

    def create_checkout(self, *, examination_id: str, amount_cents: int, currency: str,
                        description: str) -> Checkout:
        page = f'{self.settings.public_base_url.rstrip("/")}/exams/{examination_id}'
        with _stripe_errors('create a checkout session', examination_id):
            session = self.client.v1.checkout.sessions.create(params={
                'mode': 'payment',
                'line_items': [{'quantity': 1, 'price_data': {
                    'currency': currency.lower(), 'unit_amount': amount_cents,
                    'product_data': {'name': description}}}],
                'client_reference_id': examination_id,
                'metadata': {'examination_id': examination_id},
                'success_url': f'{page}?checkout=success',
                'cancel_url': f'{page}?checkout=cancelled',
            })
        logger.info('Stripe checkout session %s created for examination %s', session.id, examination_id)
        return Checkout(provider_ref=session.id, url=session.url or '')

    def open_checkout_url(self, provider_ref: str) -> str | None:
        """Return the address of a session the patient can still pay, or None when it expired.

        Raises ConflictError for a completed session whose webhook has not arrived yet, so the
        patient is not sent to pay a second time.
        """
        with _stripe_errors('read checkout session', provider_ref):
            session = self.client.v1.checkout.sessions.retrieve(provider_ref)
        if session.status == 'complete':
            raise ConflictError('Your payment was received and is being confirmed. This page updates in a moment.')
        return session.url if session.status == 'open' else None

    def close_checkout(self, provider_ref: str) -> None:
        """Expire an open session. Raises ConflictError when the patient has paid it meanwhile."""
        with _stripe_errors('read checkout session', provider_ref):
            session = self.client.v1.checkout.sessions.retrieve(provider_ref)
        if session.status == 'complete':
            raise ConflictError('This examination was just paid, so it cannot be cancelled this way. Reload the '
                                'page and cancel it again to have the payment refunded.')
        if session.status == 'open':
            with _stripe_errors('expire checkout session', provider_ref):
                self.client.v1.checkout.sessions.expire(provider_ref)
            logger.info('Stripe checkout session %s expired', provider_ref)

    def refund(self, *, provider_ref: str, amount_cents: int) -> str:
        with _stripe_errors('refund checkout session', provider_ref):
            session = self.client.v1.checkout.sessions.retrieve(provider_ref)
            if not session.payment_intent:
                raise DomainError('Stripe has no payment for this checkout, so nothing can be refunded.')
            intent = session.payment_intent if isinstance(session.payment_intent, str) else session.payment_intent.id
            # The idempotency key makes a retried refund return the first one instead of paying back twice.
            refund = self.client.v1.refunds.create(params={'payment_intent': intent, 'amount': amount_cents},
                                                   options={'idempotency_key': f'refund-{provider_ref}'})
        logger.info('Stripe refund %s created for checkout session %s', refund.id, provider_ref)
        return refund.id


@contextmanager
def _stripe_errors(action: str, subject: str) -> Iterator[None]:
    """Turn a failed Stripe call into a message for the user, and log it with the ids involved."""
    try:
        yield
    except stripe.StripeError as error:
        logger.error('Stripe call to %s %s failed: %s (request %s)', action, subject, type(error).__name__,
                     error.request_id)
        raise DomainError('The payment service could not complete this request, so nothing was changed. '
                          'Please try again in a few minutes.') from error


def handle_webhook(payload: bytes, signature: str | None) -> str:
    """Verify a Stripe webhook request and apply its event once; return what was done, for the log.

    Raises NotFoundError when Stripe is not configured. Raises InvalidWebhookError, and changes
    nothing, when the signature is missing, wrong or stale or the body is not an event.
    """
    settings = get_settings()
    if not settings.stripe_webhook_secret:
        raise NotFoundError('Webhook')
    try:
        stripe.WebhookSignature.verify_header(payload.decode('utf-8'), signature,
                                              settings.stripe_webhook_secret.get_secret_value(),
                                              tolerance=WEBHOOK_TOLERANCE_SECONDS)
        event = json.loads(payload)  # the exact bytes that were signed, as plain values
        event_id, event_type, session = event['id'], event['type'], event['data']['object']
    except (ValueError, KeyError, TypeError, stripe.SignatureVerificationError) as error:
        logger.warning('Stripe webhook rejected: %s', type(error).__name__)
        raise InvalidWebhookError('The Stripe signature is missing, invalid or too old.') from error

    if event_type in PAID_EVENTS and session.get('payment_status') in PAID_STATUSES:
        _check_amount(session)
        applied = apply_payment_succeeded(provider=PROVIDER, provider_ref=session['id'], event_id=event_id)
        outcome = 'payment applied' if applied else 'already applied'
    elif event_type in CLOSED_EVENTS:
        outcome = _close_checkout(session['id'], event_id, event_type)
    else:
        # Completed sessions of delayed payment methods (still unpaid) and other event types are only recorded.
        outcome = 'recorded' if _record_event(event_id, event_type) else 'already processed'
    logger.info('Stripe event %s (%s) for %s: %s', event_id, event_type, session.get('id'), outcome)
    return outcome


def _check_amount(session: dict[str, Any]) -> None:
    """Refuse a paid event whose amount or currency differs from the payment the app created."""
    with session_scope() as db_session:
        payment = db_session.scalar(select(Payment).where(Payment.provider == PROVIDER,
                                                          Payment.provider_ref == session['id']))
    if payment is None:
        return  # apply_payment_succeeded reports the unknown session
    if session.get('amount_total') != payment.amount_cents or \
            str(session.get('currency', '')).upper() != payment.currency.upper():
        logger.error('Stripe session %s paid %s %s, but payment %s expects %s %s', session['id'],
                     session.get('amount_total'), session.get('currency'), payment.id, payment.amount_cents,
                     payment.currency)
        raise DomainError('The amount paid differs from the price of the examination.')


def _close_checkout(provider_ref: str, event_id: str, event_type: str) -> str:
    """Mark an open payment as cancelled when its session expired or its delayed payment failed, once."""
    with session_scope() as session:
        if not _add_event(session, event_id, event_type):
            return 'already processed'
        closed = session.execute(update(Payment).where(
            Payment.provider == PROVIDER, Payment.provider_ref == provider_ref,
            Payment.status == PaymentStatus.OPEN).values(status=PaymentStatus.CANCELLED))
    # A session that was paid first stays paid: events arriving late never move a payment back.
    return 'checkout closed' if closed.rowcount else 'no open payment to close'


def _record_event(event_id: str, event_type: str) -> bool:
    with session_scope() as session:
        return _add_event(session, event_id, event_type)


def _add_event(session, event_id: str, event_type: str) -> bool:  # noqa: ANN001
    """Insert the event id; False when it was already processed."""
    if session.get(ProcessedEvent, event_id) is not None:
        return False
    session.add(ProcessedEvent(id=event_id, provider=PROVIDER, event_type=event_type))
    session.flush()
    return True
