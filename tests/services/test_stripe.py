"""Stripe Checkout and its webhook, with the real `stripe` library against the fake Stripe server on loopback."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import ExamStatus, Income, Notification, Payment, ProcessedEvent
from secondopinion.services import examinations, payments, stripe_gateway
from secondopinion.services.errors import ConflictError, DomainError, NotFoundError
from tests.fake_stripe import FakeStripe, event, sign

from .flow import submitted


@pytest.fixture
def patient(make_patient):
    return make_patient()


def _checkout(patient, fake: FakeStripe) -> tuple[str, str]:  # noqa: ANN001
    """Submit an examination and start its Stripe checkout; return the examination and session ids."""
    exam_id = submitted(patient)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    session_id = url.rsplit('/', 1)[1]
    assert url == f'{fake.base_url}/c/pay/{session_id}'
    return exam_id, session_id


def _deliver(body: bytes, signature: str | None = None) -> str:
    return stripe_gateway.handle_webhook(body, sign(body) if signature is None else signature)


def _paid_event(fake: FakeStripe, session_id: str, event_id: str | None = None) -> bytes:
    return event('checkout.session.completed', fake.complete(session_id), event_id)


def _count(model, **filters) -> int:  # noqa: ANN001
    with db.session_scope() as session:
        query = select(func.count()).select_from(model)
        for name, value in filters.items():
            query = query.where(getattr(model, name) == value)
        return session.scalar(query)


def _status(patient, exam_id: str) -> str:  # noqa: ANN001
    return examinations.get_exam(actor=patient, examination_id=exam_id).status


def test_checkout_session_carries_price_and_return_pages(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    session = stripe_server.sessions[session_id]
    exam = examinations.get_exam(actor=patient, examination_id=exam_id)
    assert session['amount_total'] == exam.price_cents == 15000
    assert session['currency'] == 'eur'
    assert session['client_reference_id'] == exam_id
    assert session['success_url'] == f'http://127.0.0.1:8080/exams/{exam_id}?checkout=success'
    assert session['cancel_url'] == f'http://127.0.0.1:8080/exams/{exam_id}?checkout=cancelled'


def test_paying_again_reuses_the_open_session(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    assert payments.start_checkout(actor=patient, examination_id=exam_id).endswith(session_id)
    assert len(stripe_server.sessions) == 1


def test_unconfirmed_paid_session_not_reoffered(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    stripe_server.complete(session_id)
    with pytest.raises(ConflictError, match='being confirmed'):
        payments.start_checkout(actor=patient, examination_id=exam_id)


def test_webhook_marks_paid_once(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT  # creating the session pays nothing
    body = _paid_event(stripe_server, session_id, 'evt_paid_1')
    assert [_deliver(body) for _ in range(3)] == ['payment applied', 'already applied', 'already applied']
    assert _status(patient, exam_id) == ExamStatus.PENDING
    assert _count(Payment, status='succeeded') == 1
    assert _count(Income, examination_id=exam_id, kind='payment') == 1
    assert _count(Notification, examination_id=exam_id, template='payment_received') == 1
    assert _count(ProcessedEvent, id='evt_paid_1') == 1


def test_concurrent_deliveries_apply_once(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    body = _paid_event(stripe_server, session_id)
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(_deliver(body))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ['already applied', 'already applied', 'payment applied']
    assert _count(Income, examination_id=exam_id, kind='payment') == 1
    assert _count(Notification, examination_id=exam_id, template='payment_received') == 1


def test_two_events_for_one_payment_apply_once(stripe_server, patient):
    """Stripe sends completed and then async_payment_succeeded with different ids for the same session."""
    exam_id, session_id = _checkout(patient, stripe_server)
    session = stripe_server.complete(session_id)
    assert _deliver(event('checkout.session.completed', session)) == 'payment applied'
    assert _deliver(event('checkout.session.async_payment_succeeded', session)) == 'already applied'
    assert _count(Income, examination_id=exam_id, kind='payment') == 1


def test_delayed_payment_waits_for_success(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    unpaid = stripe_server.complete(session_id, payment_status='unpaid')
    assert _deliver(event('checkout.session.completed', unpaid)) == 'recorded'
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT
    paid = stripe_server.complete(session_id)
    assert _deliver(event('checkout.session.async_payment_succeeded', paid)) == 'payment applied'
    assert _status(patient, exam_id) == ExamStatus.PENDING


def test_late_expiry_never_moves_back(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    session = stripe_server.complete(session_id)
    _deliver(event('checkout.session.completed', session))
    assert _deliver(event('checkout.session.expired', dict(session, status='expired'))) == 'no open payment to close'
    assert _deliver(event('checkout.session.async_payment_failed', session)) == 'no open payment to close'
    assert _status(patient, exam_id) == ExamStatus.PENDING
    assert _count(Payment, status='succeeded') == 1


def test_expired_session_is_replaced(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    stripe_server.sessions[session_id]['status'] = 'expired'
    assert _deliver(event('checkout.session.expired', stripe_server.sessions[session_id])) == 'checkout closed'
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    assert not url.endswith(session_id)
    assert _count(Payment, status='cancelled') == 1
    assert _count(Payment, status='open') == 1


@pytest.mark.parametrize('signature', [
    '',  # unsigned
    't=1,v1=' + '0' * 64,  # wrong signature, old timestamp
    'garbage',
])
def test_bad_signatures_change_nothing(stripe_server, patient, signature):
    exam_id, session_id = _checkout(patient, stripe_server)
    with pytest.raises(stripe_gateway.InvalidWebhookError):
        _deliver(_paid_event(stripe_server, session_id), signature)
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT
    assert _count(ProcessedEvent) == 0


def test_tampered_and_stale_events_change_nothing(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    body = _paid_event(stripe_server, session_id)
    tampered = body.replace(b'"amount_total": 15000', b'"amount_total": 1')
    with pytest.raises(stripe_gateway.InvalidWebhookError):
        _deliver(tampered, sign(body))
    stale = sign(body, timestamp=int(time.time()) - stripe_gateway.WEBHOOK_TOLERANCE_SECONDS - 60)
    with pytest.raises(stripe_gateway.InvalidWebhookError):
        _deliver(body, stale)
    with pytest.raises(stripe_gateway.InvalidWebhookError):
        _deliver(body, sign(body, secret='whsec_someone_else'))
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT


def test_amount_mismatch_is_refused(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    session = stripe_server.complete(session_id)
    session['amount_total'] = 100
    with pytest.raises(DomainError, match='amount paid differs'):
        _deliver(event('checkout.session.completed', session))
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT


def test_webhook_unknown_without_configuration(patient):
    body = json.dumps({'id': 'evt_1'}).encode()
    with pytest.raises(NotFoundError):
        stripe_gateway.handle_webhook(body, sign(body))


def test_cancel_before_acceptance_refunds_through_stripe(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    _deliver(_paid_event(stripe_server, session_id))
    examinations.cancel(actor=patient, examination_id=exam_id)
    assert _status(patient, exam_id) == ExamStatus.CANCELLED
    [refund] = stripe_server.refunds
    assert refund['amount'] == 15000
    assert refund['payment_intent'] == stripe_server.sessions[session_id]['payment_intent']
    assert _count(Income, examination_id=exam_id, kind='refund') == 1
    assert _count(Income, examination_id=exam_id, kind='platform_fee_reversal') == 1
    assert _count(Notification, examination_id=exam_id, template='refund') == 1


def test_failed_refund_keeps_the_examination(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    _deliver(_paid_event(stripe_server, session_id))
    stripe_server.fail_next.extend([400])
    with pytest.raises(DomainError, match='so nothing was changed'):
        examinations.cancel(actor=patient, examination_id=exam_id)
    assert _status(patient, exam_id) == ExamStatus.PENDING
    assert _count(Income, examination_id=exam_id, kind='refund') == 0


def test_cancel_before_payment_expires_the_session(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    examinations.cancel(actor=patient, examination_id=exam_id)
    assert stripe_server.sessions[session_id]['status'] == 'expired'
    assert _count(Payment, status='cancelled') == 1
    assert stripe_server.refunds == []


def test_cancel_races_a_payment(stripe_server, patient):
    exam_id, session_id = _checkout(patient, stripe_server)
    stripe_server.complete(session_id)  # paid at Stripe, the webhook not yet arrived
    with pytest.raises(ConflictError, match='was just paid'):
        examinations.cancel(actor=patient, examination_id=exam_id)
    assert _status(patient, exam_id) == ExamStatus.AWAITING_PAYMENT


def test_only_admin_cancels_after_acceptance(stripe_server, patient, admin, make_doctor):
    exam_id, session_id = _checkout(patient, stripe_server)
    _deliver(_paid_event(stripe_server, session_id))
    examinations.accept(actor=make_doctor(), examination_id=exam_id)
    with pytest.raises(ConflictError):
        examinations.cancel(actor=patient, examination_id=exam_id)
    assert stripe_server.refunds == []
    examinations.cancel(actor=admin, examination_id=exam_id, reason='Images unreadable')
    assert _status(patient, exam_id) == ExamStatus.CANCELLED
    assert [refund['amount'] for refund in stripe_server.refunds] == [15000]
    assert _count(Income, examination_id=exam_id, kind='refund') == 1
