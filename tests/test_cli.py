"""The command line: creating the first admin and asking for help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest

from secondopinion.services import accounts, totp
from secondopinion.services.errors import ValidationError

ROOT = Path(__file__).resolve().parent.parent


def _run(*arguments: str, stdin: str = '') -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != 'PYTEST_CURRENT_TEST'}
    return subprocess.run([sys.executable, 'main.py', *arguments], cwd=ROOT, env=environment, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_create_admin_then_sign_in():
    result = _run('create-admin', '--email', 'Root@Example.org', '--name', 'Ada Admin', '--password-stdin',
                  stdin='a long admin password\n')
    assert result.returncode == 0, result.stderr
    assert 'Admin account root@example.org created.' in result.stdout
    # The password alone starts no session: the new admin sets up two-step sign-in first.
    with pytest.raises(totp.SecondFactorRequired) as asked:
        accounts.authenticate(email='root@example.org', password='a long admin password')
    assert asked.value.enroll
    enrollment = totp.begin_sign_in_enrollment(asked.value.pending_id)
    actor = totp.finish_sign_in(asked.value.pending_id, pyotp.TOTP(enrollment.secret).now())
    assert actor.role == 'admin'


def test_create_admin_with_totp_secret_from_stdin():
    secret = pyotp.random_base32()
    result = _run('create-admin', '--email', 'root@example.org', '--password-stdin', '--totp-secret-stdin',
                  stdin=f'a long admin password\n{secret}\n')
    assert result.returncode == 0, result.stderr
    assert 'with two-step sign-in on' in result.stdout
    assert secret not in result.stdout
    with pytest.raises(totp.SecondFactorRequired) as asked:
        accounts.authenticate(email='root@example.org', password='a long admin password')
    assert not asked.value.enroll
    actor = totp.finish_sign_in(asked.value.pending_id, pyotp.TOTP(secret).now())
    assert actor.role == 'admin'


def test_create_admin_bad_totp_secret_rejected():
    result = _run('create-admin', '--email', 'root@example.org', '--password-stdin', '--totp-secret-stdin',
                  stdin='a long admin password\nnot base32!\n')
    assert result.returncode == 1
    assert 'The TOTP secret must be base32' in result.stderr
    with pytest.raises(ValidationError):
        accounts.authenticate(email='root@example.org', password='a long admin password')


def test_create_admin_short_password_rejected():
    result = _run('create-admin', '--email', 'root@example.org', '--password-stdin', stdin='short\n')
    assert result.returncode == 1
    assert 'Password must have at least 12 characters.' in result.stderr
    assert accounts.get_actor(1) is None


def test_create_admin_twice_rejected():
    first = _run('create-admin', '--email', 'root@example.org', '--password-stdin', stdin='a long admin password\n')
    second = _run('create-admin', '--email', 'root@example.org', '--password-stdin', stdin='another long password\n')
    assert first.returncode == 0
    assert second.returncode == 1
    assert 'already exists' in second.stderr


def test_help_prints_usage():
    result = _run('--help')
    assert result.returncode == 0
    assert 'create-admin' in result.stdout


def test_unknown_argument_rejected():
    result = _run('serve-everything')
    assert result.returncode == 2
    assert 'usage:' in result.stderr


def test_invalid_settings_exit_without_values(monkeypatch):
    """A refused configuration names the setting and the rule, and never prints the values, which may be secrets."""
    monkeypatch.setenv('SECONDOPINION_STRIPE_SECRET_KEY', 'sk_test_do_not_print_me')
    monkeypatch.setenv('SECONDOPINION_PORT', 'x')
    monkeypatch.delenv('SECONDOPINION_STRIPE_WEBHOOK_SECRET', raising=False)
    result = _run('--help')
    assert result.returncode == 2
    assert 'do_not_print_me' not in result.stdout + result.stderr
    assert 'Traceback' not in result.stderr
    assert 'SECONDOPINION_PORT: Input should be a valid integer' in result.stderr


def test_redis_url_moves_nicegui_storage_to_redis(monkeypatch):
    from secondopinion.cli import share_nicegui_storage
    from secondopinion.config import reset_settings

    monkeypatch.delenv('NICEGUI_REDIS_URL', raising=False)
    monkeypatch.delenv('NICEGUI_REDIS_KEY_PREFIX', raising=False)
    share_nicegui_storage()
    assert 'NICEGUI_REDIS_URL' not in os.environ

    monkeypatch.setenv('SECONDOPINION_REDIS_URL', 'redis://127.0.0.1:6390/2')
    monkeypatch.setenv('SECONDOPINION_REDIS_KEY_PREFIX', 'staging')
    reset_settings()
    share_nicegui_storage()
    assert os.environ['NICEGUI_REDIS_URL'] == 'redis://127.0.0.1:6390/2'
    assert os.environ['NICEGUI_REDIS_KEY_PREFIX'] == 'staging:nicegui:'


def test_operator_nicegui_redis_settings_win(monkeypatch):
    from secondopinion.cli import share_nicegui_storage
    from secondopinion.config import reset_settings

    monkeypatch.setenv('NICEGUI_REDIS_URL', 'redis://127.0.0.1:6391/0')
    monkeypatch.setenv('NICEGUI_REDIS_KEY_PREFIX', 'own:')
    monkeypatch.setenv('SECONDOPINION_REDIS_URL', 'redis://127.0.0.1:6390/2')
    reset_settings()
    share_nicegui_storage()
    assert os.environ['NICEGUI_REDIS_URL'] == 'redis://127.0.0.1:6391/0'
    assert os.environ['NICEGUI_REDIS_KEY_PREFIX'] == 'own:'
