"""Command line: serve the app (default), create the first admin account or inspect a study without storing it."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from pathlib import Path

import pydantic

from . import db, logs
from .config import get_settings
from .services import accounts, intake
from .services.errors import DomainError


USAGE = '''usage: main.py [create-admin --email EMAIL [--name NAME] [--password-stdin] [--totp-secret-stdin]]
       main.py inspect-study PATH [PATH ...]

Without arguments, serve SecondOpinion with the settings from SECONDOPINION_* environment variables
(see .env.example). With create-admin, create an admin account and exit. With inspect-study, run the
upload checks on DICOM files, CD folders or .zip files, print what an upload would store as JSON,
and store nothing.'''


def create_admin_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='main.py create-admin', description='Create an admin account.')
    parser.add_argument('--email', required=True, help='email address the admin signs in with')
    parser.add_argument('--name', default='Administrator', help='full name shown in the audit log')
    parser.add_argument('--password-stdin', action='store_true',
                        help='read the password from the first line of standard input instead of a prompt')
    parser.add_argument('--totp-secret-stdin', action='store_true',
                        help='for scripted setups: read a base32 TOTP secret from the next line of standard input '
                             'and turn on two-step sign-in with it. Without it, the admin sets up two-step sign-in '
                             'at the first sign-in, with the QR code shown there')
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip('\n')
    else:
        password = getpass.getpass('Password: ')
        if getpass.getpass('Repeat the password: ') != password:
            print('The passwords differ. Nothing was created.', file=sys.stderr)
            return 1
    # The secret comes on standard input, never as an argument, which `ps` and the shell history would show.
    totp_secret = sys.stdin.readline().strip() if args.totp_secret_stdin else None
    get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    try:
        info = accounts.create_admin(full_name=args.name, email=args.email, password=password,
                                     totp_secret=totp_secret)
    except DomainError as error:
        print(f'Error: {error}', file=sys.stderr)
        return 1
    if totp_secret is None:
        print(f'Admin account {info.email} created. At the first sign-in, set up two-step sign-in with an '
              'authenticator app: the sign-in page shows the QR code.')
    else:
        print(f'Admin account {info.email} created, with two-step sign-in on.')
    return 0


def inspect_study_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog='main.py inspect-study',
        description='Run the upload checks on DICOM files, CD folders or .zip files and print the studies, '
                    'series and rejected files as JSON. Nothing is stored and no database is needed. '
                    'Exit status: 0 when an upload would be accepted, 1 when a file is rejected or no '
                    'DICOM image was found, 2 for a usage error.')
    parser.add_argument('paths', nargs='+', metavar='PATH', type=Path,
                        help='a DICOM file, a folder (read recursively, with its DICOMDIR when present) or a .zip')
    args = parser.parse_args(argv)
    missing = [path for path in args.paths if not path.exists()]
    for path in missing:
        print(f'main.py inspect-study: {path} not found. Pass existing files or folders.', file=sys.stderr)
    if missing:
        return 2
    inspection = intake.inspect_paths(args.paths, get_settings())
    json.dump(inspection.to_json(), sys.stdout, indent=2)
    sys.stdout.write('\n')
    return 0 if inspection.usable else 1


def check_settings() -> None:
    """Exit with one line per invalid setting. Values are never printed, because they may be secrets."""
    try:
        get_settings()
    except pydantic.ValidationError as error:
        for problem in error.errors(include_input=False, include_url=False):
            setting = '_'.join(str(part) for part in problem['loc']).upper()
            prefix = f'SECONDOPINION_{setting}: ' if setting else ''
            message = problem['msg'].removeprefix('Value error, ')
            for line in message.splitlines():
                print(f'Configuration error: {prefix}{line}', file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """Entry point of the `secondopinion` console script."""
    logs.configure()
    # APScheduler logs every job run at INFO; our own job logs what it delivered.
    logging.getLogger('apscheduler').setLevel(logging.WARNING)
    # NiceGUI's User fixture runs main.py inside pytest, with pytest's own arguments in sys.argv.
    arguments = [] if os.environ.get('NICEGUI_USER_SIMULATION') else sys.argv[1:]
    check_settings()
    logs.configure(get_settings().log_format)
    if arguments and arguments[0] == 'create-admin':
        raise SystemExit(create_admin_command(arguments[1:]))
    if arguments and arguments[0] == 'inspect-study':
        raise SystemExit(inspect_study_command(arguments[1:]))
    if arguments:
        help_requested = arguments[0] in {'-h', '--help'}
        print(USAGE, file=sys.stdout if help_requested else sys.stderr)
        raise SystemExit(0 if help_requested else 2)
    share_nicegui_storage()
    from .server import run
    run()


def share_nicegui_storage() -> None:
    """Point NiceGUI's per-user storage at Redis when a Redis URL is set, so that every instance reads and writes the same data.

    NiceGUI reads these variables when it is first imported, which is why this runs before the server
    module is loaded. Variables already set by the operator win.
    """
    settings = get_settings()
    if settings.redis_url:
        os.environ.setdefault('NICEGUI_REDIS_URL', settings.redis_url)
        os.environ.setdefault('NICEGUI_REDIS_KEY_PREFIX', f'{settings.redis_key_prefix}:nicegui:')
