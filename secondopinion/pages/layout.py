"""The page frame shared by every role, the signed-in actor, and error display."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from nicegui import Client, ui

from ..api import pwa
from ..db import session_scope
from ..models import Role
from ..services import audit, sessions
from ..services.actors import Actor
from ..i18n import N_, _, error_message, ngettext
from ..services.errors import DomainError
from . import formatting
from .language import account_switcher, apply_language, public_switcher
from .badges import TONES

logger = logging.getLogger(__name__)

HOME_BY_ROLE = {Role.PATIENT: '/exams', Role.DOCTOR: '/doctor', Role.ADMIN: '/admin'}

NAV_BY_ROLE = {
    Role.PATIENT: [(N_('My examinations'), '/exams', 'folder_shared'),
                   (N_('New examination'), '/exams/new', 'add_circle'), (N_('Profile'), '/profile', 'account_circle')],
    Role.DOCTOR: [(N_('Pending examinations'), '/doctor', 'inbox'), (N_('My cases'), '/doctor/cases', 'work_history'),
                  (N_('Profile'), '/profile', 'account_circle')],
    Role.ADMIN: [(N_('Admin panel'), '/admin', 'admin_panel_settings'),
                 (N_('Profile'), '/profile', 'account_circle')],
}


# Quasar's brand colours. Buttons and notifications put white text on each, so each has at least 4.5:1
# contrast with white (tests/pages/test_badges.py). Warnings keep Quasar's yellow, which gets dark text.
# The typeface is Quasar's Roboto, which NiceGUI serves with every page.
THEME_COLORS = {'primary': pwa.THEME_COLOR, 'secondary': '#155e75', 'accent': '#7c3aed', 'positive': TONES['done'],
                'negative': TONES['danger'], 'info': TONES['waiting']}

# Text colour for warnings written on the light page background: 7:1 contrast, where Quasar's orange
# shades reach less than 4.5:1.
THEME_CSS = '''
.text-warning-strong { color: #92400e !important; }
/* A clear ring on the button that keyboard focus is on, where Quasar only lightens it a little: dark
   on the light page, white on the coloured header. Quasar's no-outline class forbids an outline. */
.q-btn:focus-visible { box-shadow: 0 0 0 2px #ffffff, 0 0 0 4px #1f2937; }
.q-header .q-btn:focus-visible { box-shadow: 0 0 0 2px #ffffff; }
'''

NAV_CSS = '''
.nav-narrow { display: none !important; }
.nav-entry:not(.nav-entry-icon) .q-icon { display: none; }
@media (max-width: 599.98px) {
    .nav-wide { display: none !important; }
    .nav-narrow { display: inline-flex !important; margin: 0 !important; }
    /* Quasar's .block utility keeps display: block, so the label is taken out of the flow instead. */
    .nav-entry .q-btn__content > .block { position: absolute; width: 1px; height: 1px; overflow: hidden;
                                          clip: rect(0 0 0 0); white-space: nowrap; }
    .nav-entry .q-icon { display: inline-flex !important; margin: 0 !important; }
    .nav-entry { border-radius: 50%; margin: 0 !important; }
    .brand-name { font-size: 1rem !important; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    .q-header .gap-1 { gap: 0 !important; }
    .q-header { flex-wrap: nowrap; padding-left: 8px !important; padding-right: 8px !important; }
    .q-header > a { min-width: 0; }
}
'''

# Touch targets on phones and other touch screens: every control offers at least 48 x 48 CSS px
# (Material Design's 48 dp), where Quasar's dense buttons, fields, radios and list items are 32 to 40 px
# high. NiceGUI links (ui.link) stand alone on these pages and get the height too, while links inside
# running text are plain <a> elements and keep the line height.
TOUCH_CSS = '''
@media (pointer: coarse), (max-width: 599.98px) {
    .q-btn { min-height: 48px; min-width: 48px; }
    .q-field--dense .q-field__control, .q-field--dense .q-field__marginal { height: 48px; }
    .q-field--auto-height.q-field--dense .q-field__control { height: auto; min-height: 48px; }
    .q-radio, .q-checkbox, .q-toggle, .q-item { min-height: 48px; }
    a.nicegui-link { display: inline-flex; align-items: center; min-height: 48px; min-width: 48px; }
}
'''


# Seconds between the checks an open page makes of its session in the database. These checks notice
# a session ended by another app instance; an end in this instance is noticed within a second.
SESSION_RECHECK_SECONDS = 30
# Ended session ids are remembered this long, for pages that check them once a second.
ENDED_MEMORY_SECONDS = 600

# Script of every signed-in page. It reports clicks and keys to the server at most once a minute, which
# holds off the idle timeout, and leaves the page when the server reports that the session has ended.
ACTIVITY_SCRIPT = """<script>
(() => {
  let last = 0;
  const report = () => {
    const now = Date.now();
    if (now - last < 60000) return;
    last = now;
    fetch('/auth/activity', {method: 'POST', credentials: 'same-origin', keepalive: true})
      .then(response => { if (response.status === 401) window.location.href = '/auth/signed-out?reason=ended'; })
      .catch(() => {});
  };
  for (const name of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
    window.addEventListener(name, report, {passive: true, capture: true});
  }
})();
</script>"""

_ended_sessions: dict[int, float] = {}
_ended_lock = threading.Lock()
# Pages that navigate away for good (see `leave`), whose session watch must not send them elsewhere.
_leaving_clients: weakref.WeakSet[Client] = weakref.WeakSet()
# Pages that already carry the script that reloads them in the browser's time zone (see `browser_zone`).
_zone_checked_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _remember_ended(session_ids: Iterable[int]) -> None:
    """Revocation listener: may run in any thread, so it only records the ids for the page timers."""
    now = time.monotonic()
    with _ended_lock:
        for session_id in session_ids:
            _ended_sessions[session_id] = now
        for session_id, ended_at in list(_ended_sessions.items()):
            if now - ended_at > ENDED_MEMORY_SECONDS:
                del _ended_sessions[session_id]


sessions.add_revocation_listener(_remember_ended)


def session_token() -> str | None:
    """Return the session cookie of the browser that opened this page."""
    request = ui.context.client.request
    return request.cookies.get(sessions.COOKIE_NAME) if request is not None else None


def current_actor() -> Actor | None:
    """Return the signed-in actor of this browser, re-read from the database on every call.

    Also sets the language of the page: the actor's, or the browser's for a visitor (see language.py).
    """
    audit.set_where(page_path())
    actor = sessions.resolve(session_token(), client_address=client_address())
    apply_language(actor)
    return actor


def page_path() -> str | None:
    """Return the path of the page this browser opened, such as /exams/<id>, for the audit log."""
    request = ui.context.client.request
    return request.url.path if request is not None else None


def client_address() -> str | None:
    """Return the IP address of the browser that opened this page, None when it is unknown.

    NOTE: behind a reverse proxy this is the proxy's address unless uvicorn trusts the proxy's
    X-Forwarded-For header (its `forwarded_allow_ips` setting, environment FORWARDED_ALLOW_IPS).
    """
    return ui.context.client.ip or None


def sign_in(actor: Actor, *, method: str = 'password', next_path: str | None = None) -> None:
    """Start a session for the actor whose credentials were checked, and send the browser to take it up.

    The session cookie is set by the HTTP response of `/auth/session`, never over the websocket.
    """
    with session_scope() as session:
        ticket = sessions.start(session, actor.user_id, method=method, client_address=client_address())
    target = f'/auth/session?ticket={ticket}'
    if next_path:
        target += f'&next={quote(next_path)}'
    ui.navigate.to(target)


def sign_out() -> None:
    """End this browser's session on the server at once, then let `/auth/signed-out` remove the cookie."""
    # Mark the page as leaving first. Otherwise its session watch may find the ended session before the
    # browser has left and send it to the sign-in page with the "session ended" notice.
    _leaving_clients.add(ui.context.client)
    sessions.end(session_token())
    ui.navigate.to('/auth/signed-out')


def leave(target: str) -> None:
    """Send the browser to `target` for good, also when this page's session has just ended.

    Without this, the session watch would send the page to the sign-in page instead.
    """
    _leaving_clients.add(ui.context.client)
    ui.navigate.to(target)


def _watch_session(actor: Actor) -> None:
    """Send this page to the sign-in page as soon as its session ends, and stop serving its events."""
    client = ui.context.client
    session_id = actor.session_id
    opened_at = time.monotonic()
    ticks = 0

    def check() -> None:
        nonlocal ticks
        if client in _leaving_clients:
            timer.cancel()
            return
        ticks += 1
        # Only an end announced after this page opened counts: ids of a database replaced since
        # (as between tests) may be reused.
        ended = _ended_sessions.get(session_id, 0.0) >= opened_at
        if not ended and ticks % SESSION_RECHECK_SECONDS == 0:
            ended = not sessions.is_live(session_id)
        if not ended:
            return
        timer.cancel()
        reason = sessions.end_reason(session_id) or 'ended'
        logger.info('page of user %s left because session %s ended (%s)', actor.user_id, session_id, reason)
        ui.navigate.to(f'/auth/signed-out?reason={reason}')
        # Give the browser a moment to receive the navigation, then drop the page and its handlers.
        asyncio.get_running_loop().call_later(1.0, _drop_if_still_connected, client)

    timer = ui.timer(1.0, check)
    ui.add_body_html(ACTIVITY_SCRIPT)


def _drop_if_still_connected(client: Client) -> None:
    """Delete a page whose browser stayed on it after its session ended.

    A page without a connection is left alone: NiceGUI deletes it after the reconnect timeout, and a
    second deletion raises KeyError there.
    """
    if not client.is_deleted and client.has_socket_connection:
        client.delete()


def require_actor(*roles: str) -> Actor | None:
    """Return the actor when signed in with one of the roles; otherwise show the way out and return None."""
    actor = current_actor()
    if actor is None:
        ui.navigate.to('/login')
        return None
    if roles and actor.role not in roles:
        # A page of another role: refused like a missing page, and recorded.
        audit.record_denied(actor, 'page', (page_path() or '')[:64], role=actor.role)
        not_found_page(actor)
        return None
    return actor


def not_found_page(actor: Actor | None, subject: str = N_('Page')) -> None:
    """Build the framed "not found" page and set the HTTP status to 404.

    Pages show it alike for a missing object and for one the actor may not see, so neither the status
    nor the body tells them apart.
    """
    ui.status_code(404)
    with frame(_('Not found'), actor):
        show_not_found(subject)


def show_not_found(subject: str = N_('Page')) -> None:
    """Show "<subject> not found."; `subject` is an English msgid such as "Examination"."""
    with ui.column().classes('w-full items-center q-pa-xl'):
        ui.icon('search_off', size='3rem').classes('text-grey-6')
        ui.label(_('{subject} not found.', subject=_(subject))).classes('text-h6').mark('not-found')
        ui.link(_('Back to the start page'), '/')


def notify_error(error: Exception) -> None:
    """Show a domain error's message, or log any other error and show a generic message."""
    if isinstance(error, DomainError):
        ui.notify(error_message(error), type='negative', multi_line=True, timeout=8000, position='top')
        return
    logger.exception('unexpected error in a page handler')
    ui.notify(_('Something went wrong. Please try again, and contact the practice if it happens again.'),
              type='negative', position='top')


def show_form_error(message: ui.label, fields: dict[str, ui.input], error: DomainError) -> None:
    """Show a domain error below a form and, for a field's ValidationError, on that field too."""
    message.text = error_message(error)
    field = fields.get(getattr(error, 'field', None) or '')
    if field is not None:
        # Item assignment, not the props string, because messages contain quotes.
        field.props['error'] = True
        field.props['error-message'] = error_message(error)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return the count with the noun in singular or plural form, e.g. "1 image", "3 images".

    NOTE: English only. Translated pages call i18n.ngettext with the whole phrase, such as
    ngettext('{count} image', '{count} images', n), because other languages inflect differently.
    """
    return f'{count} {singular if count == 1 else (plural_form or singular + "s")}'


def format_waiting(since: datetime | None, now: datetime) -> str:
    """Return the time from `since` to `now` in minutes, hours or days, such as "3 h 5 min"."""
    if since is None:
        return '-'
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return _('{minutes} min', minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _('{hours} h {minutes} min', hours=hours, minutes=minutes)
    return ngettext('{count} day {hours} h', '{count} days {hours} h', hours // 24, hours=hours % 24)


def browser_zone() -> ZoneInfo:
    """Return the time zone that this page's browser sent in the `tz` cookie, or UTC when it is missing or unknown.

    The cookie is written by the script in the page's head, after the request was sent. So while the page
    is first rendered, this also adds a script that reloads the page once when the browser's zone differs
    from the returned one, as on the first page a browser opens.
    """
    client = ui.context.client
    request = client.request
    name = request.cookies.get(formatting.TIME_ZONE_COOKIE) if request is not None else None
    zone = formatting.parse_zone(name)
    if not client.has_socket_connection and client not in _zone_checked_clients:
        _zone_checked_clients.add(client)
        ui.add_body_html(formatting.zone_reload_script(zone.key))
    return zone


def format_time(value: datetime | None, *, with_zone: bool = True) -> str:
    """Format a moment in this page's browser time zone, e.g. "5 Dec 2026, 14:05 (Europe/Zurich)"."""
    return formatting.format_time(value, browser_zone(), with_zone=with_zone)


def apply_theme() -> None:
    ui.colors(**THEME_COLORS)
    ui.add_head_html(formatting.TIME_ZONE_SCRIPT)
    # The manifest link, theme colour and home-screen icon, and the service worker's registration.
    ui.add_head_html(pwa.HEAD_HTML)
    ui.add_body_html(pwa.REGISTRATION_SCRIPT)
    ui.add_css(f'body {{ background-color: {pwa.BACKGROUND_COLOR} !important; }}' + THEME_CSS + NAV_CSS + TOUCH_CSS)


@contextmanager
def frame(title: str, actor: Actor | None = None) -> Iterator[None]:
    """Lay out the header with navigation for the actor's role and a centred content column.

    `title` is already translated. The header offers the language choice: stored in the account for a
    signed-in actor, in a cookie for a visitor.
    """
    apply_language(actor)
    apply_theme()
    ui.page_title(f'{title} | SecondOpinion')
    with ui.header().classes('items-center justify-between q-px-md q-py-xs bg-primary'):
        with ui.link(target=HOME_BY_ROLE.get(actor.role, '/') if actor else '/').classes(
                'row items-center no-wrap text-white no-underline'):
            ui.image('/assets/logo.png').classes('w-8 h-8 rounded')
            ui.label('SecondOpinion').classes('text-h6 q-ml-sm brand-name')
        with ui.row().classes('items-center gap-1 no-wrap'):
            if actor:
                # One button per entry: wide screens show its label, phones (below 600 px) only its icon,
                # with the label as its accessible name, so the header stays one row high (NAV_CSS).
                for msgid, target, icon in NAV_BY_ROLE.get(actor.role, []):
                    _nav_button(_(msgid), icon, lambda t=target: ui.navigate.to(t))
                account_switcher(actor)
                _nav_button(_('Sign out'), 'logout', _sign_out_clicked).classes('nav-entry-icon').mark('sign-out')
            else:
                public_switcher()
                ui.button(_('Sign in'), on_click=lambda: ui.navigate.to('/login')).props('flat color=white dense')
                ui.button(_('Register'), on_click=lambda: ui.navigate.to('/register')) \
                    .props('flat color=white dense')
    if actor is not None and actor.session_id is not None:
        _watch_session(actor)
    with ui.column().classes('w-full max-w-5xl mx-auto q-pa-md gap-4'):
        if actor is not None and actor.role == Role.PATIENT:
            from .account import verification_banner
            verification_banner(actor)
        yield


def _nav_button(label: str, icon: str, on_click: Callable[[], Any]) -> ui.button:
    # The label goes to Quasar's label prop, which renders it in its own span that NAV_CSS hides on phones.
    button = ui.button(icon=icon, on_click=on_click).props('flat dense color=white').classes('nav-entry')
    button.props['label'] = label
    button.props['aria-label'] = label
    return button


def _sign_out_clicked() -> None:
    sign_out()
