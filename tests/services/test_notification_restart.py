"""The outbox across a crash: the app is killed while retrying an email and started again; the email arrives once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from secondopinion import db
from secondopinion.models import Notification, NotificationStatus

from .test_notifications import SmtpServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0


def _app_env(smtp_port: int) -> dict[str, str]:
    """The test's own settings (data folder, database) plus a loopback SMTP server and fast retries."""
    env = {name: value for name, value in os.environ.items()
           if name != 'PYTEST_CURRENT_TEST' and not name.startswith('NICEGUI_')}
    env.update({'SECONDOPINION_HOST': '127.0.0.1', 'SECONDOPINION_PORT': str(free_port()),
                'SECONDOPINION_SMTP_HOST': '127.0.0.1', 'SECONDOPINION_SMTP_PORT': str(smtp_port),
                'SECONDOPINION_SMTP_STARTTLS': 'false', 'SECONDOPINION_NOTIFICATION_INTERVAL_SECONDS': '0.2',
                'SECONDOPINION_NOTIFICATION_RETRY_BASE_SECONDS': '0.5', 'PYTHONUNBUFFERED': '1'})
    return env


def _row(notification_id: int) -> Notification:
    with db.session_scope() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        session.expunge(row)
        return row


def _wait_for(condition: Callable[[], bool], what: str, app: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise AssertionError(f'the app exited with {app.returncode}:\n{log.read_text()[-3000:]}')
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f'{what} did not happen within {WAIT_SECONDS:.0f} s:\n{log.read_text()[-3000:]}')


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open('ab') as output:
        return subprocess.Popen([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)


def test_killed_while_retrying_then_restarted_sends_once(make_patient, tmp_path):
    make_patient(email='restart@example.org')  # queues the welcome email
    with db.session_scope() as session:
        notification_id = session.scalars(select(Notification.id)).one()
    smtp = SmtpServer(free_port())  # not started yet: the mail server is down
    env, log = _app_env(smtp.port), tmp_path / 'app.log'

    first = _start(env, log)
    try:
        _wait_for(lambda: _row(notification_id).attempts >= 2, 'two failed attempts', first, log)
    finally:
        first.kill()  # as a crash would: no shutdown, the scheduler does not finish its run
        first.wait()
    failed_attempts = _row(notification_id).attempts

    smtp.start()
    second = _start(env, log)
    try:
        _wait_for(lambda: _row(notification_id).status == NotificationStatus.SENT, 'delivery', second, log)
        time.sleep(1.0)  # several more delivery runs, which must not send it again
    finally:
        second.terminate()
        second.wait(10)
        smtp.stop()

    assert smtp.handler.notification_ids() == [notification_id]
    row = _row(notification_id)
    assert row.attempts == failed_attempts + 1
    assert row.last_error.startswith('ConnectionRefusedError')
