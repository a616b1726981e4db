"""Fixtures and steps for tests in a real browser: `main.py` served in a subprocess, driven by headless Chromium.

Playwright drives Debian's Chromium (`apt-get install chromium`) and never downloads a browser of its own.
Every test here skips when /usr/bin/chromium or the `playwright` package is missing.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

from tests.conftest import PASSWORD
from tests.log_guard import GUARD
from tests.totp_codes import ADMIN_TOTP_SECRET, TOTP_SECRETS, fresh_step

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, WebSocket

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path('/usr/bin/chromium')
# Headless without GPU or sandbox (the tests may run as root in a container), and nothing that makes
# Chromium contact outside hosts: no updates, sync, first-run pages or QUIC probes, and no proxy.
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-quic', '--no-proxy-server']

ADMIN_EMAIL = 'admin@example.org'
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# How long Playwright waits for an element, a navigation or an expectation before it fails.
ACTION_TIMEOUT_MS = 10_000
# How long `click_until_visible` waits for the result of one click before it clicks again.
CLICK_RESULT_TIMEOUT_MS = 3_000

# A phone-sized touch screen. The Android user agent makes Quasar treat the page as mobile
# (it shows, for example, a dialog instead of a menu for selects), as it does on a real phone.
PHONE = {'viewport': {'width': 390, 'height': 844}, 'is_mobile': True, 'has_touch': True, 'device_scale_factor': 2,
         'user_agent': 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) '
                       'Chrome/126.0.0.0 Mobile Safari/537.36'}
DESKTOP = {'viewport': {'width': 1280, 'height': 800}}

# The fixed header wraps to several rows when its buttons do not fit, and then covers much of a phone screen.
HEADER_MAX_HEIGHT_PX = 100

# Cookie values the test browsers were given; the `app` fixture checks that the server never logged one.
BROWSER_COOKIES: set[str] = set()
EXAM_URL = re.compile(r'/exams/(?P<id>[^/?#]+)$')
_serial_numbers = itertools.count(1)
# The last time step whose code `sign_in` typed, by email address.
_used_steps: dict[str, int] = {}
# The server of `app_server`, whose outbox folder `emailed_link` reads; one per test package.
_running_server: AppServer | None = None


def _missing_requirement() -> str | None:
    if not CHROMIUM.exists():
        return f'{CHROMIUM} is missing: install it with `apt-get install chromium`.'
    if find_spec('playwright') is None:
        return 'The playwright package is missing: install it with `pip install playwright`.'
    return None


MISSING_REQUIREMENT = _missing_requirement()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every test in this folder, before any fixture starts, when the browser cannot run."""
    if MISSING_REQUIREMENT:
        pytest.skip(MISSING_REQUIREMENT)


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Remember a failed test body, so `open_page` can show the pages and their log as they were then."""
    report = yield
    if report.when == 'call' and report.failed:
        item.stash[CALL_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def app_env() -> Iterator[None]:
    """Replace the shared fixture of the same name: these tests use the server's own data folder, not one in-process."""
    yield


@dataclass
class AppServer:
    base_url: str
    data_dir: Path
    log_path: Path

    def read_log(self, offset: int = 0) -> str:
        with self.log_path.open(encoding='utf-8', errors='replace') as log:
            log.seek(offset)
            return log.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _server_env(data_dir: Path, port: int) -> dict[str, str]:
    """Return this process's environment for `main.py`: loopback only, an empty data folder, no outside services."""
    # NiceGUI does not serve when it finds PYTEST_CURRENT_TEST or its own test variables.
    env = {name: value for name, value in os.environ.items()
           if name != 'PYTEST_CURRENT_TEST' and not name.startswith(('NICEGUI_', 'SECONDOPINION_'))}
    env.update({
        'SECONDOPINION_ENVIRONMENT': 'development',
        'SECONDOPINION_HOST': '127.0.0.1',
        'SECONDOPINION_PORT': str(port),
        'SECONDOPINION_PUBLIC_BASE_URL': f'http://127.0.0.1:{port}',
        'SECONDOPINION_DATA_DIR': str(data_dir),
        # Empty values win over a developer's .env: SQLite in the data folder, and emails as .eml files.
        'SECONDOPINION_DATABASE_URL': '',
        'SECONDOPINION_SMTP_HOST': '',
        'SECONDOPINION_NOTIFICATION_INTERVAL_SECONDS': '0.5',
        'PYTHONUNBUFFERED': '1',
    })
    return env


def _wait_until_healthy(process: subprocess.Popen, server: AppServer) -> None:
    # Bypass any proxy from the environment: the server listens on loopback only.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_error = 'no answer'
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'main.py exited with code {process.returncode} before serving. '
                               f'Its log:\n{server.read_log()[-4000:]}')
        try:
            with opener.open(f'{server.base_url}/healthz', timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f'status {response.status}'
        except urllib.error.HTTPError as error:
            last_error = f'status {error.code}'
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.1)
    raise TimeoutError(f'GET {server.base_url}/healthz did not return 200 within {STARTUP_TIMEOUT_SECONDS:.0f} s '
                       f'(last result: {last_error}). Server log:\n{server.read_log()[-4000:]}')


@pytest.fixture(scope='package')
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """Serve `main.py` on a free loopback port with an empty data folder and an admin account."""
    folder = tmp_path_factory.mktemp('browser-app')
    port = _free_port()
    server = AppServer(base_url=f'http://127.0.0.1:{port}', data_dir=folder / 'data', log_path=folder / 'server.log')
    env = _server_env(server.data_dir, port)
    main = str(REPO_ROOT / 'main.py')

    # A scripted setup: two-step sign-in is on from the start, with a secret that `sign_in` makes codes from.
    created = subprocess.run([sys.executable, main, 'create-admin', '--email', ADMIN_EMAIL, '--name', 'Ada Admin',
                              '--password-stdin', '--totp-secret-stdin'],
                             input=f'{PASSWORD}\n{ADMIN_TOTP_SECRET}\n', env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, f'create-admin failed:\n{created.stdout}\n{created.stderr}'

    with server.log_path.open('wb') as log:
        process = subprocess.Popen([sys.executable, main], env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    global _running_server
    try:
        _wait_until_healthy(process, server)
        _running_server = server
        yield server
    finally:
        _running_server = None
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def app(app_server: AppServer) -> Iterator[AppServer]:
    """Return the running server, and fail the test when the server logged an error or a traceback during it."""
    offset = app_server.log_path.stat().st_size
    yield app_server
    new_lines = app_server.read_log(offset).splitlines()
    # The app's records read "... ERROR name: message" and uvicorn's read "ERROR:    message".
    problems = [line for line in new_lines if ' ERROR ' in line or line.startswith(('ERROR:', 'Traceback'))]
    if problems:
        pytest.fail('The server logged errors during the test:\n' + '\n'.join(problems[:20]), pytrace=False)
    findings = GUARD.check_lines(new_lines, 'server log', database=app_server.data_dir / 'secondopinion.db',
                                 cookies=BROWSER_COOKIES)
    if findings:
        pytest.fail('The server log holds a password, session secret or patient name:\n'
                    + '\n'.join(finding.describe() for finding in findings[:20]), pytrace=False)


@pytest.fixture(scope='package')
def browser() -> Iterator[Browser]:
    """Launch one headless Chromium for the package; each test opens its own contexts (separate cookies)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    # Playwright's launch() gives Chromium a new temporary --user-data-dir each time and removes it on close.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class PageLog:
    """Console messages and websocket frames of a test's pages, printed when the test failed.

    The frames show whether a click reached the server as a NiceGUI event and what the server sent back.
    """

    def __init__(self, max_lines: int = 2000) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)

    def add(self, page_number: int, text: str) -> None:
        self.lines.append(f'{time.strftime("%H:%M:%S")} page {page_number} {text[:300]}')

    def watch(self, page: Page, page_number: int) -> None:
        page.on('console', lambda message: self.add(page_number, f'console {message.type}: {message.text}'))
        page.on('websocket', lambda socket: self._watch_socket(socket, page_number))

    def _watch_socket(self, socket: WebSocket, page_number: int) -> None:
        self.add(page_number, f'websocket opened: {socket.url}')
        socket.on('framesent', lambda payload: self.add(page_number, f'sent {payload}'))
        socket.on('framereceived', lambda payload: self.add(page_number, f'received {payload}'))
        socket.on('close', lambda _socket: self.add(page_number, 'websocket closed'))


@pytest.fixture
def csp_violations() -> list[str]:
    """Return the list into which `open_page` collects the Content Security Policy violations of its pages."""
    return []


@pytest.fixture
def open_page(browser: Browser, app: AppServer, request: pytest.FixtureRequest,
              csp_violations: list[str]) -> Iterator[Callable[..., Page]]:
    """Return a function that opens a page in a new browser context (one person), e.g. `open_page(**PHONE)`.

    The test fails when a page threw an uncaught JavaScript error, or when Chromium reported in the
    console that the Content Security Policy blocked something. When the test failed, its output shows
    the console and websocket log of its pages, and each page is saved as `failed-TEST-N.png` into
    $SECONDOPINION_SCREENSHOT_DIR when that is set.
    """
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []
    log = PageLog()

    def open_new(**options: Any) -> Page:
        context = browser.new_context(base_url=app.base_url, **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on('pageerror', lambda error: page_errors.append(f'{page.url}: {error}'))
        page.on('console', lambda message: _record_csp_violation(csp_violations, page, message))
        log.watch(page, len(contexts))
        return page

    yield open_new

    if request.node.stash.get(CALL_FAILED, False):
        for number, context in enumerate(contexts, start=1):
            for page in context.pages:
                print(f'page {number} was at {page.url}')
                save_screenshot(page, f'failed-{request.node.name}-{number}')
        print('Console and websocket log of the pages:', *log.lines, sep='\n')
    for context in contexts:
        BROWSER_COOKIES.update(cookie['value'] for cookie in context.cookies() if cookie.get('value'))
        context.close()
    assert not page_errors, 'JavaScript errors in the pages:\n' + '\n'.join(page_errors)
    assert not csp_violations, 'Content Security Policy violations in the pages:\n' + '\n'.join(csp_violations)


def _record_csp_violation(violations: list[str], page: Page, message: ConsoleMessage) -> None:
    # Chromium reports each blocked load, script or style as a console error that names the policy.
    if 'Content Security Policy' in message.text:
        violations.append(f'{page.url}: {message.text}')


def unique_email(prefix: str) -> str:
    """Return a new address for each call, because every test in the package shares one server and database."""
    return f'{prefix}{next(_serial_numbers)}@example.org'


def save_screenshot(page: Page, name: str) -> None:
    """Save a full-page PNG as NAME.png into $SECONDOPINION_SCREENSHOT_DIR; do nothing when it is unset."""
    folder = os.environ.get('SECONDOPINION_SCREENSHOT_DIR')
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    # Scroll to the top first, because a full-page capture draws the fixed header at the current scroll
    # position. Disabled animations skip Quasar's fade-in of images and floating labels.
    page.evaluate('window.scrollTo(0, 0)')
    page.wait_for_function('[...document.images].every(image => image.complete)')
    page.screenshot(path=str(Path(folder) / f'{name}.png'), full_page=True, animations='disabled')


def horizontal_overflow(page: Page) -> dict[str, Any]:
    """Return the page's scroll width, the window's inner width and the elements that stick out to the right."""
    return page.evaluate('''() => {
        const width = window.innerWidth;
        const culprits = [];
        for (const element of document.body.querySelectorAll('*')) {
            const box = element.getBoundingClientRect();
            if (box.width > 0 && box.right > width + 0.5 && culprits.length < 8) {
                const text = (element.innerText || '').trim().slice(0, 40);
                culprits.push(`${element.tagName.toLowerCase()}.${[...element.classList].join('.')} `
                              + `right=${Math.round(box.right)} "${text}"`);
            }
        }
        return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, culprits};
    }''')


def assert_no_horizontal_scroll(page: Page) -> None:
    overflow = horizontal_overflow(page)
    assert overflow['scrollWidth'] <= overflow['innerWidth'], (
        f'{page.url} scrolls sideways: scrollWidth {overflow["scrollWidth"]} > innerWidth {overflow["innerWidth"]}. '
        'Elements past the right edge:\n' + '\n'.join(overflow['culprits']))


def assert_header_one_row(page: Page) -> None:
    """Check that the fixed header did not wrap: one row is about 74 px high on a phone, two rows about 120 px."""
    height = page.locator('.q-header').bounding_box()['height']
    assert height <= HEADER_MAX_HEIGHT_PX, f'the header of {page.url} is {height:.0f} px high, so it wrapped'


def exam_id_of(page: Page) -> str:
    match = EXAM_URL.search(page.url)
    assert match, f'{page.url} is not the page of an examination'
    return match.group('id')


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in on /login, and type a code from the authenticator app for accounts with two-step sign-in."""
    page.goto('/login')
    page.get_by_label('Email').fill(email)
    page.get_by_label('Password', exact=True).fill(password)
    page.locator('.q-card').get_by_role('button', name='Sign in').click()
    secret = TOTP_SECRETS.get(email)
    if secret is not None:
        # The server accepts each time step once, so a second sign-in within 30 s takes the next step's code.
        step = fresh_step(secret, _used_steps.get(email))
        _used_steps[email] = step
        page.get_by_label('6-digit code').fill(pyotp.TOTP(secret).generate_otp(step))
        page.get_by_role('button', name='Continue').click()
    page.wait_for_url(lambda url: '/login' not in url)


def remember_totp(email: str, secret: str, used_step: int) -> None:
    """Let `sign_in` type codes for this account, after the step whose code the test already used."""
    TOTP_SECRETS[email] = secret
    _used_steps[email] = used_step


def register_patient(page: Page, *, name: str, email: str, date_of_birth: str = '1980-05-17',
                     phone: str = '+41 79 123 45 67') -> None:
    """Fill and send the registration form on the current /register page, then wait for the page /exams."""
    page.get_by_label('Full name').fill(name)
    page.get_by_label('Email').fill(email)
    page.get_by_label('Mobile phone (optional)').fill(phone)
    page.locator('input[type=date]').fill(date_of_birth)
    page.get_by_label(re.compile(r'^Password \(at least')).fill(PASSWORD)
    page.get_by_role('button', name='Create account').click()
    page.wait_for_url('**/exams')
    confirm_email(page, email)


def confirm_email(page: Page, email: str) -> None:
    """Open the confirmation link of the welcome email and press the button, as the patient does; end on /exams."""
    from playwright.sync_api import expect

    page.goto(emailed_link(email, '/verify-email'))
    page.get_by_role('button', name='Confirm my email address').click()
    expect(page.get_by_text(f'Your email address {email} is confirmed.')).to_be_visible()
    page.goto('/exams')
    expect(page.get_by_role('main').get_by_text('My examinations')).to_be_visible()


def emailed_link(recipient: str, path: str, timeout: float = 15.0) -> str:
    """Wait for the email to `recipient` with a link to `path` in the server's outbox folder; return the link."""
    assert _running_server is not None, 'no app server is running'
    outbox = _running_server.data_dir / 'outbox'
    pattern = re.compile(r'https?://[^\s"<>]+' + re.escape(path) + r'\?token=[A-Za-z0-9_\-]+')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for eml in sorted(outbox.glob('*.eml'), key=lambda item: item.name, reverse=True):
            message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
            if message['To'] != recipient:
                continue
            match = pattern.search(message.get_body(preferencelist=('plain',)).get_content())
            if match:
                return match.group(0)
        time.sleep(0.2)
    raise AssertionError(f'no email to {recipient} with a link to {path} arrived in {outbox} within {timeout:.0f} s')


def upload_images(page: Page, paths: list[Path]) -> None:
    """Choose files in the image uploader of the examination form, as the file picker does."""
    files_input = page.locator('.study-uploader input[type=file]:not([webkitdirectory])')
    files_input.set_input_files([str(path) for path in paths])


def upload_folder(page: Page, folder: Path) -> None:
    """Choose a folder in the image uploader, as the folder picker does."""
    page.locator('.study-uploader input[type=file][webkitdirectory]').set_input_files(str(folder))


def choose_modality(page: Page, label: str) -> None:
    """Open the "Type of examination" select, click the option, and wait until its menu or phone dialog closed."""
    from playwright.sync_api import expect

    page.get_by_label('Type of examination').click()
    option = page.get_by_role('option', name=label)
    option.click()
    expect(option).to_be_hidden()


def click_until_visible(button: Locator, result: Locator, attempts: int = 3) -> None:
    """Click `button` until `result` is visible, and click again when a click had no effect.

    NOTE: a click on "Create doctor" soon after the admin panel loaded was lost in 4 of about 45 runs of
    this suite: the websocket frames show that the browser sent no event for it. The cause is not known.
    """
    from playwright.sync_api import expect

    for attempt in range(attempts):
        if attempt and result.is_visible():
            return
        button.click()
        try:
            expect(result).to_be_visible(timeout=CLICK_RESULT_TIMEOUT_MS)
            return
        except AssertionError:
            warnings.warn(f'{result} was not visible {CLICK_RESULT_TIMEOUT_MS} ms after a click on {button}; '
                          'clicking again', stacklevel=2)
    expect(result).to_be_visible()


def create_doctor_in_admin_panel(page: Page, *, name: str, email: str) -> None:
    """Sign in as the admin and create a doctor account with the shared test password."""
    from playwright.sync_api import expect

    sign_in(page, ADMIN_EMAIL)
    expect(page.get_by_text('Admin panel').first).to_be_visible()
    page.get_by_text('Create a doctor account').click()
    page.get_by_label('Full name').fill(name)
    page.get_by_label('Email').fill(email)
    page.get_by_label('License number').fill(f'CH-RAD-{next(_serial_numbers):04d}')
    click_until_visible(page.get_by_role('button', name='Create doctor'), page.get_by_text(f'{name} ({email})'))
    accept_invitation(page, email)


def accept_invitation(page: Page, email: str) -> None:
    """Choose the shared test password through the emailed invitation, in a browser context of the doctor's own."""
    from playwright.sync_api import expect

    context = page.context.browser.new_context(base_url=_running_server.base_url if _running_server else None)
    try:
        invited = context.new_page()
        invited.goto(emailed_link(email, '/invite'))
        invited.get_by_label(re.compile(r'^New password')).fill(PASSWORD)
        invited.get_by_label('Repeat the new password').fill(PASSWORD)
        invited.get_by_role('button', name='Save and sign in').click()
        invited.wait_for_url('**/doctor')
        expect(invited.get_by_role('main').get_by_text('Pending examinations')).to_be_visible()
    finally:
        context.close()


def submit_paid_examination(page: Page, *, images: list[Path], modality: str, body_part: str,
                            question: str, urgent: bool = False) -> str:
    """Create an examination as the signed-in patient through the steps of the form, pay it and return its id."""
    from playwright.sync_api import expect

    page.goto('/exams/new')
    page.wait_for_url('**/edit')
    upload_images(page, images)
    expect(page.get_by_text(f'{len(images)} DICOM image{"" if len(images) == 1 else "s"} added')).to_be_visible()
    page.get_by_role('button', name='Continue to details').click()
    choose_modality(page, modality)
    page.get_by_label('Body part').fill(body_part)
    page.get_by_label('Your question for the radiologist').fill(question)
    if urgent:
        page.get_by_text('Urgent (reviewed first, costs more)').click()
    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text(question)).to_be_visible()
    page.get_by_role('button', name='Continue to payment').click()
    page.get_by_role('button', name='Submit and pay').click()
    page.wait_for_url('**/checkout/test/**')
    page.get_by_role('button', name='Pay (test)').click()
    page.wait_for_url(EXAM_URL)
    expect(page.get_by_text('Waiting for a radiologist')).to_be_visible()
    return exam_id_of(page)
