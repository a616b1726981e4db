"""The Prometheus route /metrics: request counts by route template, upload bytes, outbox depth, open boards, token."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import nicegui
import pytest
from nicegui.testing import User
from prometheus_client.parser import text_string_to_metric_families
from pydicom.data import get_testdata_file

from secondopinion import db
from secondopinion.config import reset_settings
from secondopinion.models import Notification
from secondopinion.models.base import utcnow
from secondopinion.services import events, examinations
from tests.services.flow import paid

from .helpers import sign_in, wait_for_board_case

CT = Path(get_testdata_file('CT_small.dcm'))
TOKEN = 'scrape-token-for-tests-0123456789'


async def _scrape(user: User, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of /metrics, keyed by sample name and sorted labels."""
    response = await user.http_client.get('/metrics', headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers['content-type'].startswith('text/plain')
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _requests(samples: dict, method: str, route: str, status: str) -> float:
    key = ('secondopinion_http_requests_total', (('method', method), ('route', route), ('status', status)))
    return samples.get(key, 0.0)


def _outbox(samples: dict, status: str, channel: str) -> float:
    return samples[('secondopinion_outbox_messages', (('channel', channel), ('status', status)))]


def _board_clients(samples: dict) -> float:
    return samples[('secondopinion_board_clients', ())]


async def test_requests_counted_by_route_template(user: User):
    before = await _scrape(user)
    for _ in range(2):
        assert (await user.http_client.get('/healthz')).status_code == 200
    missing_ids = ['a' * 32, 'b' * 32]
    for exam_id in missing_ids:
        assert (await user.http_client.get(f'/api/exams/{exam_id}/images.zip')).status_code == 404
    assert (await user.http_client.get('/no/such/path/12345')).status_code == 404
    assert (await user.http_client.post('/healthz')).status_code == 405
    static_file = f'/_nicegui/{nicegui.__version__}/static/quasar.umd.prod.js'
    assert (await user.http_client.get(static_file)).status_code == 200
    after = await _scrape(user)

    assert _requests(after, 'GET', '/healthz', '200') == _requests(before, 'GET', '/healthz', '200') + 2
    template = '/api/exams/{examination_id}/images.zip'
    assert _requests(after, 'GET', template, '404') == _requests(before, 'GET', template, '404') + 2
    assert _requests(after, 'GET', 'unmatched', '404') == _requests(before, 'GET', 'unmatched', '404') + 1
    assert _requests(after, 'POST', '/healthz', '405') == _requests(before, 'POST', '/healthz', '405') + 1
    static_template = f'/_nicegui/{nicegui.__version__}/static/{{path}}'
    assert _requests(after, 'GET', static_template, '200') == _requests(before, 'GET', static_template, '200') + 1
    routes = {dict(labels).get('route') for name, labels in after if name == 'secondopinion_http_requests_total'}
    assert not any(exam_id in str(route) for route in routes for exam_id in missing_ids)
    assert not any('12345' in str(route) for route in routes)
    duration_key = ('secondopinion_http_request_duration_seconds_count', (('method', 'GET'), ('route', '/healthz')))
    assert after[duration_key] >= 2


async def test_upload_bytes_rise_by_file_size(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    client = user.http_client
    before = await _scrape(user)

    response = await client.post(f'/api/exams/{exam_id}/uploads',
                                 json={'folder': False, 'files': [{'name': 'CT_small.dcm', 'size': CT.stat().st_size}]})
    assert response.status_code == 201
    upload_id = response.json()['upload_id']
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes())).status_code == 204
    # A file with more bytes than announced is not stored, so it adds nothing.
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes() + b'x')).status_code == 413
    after = await _scrape(user)

    uploaded = after[('secondopinion_upload_bytes_total', ())] - before[('secondopinion_upload_bytes_total', ())]
    assert uploaded == CT.stat().st_size
    route = '/api/uploads/{upload_id}/files/{index}'
    assert _requests(after, 'PUT', route, '204') == _requests(before, 'PUT', route, '204') + 1
    assert _requests(after, 'PUT', route, '413') == _requests(before, 'PUT', route, '413') + 1


def _queue(channel: str, status: str, *, due_in: timedelta) -> None:
    with db.session_scope() as session:
        session.add(Notification(channel=channel, recipient='someone@example.org' if channel == 'email' else '+41790000000',
                                 template='welcome', subject='Welcome', body_text='Welcome.', status=status,
                                 next_attempt_at=utcnow() + due_in))


async def test_outbox_depth_follows_queue(user: User):
    later = timedelta(hours=1)
    for _ in range(2):
        _queue('email', 'queued', due_in=later)
    _queue('sms', 'failed', due_in=later)
    _queue('email', 'sent', due_in=later)
    samples = await _scrape(user)
    assert _outbox(samples, 'queued', 'email') == 2
    assert _outbox(samples, 'failed', 'sms') == 1
    assert _outbox(samples, 'sending', 'email') == 0
    assert _outbox(samples, 'queued', 'sms') == 0

    # A message due now is sent by the delivery job, which the app runs every 0.2 s in tests.
    _queue('email', 'queued', due_in=timedelta(0))
    assert _outbox(await _scrape(user), 'queued', 'email') == 3
    deadline = time.monotonic() + 10
    while _outbox(samples := await _scrape(user), 'queued', 'email') != 2:
        assert time.monotonic() < deadline, 'the due message was not sent within 10 s'
        await asyncio.sleep(0.1)
    assert _outbox(samples, 'failed', 'sms') == 1


async def test_database_down_skips_outbox(user: User, tmp_path, caplog):
    configured_url = os.environ.get('SECONDOPINION_DATABASE_URL')
    os.environ['SECONDOPINION_DATABASE_URL'] = f'sqlite:///{tmp_path / "no-such-folder" / "secondopinion.db"}'
    reset_settings()
    db.dispose_engine()
    try:
        samples = await _scrape(user)
        failure_logged = 'outbox depth not reported' in caplog.text
    finally:
        if configured_url is None:
            del os.environ['SECONDOPINION_DATABASE_URL']
        else:
            os.environ['SECONDOPINION_DATABASE_URL'] = configured_url
        reset_settings()
        db.dispose_engine()
        caplog.clear()  # the failed query and the delivery job log errors, which the User fixture would report
    assert not any(name == 'secondopinion_outbox_messages' for name, _ in samples)
    # The other gauges are still reported. Boards of earlier tests in this process may still count.
    assert _board_clients(samples) == events.subscriber_count()
    assert failure_logged


async def test_board_clients_follow_open_board(user: User, create_user, make_patient, make_doctor):
    make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    exam_id = paid(make_patient())
    # Counted from what is open now: the simulated clients of earlier tests in this process may remain.
    before = _board_clients(await _scrape(user))

    await sign_in(user, 'first@example.org')
    await wait_for_board_case(user, exam_id)
    assert _board_clients(await _scrape(user)) == before + 1

    second = create_user()
    await sign_in(second, 'second@example.org')
    await wait_for_board_case(second, exam_id)
    assert _board_clients(await _scrape(user)) == before + 2


async def test_token_required_when_set(user: User, monkeypatch, caplog):
    monkeypatch.setenv('SECONDOPINION_METRICS_TOKEN', TOKEN)
    reset_settings()
    caplog.set_level(logging.DEBUG)

    assert (await user.http_client.get('/metrics')).status_code == 401
    wrong = await user.http_client.get('/metrics', headers={'Authorization': f'Bearer {TOKEN}x'})
    assert wrong.status_code == 401
    assert wrong.headers['www-authenticate'] == 'Bearer'
    basic = await user.http_client.get('/metrics', headers={'Authorization': f'Basic {TOKEN}'})
    assert basic.status_code == 401
    samples = await _scrape(user, Authorization=f'Bearer {TOKEN}')
    assert _requests(samples, 'GET', '/metrics', '401') == 3
    assert TOKEN not in caplog.text


async def test_open_without_token(user: User, monkeypatch):
    monkeypatch.delenv('SECONDOPINION_METRICS_TOKEN', raising=False)
    reset_settings()
    response = await user.http_client.get('/metrics', headers={'Authorization': 'Bearer anything'})
    assert response.status_code == 200


@pytest.mark.parametrize('header', ['Bearer', 'Bearer ', 'bearer wrong', 'Token ' + TOKEN, ''])
def test_bearer_token_mismatch(header: str):
    from secondopinion.api.metrics import bearer_token_matches
    assert not bearer_token_matches(header, TOKEN)


def test_bearer_token_match():
    from secondopinion.api.metrics import bearer_token_matches
    assert bearer_token_matches(f'Bearer {TOKEN}', TOKEN)
    assert bearer_token_matches(f'bearer {TOKEN}', TOKEN)
