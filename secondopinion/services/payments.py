"""Payments through a checkout gateway, applied exactly once, and the incomes they create.

With a Stripe secret key configured, Stripe Checkout is used (stripe_gateway.py) and its webhook
confirms payments. Otherwise the built-in test gateway is used: its checkout page is part of this
app and labelled as test mode. Both confirm through `apply_payment_succeeded`, which records a
payment once per event id.
"""

from __future__ import annotations

import logging
from datetime import timedelta
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config import get_settings
from .. import i18n
from ..db import session_scope
from ..models import (Examination, ExamStatus, Income, IncomeKind, Payment, PaymentStatus, ProcessedEvent, Role,
                      Urgency)
from ..models.base import utcnow
from . import audit, events
from .access import get_visible_exam
from .account_lifecycle import ensure_email_verified
from .actors import SYSTEM, Actor, require_role
from ..i18n import N_, _
from .errors import ConflictError, NotFoundError

logger = logging.getLogger(__name__)


def format_money(cents: int | None, currency: str | None) -> str:
    """Format an amount in cents in the current language, e.g. "1,234.50 CHF" (see i18n.format_money)."""
    return i18n.format_money(cents, currency)


@dataclass(frozen=True)
class PriceListEntry:
    """Routine and urgent price of one modality in cents of the configured currency. Modality '' is any other."""

    modality: str
    routine_cents: int
    urgent_cents: int


def price_list() -> list[PriceListEntry]:
    """Return the configured price of each modality, routine and urgent, then the price of any other modality.

    Each price is the one that submitting an examination of that modality and urgency charges.
    """
    settings = get_settings()
    entries = [PriceListEntry(code, settings.price_for(code, 'routine'), settings.price_for(code, 'urgent'))
               for code in settings.prices_cents]
    default = settings.default_price_cents
    entries.append(PriceListEntry('', default, settings.with_urgency(default, 'urgent')))
    return entries


@dataclass(frozen=True)
class Checkout:
    provider_ref: str
    url: str


class CheckoutGateway(Protocol):
    name: str

    def create_checkout(self, *, examination_id: str, amount_cents: int, currency: str,
                        description: str) -> Checkout: ...

    def open_checkout_url(self, provider_ref: str) -> str | None: ...

    def close_checkout(self, provider_ref: str) -> None: ...

    def refund(self, *, provider_ref: str, amount_cents: int) -> str: ...


class TestCheckoutGateway:
    """The embedded gateway: the checkout is a page of this app and no money moves."""

    name = 'test'

    def create_checkout(self, *, examination_id: str, amount_cents: int, currency: str,
                        description: str) -> Checkout:
        ref = f'test_{uuid.uuid4().hex}'
        return Checkout(provider_ref=ref, url=f'/checkout/test/{ref}')

    def open_checkout_url(self, provider_ref: str) -> str | None:
        return f'/checkout/test/{provider_ref}'

    def close_checkout(self, provider_ref: str) -> None:
        """Nothing to do: the test checkout page refuses payment once its payment row is cancelled."""

    def refund(self, *, provider_ref: str, amount_cents: int) -> str:
        return f'test_refund_{uuid.uuid4().hex}'


def get_gateway() -> CheckoutGateway:
    """Return Stripe when a secret key is configured, else the test gateway."""
    settings = get_settings()
    if settings.stripe_secret_key:
        from .stripe_gateway import StripeGateway

        return StripeGateway(settings)
    return TestCheckoutGateway()


@dataclass(frozen=True)
class PaymentView:
    id: int
    examination_id: str
    provider: str
    provider_ref: str
    amount_cents: int
    currency: str
    status: str


def start_checkout(*, actor: Actor, examination_id: str) -> str:
    """Return the checkout address for an examination awaiting payment, reusing an open checkout."""
    require_role(actor, Role.PATIENT)
    gateway = get_gateway()
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if exam.status != ExamStatus.AWAITING_PAYMENT:
            raise ConflictError(N_('This examination does not wait for payment.'))
        ensure_email_verified(session, actor.user_id)
        open_payment = session.scalar(select(Payment).where(
            Payment.examination_id == exam.id, Payment.provider == gateway.name,
            Payment.status == PaymentStatus.OPEN))
        if open_payment is not None:
            # One open checkout at a time, so a patient with two tabs cannot pay twice.
            url = gateway.open_checkout_url(open_payment.provider_ref)
            if url:
                return url
            open_payment.status = PaymentStatus.CANCELLED
        assert exam.price_cents is not None and exam.currency is not None
        checkout = gateway.create_checkout(examination_id=exam.id, amount_cents=exam.price_cents,
                                           currency=exam.currency,
                                           description=f'Second opinion, {exam.modality} {exam.body_part}')
        session.add(Payment(examination_id=exam.id, provider=gateway.name, provider_ref=checkout.provider_ref,
                            amount_cents=exam.price_cents, currency=exam.currency))
        audit.record(session, actor, 'checkout.started', 'examination', exam.id, provider=gateway.name)
        logger.info('checkout started for examination %s with %s', exam.id, gateway.name)
        return checkout.url


def get_test_checkout(*, actor: Actor, provider_ref: str) -> tuple[PaymentView, str]:
    """Return the payment behind a test checkout page and the examination's summary line."""
    with session_scope() as session:
        payment = session.scalar(select(Payment).where(Payment.provider == 'test',
                                                       Payment.provider_ref == provider_ref))
        if payment is None:
            raise NotFoundError(N_('Checkout'))
        exam = get_visible_exam(session, actor, payment.examination_id)
        if actor.role != Role.PATIENT:
            raise NotFoundError(N_('Checkout'))
        urgency = _('urgent') if exam.urgency == Urgency.URGENT else _('routine')
        examination = ' '.join(part for part in (exam.modality, exam.body_part) if part)
        summary = _('Second opinion: {examination} ({urgency})', examination=examination, urgency=urgency)
        return _payment_view(payment), summary


def _payment_view(payment: Payment) -> PaymentView:
    return PaymentView(id=payment.id, examination_id=payment.examination_id, provider=payment.provider,
                       provider_ref=payment.provider_ref, amount_cents=payment.amount_cents,
                       currency=payment.currency, status=payment.status)


def complete_test_checkout(*, actor: Actor, provider_ref: str) -> str:
    """Pay on the test checkout page; returns the examination id."""
    payment, _summary = get_test_checkout(actor=actor, provider_ref=provider_ref)
    if payment.status == PaymentStatus.CANCELLED:
        raise ConflictError(N_('This checkout was cancelled. Start the payment again from your examination.'))
    apply_payment_succeeded(provider='test', provider_ref=provider_ref, event_id=f'test:{provider_ref}')
    return payment.examination_id


def cancel_test_checkout(*, actor: Actor, provider_ref: str) -> str:
    """Leave the test checkout without paying; the examination keeps waiting for payment."""
    payment, _summary = get_test_checkout(actor=actor, provider_ref=provider_ref)
    with session_scope() as session:
        session.execute(update(Payment).where(Payment.id == payment.id, Payment.status == PaymentStatus.OPEN)
                        .values(status=PaymentStatus.CANCELLED))
        audit.record(session, actor, 'checkout.cancelled', 'examination', payment.examination_id)
    logger.info('test checkout cancelled for examination %s', payment.examination_id)
    return payment.examination_id


def apply_payment_succeeded(*, provider: str, provider_ref: str, event_id: str) -> bool:
    """Record a successful payment once; True when this call applied it, False for a repeat."""
    settings = get_settings()
    try:
        with session_scope() as session:
            # The primary key on processed_events makes a second delivery of the same event fail here.
            session.add(ProcessedEvent(id=event_id, provider=provider, event_type='payment.succeeded'))
            session.flush()
            payment = session.scalar(select(Payment).where(Payment.provider == provider,
                                                           Payment.provider_ref == provider_ref))
            if payment is None:
                raise NotFoundError(N_('Payment'))
            moved = session.execute(update(Payment).where(Payment.id == payment.id,
                                                          Payment.status.in_([PaymentStatus.OPEN,
                                                                              PaymentStatus.CANCELLED]))
                                    .values(status=PaymentStatus.SUCCEEDED, succeeded_at=utcnow()))
            if moved.rowcount != 1:
                logger.info('payment %s already applied, event %s ignored', payment.id, event_id)
                return False
            exam = session.get(Examination, payment.examination_id)
            assert exam is not None
            if exam.status != ExamStatus.AWAITING_PAYMENT:
                # NOTE: money arrived for an examination that was cancelled meanwhile; it stays
                # recorded as succeeded for an admin to refund by hand.
                logger.warning('payment %s succeeded for examination %s in state %s', payment.id, exam.id,
                               exam.status)
                return True
            exam.status = ExamStatus.PENDING
            exam.paid_at = utcnow()
            exam.due_at = exam.paid_at + timedelta(hours=settings.turnaround_hours(exam.urgency))
            fee = payment.amount_cents * settings.platform_fee_percent // 100
            session.add(Income(examination_id=exam.id, payment_id=payment.id, kind=IncomeKind.PAYMENT,
                               amount_cents=payment.amount_cents, platform_fee_cents=fee,
                               doctor_share_cents=payment.amount_cents - fee, currency=payment.currency))
            session.add(Income(examination_id=exam.id, payment_id=payment.id, kind=IncomeKind.PLATFORM_FEE,
                               amount_cents=fee, currency=payment.currency))
            _notify(session, exam, 'payment_received', payment.amount_cents, payment.currency)
            audit.record(session, SYSTEM, 'payment.succeeded', 'examination', exam.id, payment_id=payment.id,
                         provider=provider)
            logger.info('payment %s succeeded, examination %s is pending', payment.id, exam.id)
            exam_id = exam.id
    except IntegrityError:
        logger.info('event %s from %s was already processed', event_id, provider)
        return False
    events.publish(events.ExamChanged(examination_id=exam_id, status=ExamStatus.PENDING, doctor_id=None))
    return True


def close_open_checkout_in_session(session: Session, exam: Examination) -> None:
    """Close the examination's open checkout inside the caller's transaction, so it can no longer be paid."""
    for payment in session.scalars(select(Payment).where(Payment.examination_id == exam.id,
                                                         Payment.status == PaymentStatus.OPEN)):
        get_gateway().close_checkout(payment.provider_ref)
        payment.status = PaymentStatus.CANCELLED
        logger.info('checkout of payment %s closed for examination %s', payment.id, exam.id)


def refund_in_session(session: Session, exam: Examination, actor: Actor = SYSTEM) -> None:
    """Refund the successful payment of an examination inside the caller's transaction.

    `actor` is who caused the refund (the patient or admin who cancelled), for the audit row.
    """
    payment = session.scalar(select(Payment).where(Payment.examination_id == exam.id,
                                                   Payment.status == PaymentStatus.SUCCEEDED))
    if payment is None:
        return
    gateway = get_gateway()
    refund_ref = gateway.refund(provider_ref=payment.provider_ref, amount_cents=payment.amount_cents)
    payment.status = PaymentStatus.REFUNDED
    session.add(Income(examination_id=exam.id, payment_id=payment.id, kind=IncomeKind.REFUND,
                       amount_cents=-payment.amount_cents, currency=payment.currency))
    fee = session.scalar(select(Income.amount_cents).where(Income.examination_id == exam.id,
                                                           Income.kind == IncomeKind.PLATFORM_FEE))
    if fee:
        session.add(Income(examination_id=exam.id, payment_id=payment.id, kind=IncomeKind.PLATFORM_FEE_REVERSAL,
                           amount_cents=-fee, currency=payment.currency))
    _notify(session, exam, 'refund', payment.amount_cents, payment.currency)
    audit.record(session, actor, 'payment.refunded', 'examination', exam.id, payment_id=payment.id,
                 refund_ref=refund_ref)
    logger.info('payment %s refunded for examination %s', payment.id, exam.id)


def _notify(session: Session, exam: Examination, template: str, amount_cents: int, currency: str) -> None:
    """Queue a payment message to the patient; the amount is formatted in the patient's language."""
    from .examinations import patient_email
    from .notifications import notify_patient

    user_id, _email, name = patient_email(session, exam)
    notify_patient(session, patient_user_id=user_id, examination_id=exam.id, template=template,
                   context={'patient_name': name, 'examination_id': exam.id, 'amount_cents': amount_cents,
                            'currency': currency})


def record_doctor_earning(session: Session, exam: Examination) -> None:
    """Add the doctor's share of the examination's payment to the ledger, once."""
    payment_income = session.scalar(select(Income).where(Income.examination_id == exam.id,
                                                         Income.kind == IncomeKind.PAYMENT))
    if payment_income is None or exam.doctor_id is None:
        logger.warning('no payment income for examination %s, no doctor earning recorded', exam.id)
        return
    session.add(Income(examination_id=exam.id, payment_id=payment_income.payment_id, doctor_id=exam.doctor_id,
                       kind=IncomeKind.DOCTOR_EARNING, amount_cents=payment_income.doctor_share_cents,
                       currency=payment_income.currency))
