"""A pytest plugin that fails the run when a log line carries a password, a session secret or a patient name.

A handler on the root logger keeps every formatted record of the run (the `secondopinion` loggers at
DEBUG, the others at their own level). At the end of the session each line is checked against what
the tests used:

- passwords and other secrets: every string literal in the tests' source assigned to a name, or
  given as a keyword, whose name contains PASSWORD, SECRET, TOKEN or API_KEY, and every password that passlib
  hashed or verified during the run (so also those typed into forms);
- sign-in tickets and session cookie values: every value `sessions.start` and `sessions.activate`
  returned, and any `ticket=...` or `secondopinion_session=...` text;
- patient names: every patient's full name and every DICOM patient name stored in a test's database
  (read at the end of each test), and every person name pydicom decoded during the run.

Values shorter than MIN_SECRET_LENGTH or MIN_NAME_LENGTH are not checked, because short words occur
in ordinary log text. Names match case-sensitively as whole words, also with DICOM's "^" written as
a space. The browser tests check the server's log file at the end of each test with `check_lines`.
"""

from __future__ import annotations

import ast
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MIN_SECRET_LENGTH = 8
MIN_NAME_LENGTH = 4
SECRET_NAME = re.compile(r'PASSWORD|PASSWD|SECRET|TOKEN|API_KEY', re.IGNORECASE)
# A sign-in ticket in a URL, or a session cookie in a header, whatever its value.
SECRET_PATTERNS = [re.compile(r'ticket=[A-Za-z0-9_\-]{16,}'), re.compile(r'secondopinion_session=[A-Za-z0-9_\-]{16,}')]
TESTS_DIR = Path(__file__).resolve().parent
SHOWN_LINE_LENGTH = 300


@dataclass
class Finding:
    source: str
    kind: str
    value: str
    line: str

    def describe(self) -> str:
        line = self.line if len(self.line) <= SHOWN_LINE_LENGTH else self.line[:SHOWN_LINE_LENGTH] + '...'
        return f'{self.source}: contains {self.kind} {self.value!r}: {line}'


@dataclass
class Watchlist:
    """The values that no log line may contain, collected while the tests run."""

    secrets: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_secret(self, value: Any) -> None:
        if isinstance(value, bytes):
            value = value.decode('utf-8', errors='replace')
        if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
            with self.lock:
                self.secrets.add(value.strip())

    def add_name(self, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip().strip('^').strip()
        if not text:
            return
        variants = {text, re.sub(r'\s+', ' ', text.replace('^', ' ')).strip()}
        with self.lock:
            self.names.update(variant for variant in variants
                              if len(variant) >= MIN_NAME_LENGTH and any(ch.isalpha() for ch in variant))


def scan(lines: Iterable[str], watch: Watchlist, source: str) -> list[Finding]:
    """Return every line that contains a watched secret, a ticket or cookie, or a patient name."""
    with watch.lock:
        secrets, names = sorted(watch.secrets), sorted(watch.names)
    name_patterns = [(name, re.compile(r'(?<!\w)' + re.escape(name) + r'(?!\w)')) for name in names]
    findings = []
    for line in lines:
        for secret in secrets:
            if secret in line:
                findings.append(Finding(source, 'the secret', secret, line))
        for pattern in SECRET_PATTERNS:
            match = pattern.search(line)
            if match:
                findings.append(Finding(source, 'a session secret', match.group(0), line))
        for name, pattern in name_patterns:
            if pattern.search(line):
                findings.append(Finding(source, 'the patient name', name, line))
    return findings


def secrets_in_sources(folder: Path = TESTS_DIR) -> set[str]:
    """Return the string literals of the test sources that are passwords or other secrets by their name."""
    found: set[str] = set()

    def literal(node: ast.AST | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for path in folder.rglob('*.py'):
        try:
            tree = ast.parse(path.read_text(encoding='utf-8'))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = literal(node.value)
                if value and any(isinstance(t, ast.Name) and SECRET_NAME.search(t.id) for t in targets):
                    found.add(value)
            elif isinstance(node, ast.keyword) and node.arg and SECRET_NAME.search(node.arg):
                value = literal(node.value)
                if value:
                    found.add(value)
            elif isinstance(node, ast.Call) and len(node.args) >= 2:
                # monkeypatch.setenv('SECONDOPINION_SMTP_PASSWORD', '...') and the like
                key, value = literal(node.args[0]), literal(node.args[1])
                if key and value and SECRET_NAME.search(key):
                    found.add(value)
            elif isinstance(node, ast.Dict):
                for key_node, value_node in zip(node.keys, node.values):
                    key, value = literal(key_node), literal(value_node)
                    if key and value and SECRET_NAME.search(key):
                        found.add(value)
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def names_in_sqlite(database: Path, watch: Watchlist) -> None:
    """Add the patient and DICOM patient names stored in an app's SQLite file (the browser tests' server)."""
    if not database.is_file():
        return
    connection = sqlite3.connect(f'file:{database}?mode=ro', uri=True, timeout=5)
    try:
        for query in ("SELECT full_name FROM users WHERE role = 'patient'", 'SELECT patient_name FROM studies'):
            try:
                for (name,) in connection.execute(query):
                    watch.add_name(name)
            except sqlite3.Error:
                continue
    finally:
        connection.close()


def names_in_database(watch: Watchlist) -> None:
    """Add the patient and DICOM patient names stored in the current test's database."""
    from sqlalchemy import select

    from secondopinion import db
    from secondopinion.models import Role, Study, User

    with db.session_scope() as session:
        for name in session.scalars(select(User.full_name).where(User.role == Role.PATIENT)):
            watch.add_name(name)
        for name in session.scalars(select(Study.patient_name)):
            watch.add_name(name)


class CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 (a record that cannot be formatted is kept as its raw message)
            self.lines.append(f'{record.levelname} {record.name}: {record.msg!r} {record.args!r}')


def _spy(owner: Any, name: str, on_result: Callable[[Any, tuple, dict], None]) -> None:
    """Replace owner.name with a function that calls it unchanged and then hands its arguments and result over."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        try:
            on_result(result, args, kwargs)
        except Exception:  # noqa: BLE001, S110 (observing must never change what the code under test does)
            pass
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


class LogGuard:
    """The plugin object registered by tests/conftest.py."""

    def __init__(self) -> None:
        self.watch = Watchlist()
        self.handler = CollectingHandler()
        self.browser_findings: list[Finding] = []

    # --- pytest hooks -------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        self.attach()
        for value in secrets_in_sources():
            self.watch.add_secret(value)
        self._install_spies()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Something (a logging.config call in a test, say) may have removed the handler.
        self.attach()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        findings = scan(self.handler.lines, self.watch, 'log record')
        if not findings:
            return
        report = [f'Log hygiene: {len(findings)} log line(s) contain a password, session secret or patient name:']
        report += ['  ' + finding.describe() for finding in findings[:50]]
        terminal = session.config.pluginmanager.get_plugin('terminalreporter')
        text = '\n'.join(report)
        if terminal is not None:
            terminal.write_line('')
            terminal.write_line(text, red=True)
        else:
            print(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

    # --- helpers ------------------------------------------------------------------------------

    def attach(self) -> None:
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        app_logger = logging.getLogger('secondopinion')
        if app_logger.level == logging.NOTSET or app_logger.level > logging.DEBUG:
            app_logger.setLevel(logging.DEBUG)

    def _install_spies(self) -> None:
        from passlib.context import CryptContext
        from pydicom.valuerep import PersonName

        from secondopinion.services import sessions

        watch = self.watch

        def password(_result: Any, args: tuple, kwargs: dict) -> None:
            watch.add_secret(kwargs['secret'] if 'secret' in kwargs else args[1])

        for method in ('hash', 'verify', 'verify_and_update'):
            _spy(CryptContext, method, password)
        _spy(sessions, 'start', lambda ticket, _args, _kwargs: watch.add_secret(ticket))
        _spy(sessions, 'activate',
             lambda activation, _args, _kwargs: watch.add_secret(activation.token) if activation else None)
        # args[0] is the PersonName itself, complete once __init__ returned.
        _spy(PersonName, '__init__', lambda _result, args, _kwargs: watch.add_name(str(args[0])))

    def collect_names_of_test(self) -> None:
        """Read the names stored by the test that is ending (called from the app_env fixture)."""
        try:
            names_in_database(self.watch)
        except Exception:  # noqa: BLE001, S110 (a test that dropped its tables has no names to give)
            pass

    def check_lines(self, lines: list[str], source: str, *, database: Path | None = None,
                    cookies: Iterable[str] = ()) -> list[Finding]:
        """Check lines of a server log, after adding the names in its database and the browser's cookies."""
        if database is not None:
            names_in_sqlite(database, self.watch)
        for value in cookies:
            self.watch.add_secret(value)
        return scan(lines, self.watch, source)


GUARD = LogGuard()
