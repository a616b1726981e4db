"""Stopping `main.py` with SIGTERM: an upload in flight and a running email delivery finish, and the exit status is 0.

The server runs as a subprocess on a free loopback port, with the data folder and database of the test
process, so the test seeds a patient before the start and reads the outbox after the stop. A local SMTP
server delays its reply to each message until the test releases it, which keeps a delivery job
running across the stop.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from pydicom.data import get_testdata_file
from sqlalchemy import select

from secondopinion import db
from secondopinion.config import get_settings
from secondopinion.models import Notification
from secondopinion.services import examinations, sessions, uploads
from tests.browser.conftest import REPO_ROOT, AppServer, _free_port, _server_env, _wait_until_healthy
from tests.conftest import open_session

CT = Path(get_testdata_file('CT_small.dcm'))
GRACE_SECONDS = 20
CHUNK_BYTES = 4096
# Pause between two chunks of the PUT body, so that the upload is still arriving when SIGTERM comes.
CHUNK_PAUSE_SECONDS = 0.05
WAIT_SECONDS = 15


class HoldingSmtpHandler:
    """aiosmtpd handler that keeps every message waiting for its reply until `release` is set."""

    def __init__(self) -> None:
        self.receiving = threading.Event()
        self.release = threading.Event()
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd hook signature
        self.receiving.set()
        await asyncio.to_thread(self.release.wait, WAIT_SECONDS * 2)
        self.received.append(envelope.content)
        return '250 Message accepted for delivery'


@pytest.fixture
def smtp() -> Iterator[tuple[HoldingSmtpHandler, int]]:
    handler = HoldingSmtpHandler()
    port = _free_port()
    controller = Controller(handler, hostname='127.0.0.1', port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release.set()
        controller.stop()


def _wait_for(condition, event_name: str, server: AppServer) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'{event_name} did not happen within {WAIT_SECONDS} s. Server log:\n'
                                 f'{server.read_log()[-4000:]}')
        time.sleep(0.05)


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
    except OSError:
        return True
    return False


def _notification_statuses() -> list[str]:
    db.dispose_engine()
    with db.session_scope() as session:
        return list(session.scalars(select(Notification.status)))


@dataclass
class Patient:
    """A signed-in patient with a draft examination, made in the database before the server starts."""

    exam_id: str
    session_token: str


@pytest.fixture
def patient(make_patient) -> Patient:
    actor = make_patient('Alice Shutdown', email='alice@example.org')  # queues her welcome email
    seeded = Patient(exam_id=examinations.create_draft(actor=actor), session_token=open_session(actor.user_id))
    db.dispose_engine()  # the server opens the same database
    return seeded


@contextmanager
def running_server(tmp_path: Path, **settings: str) -> Iterator[tuple[subprocess.Popen, AppServer]]:
    """Serve `main.py` with the test's data folder and database, and the given SECONDOPINION_* settings."""
    data_dir = get_settings().data_dir
    port = _free_port()
    server = AppServer(base_url=f'http://127.0.0.1:{port}', data_dir=data_dir, log_path=tmp_path / 'server.log')
    env = _server_env(data_dir, port)
    env['SECONDOPINION_DATABASE_URL'] = os.environ.get('SECONDOPINION_DATABASE_URL', '')
    env.update({f'SECONDOPINION_{name.upper()}': value for name, value in settings.items()})
    with server.log_path.open('wb') as log:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(process, server)
        yield process, server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _port(server: AppServer) -> int:
    return int(server.base_url.rsplit(':', 1)[1])


def _begin_upload(server: AppServer, patient: Patient, body: bytes) -> tuple[str, http.client.HTTPConnection]:
    """Start an upload of one file and send the headers of its PUT. Return the upload id and the open connection.

    The upload starts as the page starts it: NiceGUI's cookie names the browser, the session cookie the patient.
    """
    with httpx.Client(base_url=server.base_url, trust_env=False) as client:
        assert client.get('/login').status_code == 200
        client.cookies.set(sessions.COOKIE_NAME, patient.session_token)
        response = client.post(f'/api/exams/{patient.exam_id}/uploads',
                               json={'folder': False, 'files': [{'name': 'CT_small.dcm', 'size': len(body)}]})
        assert response.status_code == 201, response.text
        upload_id = response.json()['upload_id']
        cookie_header = '; '.join(f'{name}={value}' for name, value in client.cookies.items())
    connection = http.client.HTTPConnection('127.0.0.1', _port(server), timeout=WAIT_SECONDS)
    connection.putrequest('PUT', f'/api/uploads/{upload_id}/files/0')
    connection.putheader('Content-Length', str(len(body)))
    connection.putheader('Cookie', cookie_header)
    connection.endheaders()
    return upload_id, connection


def _send_slowly(connection: http.client.HTTPConnection, data: bytes) -> None:
    for start in range(0, len(data), CHUNK_BYTES):
        connection.send(data[start:start + CHUNK_BYTES])
        time.sleep(CHUNK_PAUSE_SECONDS)


def _stop(process: subprocess.Popen, server: AppServer) -> int:
    """Send SIGTERM, wait for the stopping log line, and return the log offset from before the signal."""
    log_offset = server.log_path.stat().st_size
    process.send_signal(signal.SIGTERM)
    _wait_for(lambda: 'SecondOpinion stopping' in server.read_log(log_offset), 'the stopping log line', server)
    return log_offset


def _error_lines(log: str) -> list[str]:
    # The app's records read "... ERROR name: message" and uvicorn's read "ERROR:    message".
    return [line for line in log.splitlines() if ' ERROR ' in line or line.startswith(('ERROR:', 'Traceback'))]


def test_sigterm_finishes_upload_and_delivery(tmp_path, patient, smtp):
    handler, smtp_port = smtp
    body = CT.read_bytes()
    half = len(body) // 2
    with running_server(tmp_path, smtp_host='127.0.0.1', smtp_port=str(smtp_port), smtp_starttls='false',
                        shutdown_grace_seconds=str(GRACE_SECONDS)) as (process, server):
        upload_id, connection = _begin_upload(server, patient, body)
        # The delivery job is now waiting, or soon waits, for the SMTP server to accept the welcome email.
        _wait_for(handler.receiving.is_set, 'the delivery of the welcome email', server)
        _send_slowly(connection, body[:half])

        log_offset = _stop(process, server)
        # uvicorn notices the signal within 0.1 s and closes its listening socket.
        _wait_for(lambda: _refuses_connections(_port(server)), 'the refusal of new connections', server)

        _send_slowly(connection, body[half:])
        response = connection.getresponse()
        assert response.status == 204, response.read()
        connection.close()
        stored = uploads.staging_root() / upload_id / '000000'
        assert stored.read_bytes() == body

        # The scheduler waits for the delivery that is still talking to the SMTP server.
        time.sleep(0.5)
        assert process.poll() is None
        handler.release.set()
        assert process.wait(GRACE_SECONDS) == 0

    assert len(handler.received) >= 1
    assert 'sending' not in _notification_statuses()
    assert 'sent' in _notification_statuses()
    stop_log = server.read_log(log_offset)
    assert _error_lines(stop_log) == []
    stopping = stop_log.index('SecondOpinion stopping')
    scheduler_stopped = stop_log.index('scheduler stopped')
    stopped = stop_log.index('SecondOpinion stopped')
    assert stopping < scheduler_stopped < stopped


def test_grace_period_cancels_stalled_upload(tmp_path, patient):
    grace_seconds = 1.0
    body = CT.read_bytes()
    with running_server(tmp_path, shutdown_grace_seconds=str(grace_seconds)) as (process, server):
        upload_id, connection = _begin_upload(server, patient, body)
        _send_slowly(connection, body[:len(body) // 2])

        signalled = time.monotonic()
        log_offset = _stop(process, server)
        assert process.wait(GRACE_SECONDS) == 0
        waited = time.monotonic() - signalled
        connection.close()

    # The request that never completed is cancelled after the grace period, and its partial file removed.
    assert waited >= grace_seconds
    assert sorted(path.name for path in (uploads.staging_root() / upload_id).iterdir()) == [uploads.MANIFEST_NAME]
    # uvicorn logs the cancellation, and the cancelled request with its traceback.
    stop_log = server.read_log(log_offset)
    assert _error_lines(stop_log) == ['ERROR:    Cancel 1 running task(s), timeout graceful shutdown exceeded',
                                      'ERROR:    Exception in ASGI application', 'Traceback (most recent call last):']
    assert 'CancelledError: Task cancelled, timeout graceful shutdown exceeded' in stop_log
    assert 'SecondOpinion stopped' in stop_log
