"""The page frame shared by every role, the signed-in actor, and error display."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from nicegui import app, ui

from ..models import Role
from ..services import accounts
from ..services.actors import Actor
from ..services.errors import DomainError

logger = logging.getLogger(__name__)

HOME_BY_ROLE = {Role.PATIENT: '/exams', Role.DOCTOR: '/doctor', Role.ADMIN: '/admin'}

STATUS_COLORS = {
    'draft': 'grey-7', 'awaiting_payment': 'orange-8', 'pending': 'blue-7', 'under_review': 'purple-7',
    'reported': 'teal-7', 'completed': 'green-8', 'cancelled': 'red-7',
}

NAV_BY_ROLE = {
    Role.PATIENT: [('My examinations', '/exams', 'folder_shared'), ('New examination', '/exams/new', 'add_circle'),
                   ('Profile', '/profile', 'account_circle')],
    Role.DOCTOR: [('Pending examinations', '/doctor', 'inbox'), ('My cases', '/doctor/cases', 'work_history')],
    Role.ADMIN: [('Admin panel', '/admin', 'admin_panel_settings')],
}


NAV_CSS = '''
.nav-narrow { display: none !important; }
@media (max-width: 599.98px) {
    .nav-wide { display: none !important; }
    .nav-narrow { display: inline-flex !important; }
    .brand-name { font-size: 1.05rem !important; }
}
'''


def current_actor() -> Actor | None:
    """Return the signed-in actor of this browser, re-read from the database on every call."""
    user_id = app.storage.user.get('user_id')
    actor = accounts.get_actor(user_id)
    if actor is None and user_id:
        app.storage.user.clear()
    return actor


def client_address() -> str | None:
    """Return the IP address of the browser that opened this page, None when it is unknown.

    NOTE: behind a reverse proxy this is the proxy's address unless uvicorn trusts the proxy's
    X-Forwarded-For header (its `forwarded_allow_ips` setting, environment FORWARDED_ALLOW_IPS).
    """
    return ui.context.client.ip or None


def sign_in(actor: Actor) -> None:
    app.storage.user.clear()
    app.storage.user['user_id'] = actor.user_id


def sign_out() -> None:
    app.storage.user.clear()


def require_actor(*roles: str) -> Actor | None:
    """Return the actor when signed in with one of the roles; otherwise show the way out and return None."""
    actor = current_actor()
    if actor is None:
        ui.navigate.to('/login')
        return None
    if roles and actor.role not in roles:
        with frame('Not found', actor):
            show_not_found()
        return None
    return actor


def show_not_found(subject: str = 'Page') -> None:
    with ui.column().classes('w-full items-center q-pa-xl'):
        ui.icon('search_off', size='3rem').classes('text-grey-6')
        ui.label(f'{subject} not found.').classes('text-h6').mark('not-found')
        ui.link('Back to the start page', '/')


def notify_error(error: Exception) -> None:
    """Show a domain error's message, or log any other error and show a generic message."""
    if isinstance(error, DomainError):
        ui.notify(str(error), type='negative', multi_line=True, timeout=8000, position='top')
        return
    logger.exception('unexpected error in a page handler')
    ui.notify('Something went wrong. Please try again, and contact the practice if it happens again.',
              type='negative', position='top')


def status_badge(status: str, label: str) -> ui.badge:
    return ui.badge(label, color=STATUS_COLORS.get(status, 'grey-7')).classes('text-body2 q-px-sm')


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return the count with the noun in singular or plural form, e.g. "1 image", "3 images"."""
    return f'{count} {singular if count == 1 else (plural_form or singular + "s")}'


def format_time(value: datetime | None) -> str:
    if value is None:
        return '-'
    return value.strftime('%Y-%m-%d %H:%M UTC')


def apply_theme() -> None:
    ui.colors(primary='#0f766e', secondary='#155e75', accent='#7c3aed', positive='#15803d')
    ui.add_head_html('<meta name="theme-color" content="#0f766e">')
    ui.query('body').style('background-color: #f5f7f8')
    ui.add_css(NAV_CSS)


@contextmanager
def frame(title: str, actor: Actor | None = None) -> Iterator[None]:
    """Lay out the header with navigation for the actor's role and a centred content column."""
    apply_theme()
    ui.page_title(f'{title} | SecondOpinion')
    with ui.header().classes('items-center justify-between q-px-md q-py-xs bg-primary'):
        with ui.link(target=HOME_BY_ROLE.get(actor.role, '/') if actor else '/').classes(
                'row items-center no-wrap text-white no-underline'):
            ui.image('/assets/logo.png').classes('w-8 h-8 rounded')
            ui.label('SecondOpinion').classes('text-h6 q-ml-sm brand-name')
        with ui.row().classes('items-center gap-1 no-wrap'):
            if actor:
                entries = NAV_BY_ROLE.get(actor.role, [])
                # Wide screens get labelled buttons; phones (below 600 px) get icons with accessible
                # names, so the header stays one row high.
                for label, target, icon in entries:
                    ui.button(label, on_click=lambda t=target: ui.navigate.to(t)) \
                        .props('flat color=white dense').classes('nav-wide')
                    ui.button(icon=icon, on_click=lambda t=target: ui.navigate.to(t)) \
                        .props(f'flat round dense color=white aria-label="{label}"').classes('nav-narrow q-mx-xs') \
                        .tooltip(label)
                ui.button('Sign out', on_click=_sign_out_clicked).props('flat color=white dense icon=logout') \
                    .classes('nav-wide').mark('sign-out')
                ui.button(icon='logout', on_click=_sign_out_clicked) \
                    .props('flat round dense color=white aria-label="Sign out"').classes('nav-narrow q-mx-xs') \
                    .tooltip('Sign out')
            else:
                ui.button('Sign in', on_click=lambda: ui.navigate.to('/login')).props('flat color=white dense')
                ui.button('Register', on_click=lambda: ui.navigate.to('/register')).props('flat color=white dense')
    with ui.column().classes('w-full max-w-5xl mx-auto q-pa-md gap-4'):
        yield


def _sign_out_clicked() -> None:
    sign_out()
    ui.navigate.to('/login')
