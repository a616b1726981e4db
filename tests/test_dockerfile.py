"""The Dockerfile, which cannot be built on the test machines, checked by reading it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from secondopinion.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / 'Dockerfile'


def _instructions() -> list[tuple[str, str]]:
    """Return (instruction, arguments) pairs, with continued lines joined and comments left out."""
    text = re.sub(r'\\\n', ' ', DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            keyword, _, arguments = line.partition(' ')
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def _all(keyword: str) -> list[str]:
    return [arguments for name, arguments in _instructions() if name == keyword]


def test_every_copied_path_exists():
    copied = []
    for arguments in _all('COPY'):
        parts = [part for part in shlex.split(arguments) if not part.startswith('--')]
        copied.extend(parts[:-1])
    assert copied, 'the Dockerfile copies nothing'
    missing = [path for path in copied if not (ROOT / path).exists()]
    assert missing == []


def test_copies_everything_the_app_reads_at_run_time():
    copied = {part.rstrip('/') for arguments in _all('COPY') for part in shlex.split(arguments)[:-1]}
    for needed in ('pyproject.toml', 'secondopinion', 'main.py', 'alembic.ini', 'migrations', 'assets'):
        assert needed in copied, needed


def test_runs_as_a_user_other_than_root():
    users = _all('USER')
    assert users and users[-1] not in {'root', '0'}


def test_command_matches_the_readme():
    command = ' '.join(shlex.split(_all('CMD')[-1].strip('[]').replace(',', ' ')))
    assert command == 'python main.py'
    assert 'python main.py' in (ROOT / 'README.md').read_text()


def test_health_check_asks_healthz_on_the_served_port():
    env = ' '.join(_all('ENV'))
    port = re.search(r'SECONDOPINION_PORT=(\d+)', env)
    assert port is not None
    assert port.group(1) in _all('EXPOSE')[-1].split()
    health = _all('HEALTHCHECK')[-1]
    assert f'127.0.0.1:{port.group(1)}/healthz' in health


def test_configuration_only_by_known_settings():
    """Every SECONDOPINION_ variable the image sets is a real setting, so a typo cannot go unnoticed."""
    names = set(re.findall(r'SECONDOPINION_([A-Z_]+)=', ' '.join(_all('ENV'))))
    assert names
    assert {name.lower() for name in names} <= set(Settings.model_fields)
