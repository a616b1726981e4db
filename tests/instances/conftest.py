"""Two app instances on loopback against one PostgreSQL database, driven by headless Chromium.

Both instances share a data folder, as replicas share a volume or a blob container. Events cross
between them through PostgreSQL LISTEN/NOTIFY, or through Redis pub/sub when the `bus` parameter is
"redis" (then NiceGUI's storage lives in that Redis too). The tests here need PostgreSQL and skip
without SECONDOPINION_TEST_DATABASE_URL; the CI runs them in its PostgreSQL pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from secondopinion import db
from secondopinion.config import reset_settings
from tests.browser.conftest import (  # noqa: F401 (browser is a fixture used here)
    ACTION_TIMEOUT_MS,
    MISSING_REQUIREMENT,
    AppServer,
    _free_port,
    _server_env,
    _wait_until_healthy,
    browser,
)
from tests.log_guard import GUARD
from tests.redis_server import RedisServer, start_redis

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 15.0
# The bus parameter and the Redis server of the test, from `app_env` to `cluster`.
BUS_KEY = pytest.StashKey[tuple[str, Any]]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not os.environ.get('SECONDOPINION_TEST_DATABASE_URL'):
        pytest.skip('two instances need one PostgreSQL database: set SECONDOPINION_TEST_DATABASE_URL '
                    '(the CI does in its PostgreSQL pass)')
    if MISSING_REQUIREMENT:
        pytest.skip(MISSING_REQUIREMENT)


def _instances_database_url() -> str:
    """Return the URL of a database of its own next to the suite's, created empty."""
    base = make_url(os.environ['SECONDOPINION_TEST_DATABASE_URL'])
    name = f'{base.database}_instances'
    server = create_engine(base.set(database='postgres'), isolation_level='AUTOCOMMIT')
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@dataclass
class Cluster:
    bus: str
    a: AppServer
    b: AppServer
    data_dir: Path
    redis: RedisServer | None
    processes: dict[str, subprocess.Popen]
    settings: dict[str, str]

    def server_logs(self) -> str:
        return '\n'.join(f'--- instance {name} ---\n{server.read_log()[-3000:]}'
                         for name, server in (('A', self.a), ('B', self.b)))

    def crash(self, name: str) -> None:
        """Kill an instance at once (SIGKILL), as a failing machine or an out-of-memory kill does."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def restart(self, name: str) -> None:
        """Start a killed instance again on its port, with the same settings and log file."""
        server = self.a if name == 'A' else self.b
        self.processes[name] = _launch(server, self.settings)
@pytest.fixture(params=['postgres', 'redis'])
def app_env(request, tmp_path, monkeypatch) -> Iterator[dict[str, str]]:
    """Replace the shared fixture: this process and both instances use one fresh PostgreSQL database."""
    database_url = _instances_database_url()
    data_dir = tmp_path / 'shared-data'
    settings = {'SECONDOPINION_DATABASE_URL': database_url, 'SECONDOPINION_DATA_DIR': str(data_dir)}
    redis_server = None
    if request.param == 'redis':
        redis_server = start_redis(tmp_path / 'redis')
        settings['SECONDOPINION_REDIS_URL'] = redis_server.url
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    db.dispose_engine()
    db.migrate()
    request.node.stash[BUS_KEY] = (request.param, redis_server)
    yield settings
    GUARD.collect_names_of_test()
    db.dispose_engine()
    reset_settings()
    if redis_server is not None:
        redis_server.stop()


def _launch(server: AppServer, settings: dict[str, str]) -> subprocess.Popen:
    port = int(server.base_url.rsplit(':', 1)[1])
    env = _server_env(server.data_dir, port)
    env.update(settings)
    # Emails go to the shared outbox folder; both instances run the delivery job every half second.
    with server.log_path.open('ab') as log:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(process, server)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def _start_instance(name: str, settings: dict[str, str], folder: Path) -> tuple[AppServer, subprocess.Popen]:
    data_dir = Path(settings['SECONDOPINION_DATA_DIR'])
    server = AppServer(base_url=f'http://127.0.0.1:{_free_port()}', data_dir=data_dir,
                       log_path=folder / f'{name}.log')
    return server, _launch(server, settings)


def stop_instance(process: subprocess.Popen) -> int:
    """Stop an instance as a container runtime does (SIGTERM), and return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


# Starlette's BaseHTTPMiddleware (used by NiceGUI's middlewares) raises this when the browser drops a
# request before its response, as a page that leaves for the sign-in page does with its open requests.
DISCONNECT_ERROR = 'RuntimeError: No response returned.'
ASGI_ERROR = 'ERROR:    Exception in ASGI application'


def _without_disconnect_errors(log: str) -> str:
    """Return the log without uvicorn's reports of requests the client dropped; other errors stay."""
    remaining: list[str] = []
    block: list[str] = []
    for line in log.splitlines():
        if line.startswith(ASGI_ERROR) or (block and not line.startswith('20')):
            block.append(line)
            if line == DISCONNECT_ERROR:
                block = []
            continue
        remaining.extend(block)
        block = []
        remaining.append(line)
    remaining.extend(block)
    return '\n'.join(remaining)


@pytest.fixture
def cluster(app_env: dict[str, str], request, tmp_path) -> Iterator[Cluster]:
    """Start instances A and B; fail the test when either logged an error or a traceback."""
    bus, redis_server = request.node.stash[BUS_KEY]
    processes: dict[str, subprocess.Popen] = {}
    servers: dict[str, AppServer] = {}
    try:
        for name in ('A', 'B'):
            servers[name], processes[name] = _start_instance(name, app_env, tmp_path)
        cluster = Cluster(bus=bus, a=servers['A'], b=servers['B'], data_dir=Path(app_env['SECONDOPINION_DATA_DIR']),
                          redis=redis_server, processes=processes, settings=app_env)
        yield cluster
    finally:
        codes = {name: stop_instance(process) for name, process in processes.items()}
    problems = [f'{name}: {line}' for name, server in servers.items()
                for line in _without_disconnect_errors(server.read_log()).splitlines()
                if ' ERROR ' in line or line.startswith(('ERROR:', 'Traceback'))]
    assert not problems, 'The instances logged errors:\n' + '\n'.join(problems[:20])
    # uvicorn finishes its shutdown and then raises the SIGTERM it caught again, so -15 is a clean stop too.
    assert all(code in {0, -signal.SIGTERM} for code in codes.values()), f'exit codes {codes}'
    for name, server in servers.items():
        log = server.read_log()
        assert log.rfind('SecondOpinion stopped') > log.rfind('SecondOpinion started'), \
            f'the last run of instance {name} did not stop cleanly'


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:  # noqa: F811 (the imported fixture)
    """Return a function that opens a browser context (one person); cookies hold for both instances.

    Cookies do not depend on the port, so one context signed in on A is signed in on B too, as a
    browser behind a load balancer is.
    """
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []

    def open_context(**options: Any) -> BrowserContext:
        context = browser.new_context(viewport={'width': 1280, 'height': 800}, **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.on('page', lambda page: page.on('pageerror', lambda error: page_errors.append(f'{page.url}: {error}')))
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert not page_errors, 'JavaScript errors in the pages:\n' + '\n'.join(page_errors)
