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


def test_sigterm_finishes_upload_and_delivery(tmp_path, make_patient, smtp):
    handler, smtp_port = smtp
    patient = make_patient('Alice Shutdown', email='alice@example.org')  # queues her welcome email
    exam_id = examinations.create_draft(actor=patient)
    token = open_session(patient.user_id)
    data_dir = get_settings().data_dir
    db.dispose_engine()  # the server opens the same database

    port = _free_port()
    server = AppServer(base_url=f'http://127.0.0.1:{port}', data_dir=data_dir, log_path=tmp_path / 'server.log')
    env = _server_env(data_dir, port)
    env.update({'SECONDOPINION_DATABASE_URL': os.environ.get('SECONDOPINION_DATABASE_URL', ''),
                'SECONDOPINION_SMTP_HOST': '127.0.0.1', 'SECONDOPINION_SMTP_PORT': str(smtp_port),
                'SECONDOPINION_SMTP_STARTTLS': 'false',
                'SECONDOPINION_SHUTDOWN_GRACE_SECONDS': str(GRACE_SECONDS)})
    with server.log_path.open('wb') as log:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(process, server)

        # Start the upload as the page does: the NiceGUI cookie names the browser, the session cookie the patient.
        with httpx.Client(base_url=server.base_url, trust_env=False) as client:
            assert client.get('/login').status_code == 200
            client.cookies.set(sessions.COOKIE_NAME, token)
            response = client.post(f'/api/exams/{exam_id}/uploads',
                                   json={'folder': False, 'files': [{'name': 'CT_small.dcm',
                                                                     'size': CT.stat().st_size}]})
            assert response.status_code == 201, response.text
            upload_id = response.json()['upload_id']
            cookie_header = '; '.join(f'{name}={value}' for name, value in client.cookies.items())

        # The delivery job is now waiting for the SMTP server to accept the welcome email.
        _wait_for(handler.receiving.is_set, 'the delivery of the welcome email', server)

        body = CT.read_bytes()
        chunks = [body[start:start + CHUNK_BYTES] for start in range(0, len(body), CHUNK_BYTES)]
        half = len(chunks) // 2
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=WAIT_SECONDS)
        connection.putrequest('PUT', f'/api/uploads/{upload_id}/files/0')
        connection.putheader('Content-Length', str(len(body)))
        connection.putheader('Cookie', cookie_header)
        connection.endheaders()
        for chunk in chunks[:half]:
            connection.send(chunk)
            time.sleep(CHUNK_PAUSE_SECONDS)

        log_offset = server.log_path.stat().st_size
        process.send_signal(signal.SIGTERM)
        _wait_for(lambda: 'SecondOpinion stopping' in server.read_log(log_offset), 'the stopping log line', server)
        assert _refuses_connections(port)

        for chunk in chunks[half:]:
            connection.send(chunk)
            time.sleep(CHUNK_PAUSE_SECONDS)
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
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert len(handler.received) >= 1
    assert 'sending' not in _notification_statuses()
    assert 'sent' in _notification_statuses()
    stop_log = server.read_log(log_offset)
    lines = stop_log.splitlines()
    assert not [line for line in lines if ' ERROR ' in line or line.startswith(('ERROR:', 'Traceback'))], stop_log
    stopping = stop_log.index('SecondOpinion stopping')
    scheduler_stopped = stop_log.index('scheduler stopped')
    stopped = stop_log.index('SecondOpinion stopped')
    assert stopping < scheduler_stopped < stopped
