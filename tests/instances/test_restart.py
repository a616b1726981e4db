"""An instance killed mid-flow and started again: no message is lost and no examination is left stuck."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from secondopinion.services import examinations, payments, reports
from tests.browser.conftest import sign_in
from tests.services.flow import submitted

from .conftest import Cluster
from .test_two_instances import CROSS_INSTANCE_TIMEOUT_MS, count_outbox, make_people, wait_for_delivery

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

REPORT = {'findings': 'A 6 mm solid nodule in the right upper lobe, smooth margins.',
          'impression': 'Probably benign nodule.', 'recommendations': 'Follow-up CT in 12 months.'}


def test_killed_instance_loses_nothing(cluster: Cluster, new_context: Callable[..., sync_api.BrowserContext]):
    if cluster.bus == 'redis':
        pytest.skip('the crash does not depend on the event channel; once on PostgreSQL is enough')
    people = make_people()
    body_part = f'Chest {time.time_ns()}'
    exam_id = submitted(people['patient'], body_part=body_part)
    checkout = payments.start_checkout(actor=people['patient'], examination_id=exam_id)

    patient_context = new_context(base_url=cluster.a.base_url)
    patient = patient_context.new_page()
    sign_in(patient, 'paula@example.org')
    patient.goto(checkout)
    patient.get_by_role('button', name='Pay (test)').click()
    expect(patient.get_by_text('Waiting for a radiologist')).to_be_visible()

    # Instance A dies right after taking the payment, before or while its job sends the receipt.
    cluster.crash('A')

    # The load balancer sends the same browser to B, still signed in, and the case is still waiting there.
    patient.goto(f'{cluster.b.base_url}/exams/{exam_id}')
    expect(patient.get_by_text('Waiting for a radiologist')).to_be_visible()
    board = new_context(base_url=cluster.b.base_url).new_page()
    sign_in(board, 'doctor_b@example.org')
    card = board.locator('.q-card', has_text=body_part)
    expect(card).to_be_visible()
    card.get_by_role('button', name='Accept').click()
    board.wait_for_url(f'**/doctor/cases/{exam_id}')
    reports.finalize(actor=people['doctor_b'], examination_id=exam_id, **REPORT)

    # A comes back; its pages show the current state, and the other doctor's board on A has nothing waiting.
    cluster.restart('A')
    patient.goto(f'{cluster.a.base_url}/exams/{exam_id}')
    expect(patient.get_by_text('Your report is ready', exact=False)).to_be_visible(timeout=CROSS_INSTANCE_TIMEOUT_MS)
    other_board = new_context(base_url=cluster.a.base_url).new_page()
    sign_in(other_board, 'doctor_a@example.org')
    expect(other_board.get_by_text('No examinations are waiting', exact=False)).to_be_visible()

    # Every message queued on the way went out once: the receipt, the acceptance and the report.
    rows = wait_for_delivery()
    templates = sorted(row.template for row in rows if row.examination_id == exam_id and row.channel == 'email')
    assert templates == ['case_accepted', 'payment_received', 'report_ready']
    assert all(row.status == 'sent' for row in rows)
    outbox = count_outbox(cluster)
    assert max(outbox.values()) == 1, f'a message went out more than once: {outbox}'
    exam = examinations.get_exam(actor=people['admin'], examination_id=exam_id)
    assert exam.status in {'reported', 'completed'}
