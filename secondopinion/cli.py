"""Command line: serve the app (default) or create the first admin account."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from . import db
from .config import get_settings
from .services import accounts
from .services.errors import DomainError


USAGE = '''usage: main.py [create-admin --email EMAIL [--name NAME] [--password-stdin]]

Without arguments, serve SecondOpinion with the settings from SECONDOPINION_* environment variables
(see .env.example). With create-admin, create an admin account and exit.'''


def create_admin_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='main.py create-admin', description='Create an admin account.')
    parser.add_argument('--email', required=True, help='email address the admin signs in with')
    parser.add_argument('--name', default='Administrator', help='full name shown in the audit log')
    parser.add_argument('--password-stdin', action='store_true',
                        help='read the password from the first line of standard input instead of a prompt')
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip('\n')
    else:
        password = getpass.getpass('Password: ')
        if getpass.getpass('Repeat the password: ') != password:
            print('The passwords differ. Nothing was created.', file=sys.stderr)
            return 1
    get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    try:
        info = accounts.create_admin(full_name=args.name, email=args.email, password=password)
    except DomainError as error:
        print(f'Error: {error}', file=sys.stderr)
        return 1
    print(f'Admin account {info.email} created.')
    return 0


def main() -> None:
    """Entry point of the `secondopinion` console script."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    # APScheduler logs every job run at INFO; our own job logs what it delivered.
    logging.getLogger('apscheduler').setLevel(logging.WARNING)
    # NiceGUI's User fixture runs main.py inside pytest, with pytest's own arguments in sys.argv.
    arguments = [] if os.environ.get('NICEGUI_USER_SIMULATION') else sys.argv[1:]
    if arguments and arguments[0] == 'create-admin':
        raise SystemExit(create_admin_command(arguments[1:]))
    if arguments:
        help_requested = arguments[0] in {'-h', '--help'}
        print(USAGE, file=sys.stdout if help_requested else sys.stderr)
        raise SystemExit(0 if help_requested else 2)
    from .server import run
    run()
