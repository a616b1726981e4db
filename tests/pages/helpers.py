"""Steps that page tests share: signing in and uploading files as a browser would."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from sqlalchemy import func, select

from secondopinion.config import get_settings
from secondopinion.db import session_scope
from secondopinion.models import Notification, NotificationStatus
from secondopinion.models.base import utcnow
from secondopinion.pages.study_uploader import StudyUploader
from secondopinion.services import sessions
from secondopinion.services import notifications
from tests.conftest import PASSWORD
from tests.totp_codes import TOTP_SECRETS, fresh_code_for


async def sign_in(user: User, email: str, password: str = PASSWORD, *, totp_secret: str | None = None) -> None:
    """Sign in on the login page; when it asks for a code, type one made from the account's TOTP secret.

    The secret is the key that the page shows when it sets up two-step sign-in (an admin without
    one), else `totp_secret`, else the one tests/totp_codes.py knows for the email (the admin's).
    """
    await user.open('/login')
    user.find(marker='email').type(email)
    user.find(marker='password').type(password)
    pages_before = len(user.back_history)
    user.find(marker='sign-in').click()
    try:
        code = user.find(marker='totp-code')
    except AssertionError:
        # Wrong password, locked, or no second factor: the page shows why, or the session starts.
        if password == PASSWORD:
            await wait_for_session(user, pages_before)
        return
    try:
        # An admin without a second factor sets it up here, as a person would: from the key shown.
        secret = user.find(marker='totp-secret').elements.pop().text.replace(' ', '')
    except AssertionError:
        secret = totp_secret or TOTP_SECRETS.get(email)
    assert secret, f'the sign-in of {email} asks for a code, but no TOTP secret is known for it'
    code.type(fresh_code_for(email, secret))
    user.find(marker='totp-submit').click()
    await wait_for_session(user, pages_before)


async def wait_for_session(user: User, pages_before: int, timeout: float = 10.0) -> None:
    """Wait until the browser has traded its sign-in ticket for the session cookie and opened the next page.

    Sign-in ends with a navigation that runs in the background, so a test that opens another page
    at once would otherwise race it. Returns early when the sign-in page shows why it refused.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if user.http_client.cookies.get(sessions.COOKIE_NAME) and len(user.back_history) > pages_before \
                and user.back_history[-1].startswith('/auth/session'):
            return
        if len(user.back_history) == pages_before and any(
                'login-error' in element._markers and getattr(element, 'text', '')
                for element in user.current_layout.descendants()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f'no session started within {timeout} s; the page shows: {user.current_layout}')


@dataclass(frozen=True)
class PageAnswer:
    """HTTP status and body of the response to a page request."""

    status: int
    body: str


async def open_page(user: User, path: str) -> PageAnswer:
    """Open a page like `User.open`, also when its status is 404, and return the status and body of the response.

    `User.open` accepts only status 200. A "not found" page is a whole NiceGUI page with status 404, so
    while it opens, a response hook records the response and passes such a page to `User.open` as 200.
    """
    answers: list[PageAnswer] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        answers.append(PageAnswer(response.status_code, response.text))
        if response.status_code == 404 and response.headers.get('X-NiceGUI-Content') == 'page':
            response.status_code = 200

    hooks = user.http_client.event_hooks['response']
    hooks.append(record)
    try:
        await user.open(path)
    finally:
        hooks.remove(record)
    return answers[-1]


async def upload(user: User, marker: str, paths: list[Path], *, names: list[str] | None = None,
                 folder: bool = False) -> None:
    """Upload files as the browser would: through ui.upload, or through the study uploader's HTTP routes.

    For the study uploader this does what study_uploader.js does: announce the files, send each
    one, commit, and then emit "uploaded" or "failed" on the element, so the page reacts as it
    does in a browser. `names` replaces the file names (relative paths for a folder).
    """
    element = user.find(marker=marker).elements.pop()
    if isinstance(element, ui.upload):
        files = [SmallFileUpload(name=path.name, content_type='application/octet-stream', _data=path.read_bytes())
                 for path in paths]
        await element.handle_uploads(files)
        return
    assert isinstance(element, StudyUploader)
    names = names or [path.name for path in paths]
    client = user.http_client
    response = await client.post(element.props['url'], json={
        'folder': folder, 'files': [{'name': name, 'size': path.stat().st_size} for name, path in zip(names, paths)]})
    if response.status_code == 201:
        upload_id = response.json()['upload_id']
        for index, path in enumerate(paths):
            response = await client.put(f'/api/uploads/{upload_id}/files/{index}', content=path.read_bytes())
            if response.status_code != 204:
                await client.delete(f'/api/uploads/{upload_id}')
                break
        else:
            response = await client.post(f'/api/uploads/{upload_id}/commit')
    if response.status_code == 200:
        user.find(marker=marker).trigger('uploaded', response.json())
    else:
        failure = response.json()
        user.find(marker=marker).trigger('failed', {'message': failure['detail'], 'files': failure.get('files', [])})


def dialog_is_open(user: User, marker: str) -> bool:
    """Return whether the ConfirmDialog whose markers start with `marker` is open."""
    dialog = user.find(marker=f'{marker}-dialog').elements.pop()
    assert isinstance(dialog, ui.dialog)
    return dialog.value


def dialog_text(user: User, marker: str) -> str:
    """Return the question and the consequences that the ConfirmDialog shows, one line each."""
    title = user.find(marker=f'{marker}-title').elements.pop()
    body = user.find(marker=f'{marker}-text').elements.pop()
    return '\n'.join([title.text, *(label.text for label in body.descendants() if isinstance(label, ui.label))])


def set_value(user: User, marker: str, value: object) -> None:
    for element in user.find(marker=marker).elements:
        element.value = value


def _deliver_emails_to(recipient: str, timeout: float = 15.0) -> None:
    """Send the due emails to `recipient`, also waiting for those that the app's scheduler claimed meanwhile.

    A row the scheduler is sending is skipped by `deliver_due`, so without the wait a test could read
    the outbox before the newest email is written and get an older link.
    """
    deadline = time.monotonic() + timeout
    while True:
        notifications.deliver_due()
        with session_scope() as session:
            pending = session.scalar(select(func.count()).select_from(Notification).where(
                Notification.recipient == recipient,
                Notification.status.in_([NotificationStatus.QUEUED, NotificationStatus.SENDING]),
                Notification.next_attempt_at <= utcnow()))
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def emailed_link(recipient: str, path: str) -> str:
    """Send the queued emails and return the newest link to `path` (e.g. "/verify-email") emailed to `recipient`.

    The link is read from the .eml file in the outbox folder, as the recipient's mail program shows
    it, and returned as a site path with its query string, ready for `user.open`.
    """
    _deliver_emails_to(recipient)
    outbox = get_settings().outbox_dir
    pattern = re.compile(re.escape(path) + r'\?token=[A-Za-z0-9_\-]+')
    for eml in sorted(outbox.glob('*.eml'), key=lambda item: item.name, reverse=True):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        if message['To'] != recipient:
            continue
        body = message.get_body(preferencelist=('plain',))
        assert body is not None, f'{eml.name} has no text part'
        match = pattern.search(body.get_content())
        if match:
            return match.group(0)
    raise AssertionError(f'no email to {recipient} with a link to {path} in {outbox}')


# --- the doctors' board -------------------------------------------------------------------------
# The board's cases are one element (pages/board_cases.py) that the browser renders as cards, so
# these helpers read its list and press Accept through the event that a card's button sends.

def board_cases_element(user: User) -> ui.element:
    return next(iter(user.find(marker='board-rows').elements))


def board_case_ids(user: User) -> list[str]:
    """Return the ids of the cases on the board's current page, top to bottom."""
    return [case.id for case in board_cases_element(user).cases]


def board_case(user: User, exam_id: str):  # noqa: ANN201 (a BoardCase of the module NiceGUI loaded for this test)
    case = board_cases_element(user).case(exam_id)
    assert case is not None, f'examination {exam_id} is not on the board'
    return case


async def wait_for_board_case(user: User, exam_id: str, *, on_board: bool = True, timeout: float = 5.0) -> None:
    """Wait until the case is on the board (or, with `on_board=False`, is no longer there)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = exam_id in board_case_ids(user)
        except AssertionError:  # the board is not built yet
            found = False
        if found == on_board:
            return
        where = 'missing from' if on_board else 'on'
        assert time.monotonic() < deadline, f'examination {exam_id} still {where} the board after {timeout} s'
        await asyncio.sleep(0.05)


def accept_on_board(user: User, exam_id: str) -> None:
    """Press the Accept button of the case's card."""
    assert exam_id in board_case_ids(user), f'examination {exam_id} is not on the board'
    user.find(marker='board-rows').trigger('accept', exam_id)
