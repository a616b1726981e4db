"""Two instances behind one database: a case paid on A appears on B's board, and an accept on B clears A's."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import Notification, NotificationStatus, User
from secondopinion.models.base import utcnow
from secondopinion.services import accounts, examinations, payments
from secondopinion.services.actors import Actor
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.services.flow import submitted
from tests.totp_codes import ADMIN_TOTP_SECRET

from .conftest import Cluster

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# Events cross in milliseconds; the rest leaves room for a slow machine. The boards' own reload every
# 30 s must not be what brings the change, so this stays well below it.
CROSS_INSTANCE_TIMEOUT_MS = 8_000
# An instance rechecks its pages' sessions every 30 s without an announcement; this is well below.
SIGN_OUT_TIMEOUT_MS = 8_000
DELIVERY_TIMEOUT_SECONDS = 30.0


def make_people() -> dict[str, Actor]:
    info = accounts.create_admin(full_name='Ada Admin', email='admin@example.org', password=PASSWORD,
                                 totp_secret=ADMIN_TOTP_SECRET)
    admin = accounts.get_actor(info.user_id)
    people = {'admin': admin}
    for key, name in (('doctor_a', 'Dr. Ada Lovelace'), ('doctor_b', 'Dr. Alan Turing')):
        created = accounts.create_doctor(actor=admin, full_name=name, email=f'{key}@example.org', password=PASSWORD,
                                         license_number=f'LIC-{key}', specialty='Radiology')
        people[key] = accounts.get_actor(created.user_id)
    patient = accounts.register_patient(full_name='Paula Patient', email='paula@example.org', password=PASSWORD,
                                        date_of_birth=date(1980, 5, 17), phone='+41791234567')
    with db.session_scope() as session:  # as the link in the welcome email does
        session.get(User, patient.user_id).email_verified_at = utcnow()
    people['patient'] = accounts.get_actor(patient.user_id)
    return people


def wait_for_delivery() -> list[Notification]:
    """Wait until no message is queued or being sent, and return all rows."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while True:
        with db.session_scope() as session:
            rows = list(session.scalars(select(Notification)))
            session.expunge_all()
        if all(row.status in {NotificationStatus.SENT, NotificationStatus.FAILED} for row in rows):
            return rows
        assert time.monotonic() < deadline, f'messages still waiting: {[(r.id, r.status) for r in rows]}'
        time.sleep(0.2)


def count_outbox(cluster: Cluster) -> Counter:
    """Count the emails in the shared outbox folder by recipient and subject."""
    outbox: Counter = Counter()
    for eml in (cluster.data_dir / 'outbox').glob('*.eml'):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        outbox[(message['To'], message['Subject'])] += 1
    return outbox


def test_board_events_cross_instances(cluster: Cluster,
                                                        new_context: Callable[..., sync_api.BrowserContext]):
    people = make_people()
    body_part = f'Chest {time.time_ns()}'
    exam_id = submitted(people['patient'], body_part=body_part)
    checkout = payments.start_checkout(actor=people['patient'], examination_id=exam_id)

    # Doctor A watches the board served by instance A, doctor B the board served by instance B.
    boards = {}
    for key, server in (('doctor_a', cluster.a), ('doctor_b', cluster.b)):
        board = new_context(base_url=server.base_url).new_page()
        sign_in(board, f'{key}@example.org')
        board.wait_for_url('**/doctor')
        expect(board.get_by_text('No examinations are waiting', exact=False)).to_be_visible()
        board.evaluate('window.openedBeforePayment = true')
        boards[key] = board

    # The patient pays on instance A.
    patient = new_context(base_url=cluster.a.base_url).new_page()
    sign_in(patient, 'paula@example.org')
    patient.goto(checkout)
    patient.get_by_role('button', name='Pay (test)').click()
    expect(patient.get_by_text('Waiting for a radiologist')).to_be_visible()

    for key, board in boards.items():
        card = board.locator('.q-card', has_text=body_part)
        expect(card, f'the paid case on the board of {key}').to_be_visible(timeout=CROSS_INSTANCE_TIMEOUT_MS)
        assert board.evaluate('window.openedBeforePayment') is True, f'the board of {key} was reloaded'

    # Doctor B accepts on instance B; the case leaves doctor A's board on instance A.
    boards['doctor_b'].locator('.q-card', has_text=body_part).get_by_role('button', name='Accept').click()
    boards['doctor_b'].wait_for_url(f'**/doctor/cases/{exam_id}')
    expect(boards['doctor_a'].locator('.q-card', has_text=body_part)).to_have_count(
        0, timeout=CROSS_INSTANCE_TIMEOUT_MS)
    expect(boards['doctor_a'].get_by_text('No examinations are waiting', exact=False)).to_be_visible()
    exam = examinations.get_exam(actor=people['admin'], examination_id=exam_id)
    assert (exam.status, exam.doctor_id) == ('under_review', people['doctor_b'].doctor_id)

    # Both instances run the delivery job, and each message still goes out once.
    rows = wait_for_delivery()
    emails = [row for row in rows if row.channel == 'email']
    assert emails and all(row.status == NotificationStatus.SENT for row in emails)
    outbox = count_outbox(cluster)
    assert outbox and max(outbox.values()) == 1, f'a message went out more than once: {outbox}'
    assert len(list((cluster.data_dir / 'outbox').glob('*.eml'))) == len(emails)


def test_sign_out_crosses_instances(cluster: Cluster, new_context: Callable[..., sync_api.BrowserContext]):
    make_people()
    context = new_context(base_url=cluster.a.base_url)
    on_a = context.new_page()
    sign_in(on_a, 'paula@example.org')
    on_a.wait_for_url('**/exams')
    # The same browser, with the same session cookie, has a page open that instance B serves.
    on_b = context.new_page()
    on_b.goto(f'{cluster.b.base_url}/exams')
    expect(on_b.get_by_role('main').get_by_text('My examinations')).to_be_visible()

    on_a.get_by_role('button', name='Sign out').first.click()
    # Polling the address, not waiting for one navigation: the sign-out passes through several pages.
    expect(on_a).to_have_url(re.compile(r'/login'))
    expect(on_b).to_have_url(re.compile(r'/login'), timeout=SIGN_OUT_TIMEOUT_MS)
