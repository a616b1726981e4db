"""Stripe from the patient's side and over HTTP: the checkout button, the return page and the webhook route."""

from __future__ import annotations


from nicegui.testing import User

from secondopinion.models import ExamStatus
from secondopinion.services import examinations, payments
from tests.fake_stripe import event, sign
from tests.services.flow import submitted

from .helpers import sign_in

WEBHOOK = '/api/stripe/webhook'


async def test_webhook_route_checks_signature(user: User, stripe_server, make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    session_id = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    body = event('checkout.session.completed', stripe_server.complete(session_id))

    signature = sign(body)
    wrong = signature[:-1] + ('1' if signature.endswith('0') else '0')
    response = await user.http_client.post(WEBHOOK, content=body, headers={'Stripe-Signature': wrong})
    assert response.status_code == 400
    response = await user.http_client.post(WEBHOOK, content=body)
    assert response.status_code == 400
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == ExamStatus.AWAITING_PAYMENT

    reformatted = body.replace(b', ', b',')  # the same event, other bytes: the signature no longer matches
    response = await user.http_client.post(WEBHOOK, content=reformatted, headers={'Stripe-Signature': sign(body)})
    assert response.status_code == 400

    for _ in range(2):
        response = await user.http_client.post(WEBHOOK, content=body, headers={'Stripe-Signature': sign(body)})
        assert response.status_code == 200
    assert response.json() == {'received': True, 'outcome': 'already applied'}
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == ExamStatus.PENDING


async def test_webhook_route_absent_without_stripe(user: User):
    body = b'{"id": "evt_1"}'
    response = await user.http_client.post(WEBHOOK, content=body, headers={'Stripe-Signature': sign(body)})
    assert response.status_code == 404


async def test_return_page_waits_for_the_webhook(user: User, stripe_server, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = submitted(patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    # The Pay button sends the browser to Stripe, which the simulated user cannot follow, so start it here.
    session_id = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]

    await user.open(f'/exams/{exam_id}?checkout=success')
    await user.should_see(marker='checkout-confirming')
    body = event('checkout.session.completed', stripe_server.complete(session_id))
    response = await user.http_client.post(WEBHOOK, content=body, headers={'Stripe-Signature': sign(body)})
    assert response.status_code == 200
    await user.should_see('Paid. Your case waits for a radiologist to accept it.')
    await user.should_not_see(marker='checkout-confirming')


async def test_return_after_cancelling_explains(user: User, stripe_server, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = submitted(patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}?checkout=cancelled')
    await user.should_see(marker='checkout-cancelled')
    await user.should_see(marker='pay')
