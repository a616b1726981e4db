"""The language of each page: chosen, remembered per browser page, and switched.

A page's language is the signed-in user's language, else the `lang` cookie that the switcher on
public pages sets, else the first supported language of the browser's Accept-Language header,
else English. `apply_language` fixes it when the page is built. It sets the i18n context variable
for the build and remembers the language for the page's later event handlers and timers, which
run in other tasks.
"""

from __future__ import annotations

import copy
import logging
import weakref
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from nicegui import Client, app, ui

from .. import i18n
from ..api.auth import safe_next, secure_cookies
from ..i18n import _
from ..services import profile
from ..services.actors import Actor

logger = logging.getLogger(__name__)

LANGUAGE_COOKIE = 'lang'
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600

_client_languages: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()


def browser_language(request: Request | None) -> str:
    """Return the language that the browser chose with the `lang` cookie or its Accept-Language header."""
    if request is None:
        return i18n.DEFAULT_LANGUAGE
    cookie = request.cookies.get(LANGUAGE_COOKIE)
    if i18n.is_supported(cookie):
        return cookie  # type: ignore[return-value]
    return i18n.negotiate(request.headers.get('accept-language')) or i18n.DEFAULT_LANGUAGE


def apply_language(actor: Actor | None) -> str:
    """Fix the language of the page being built or handled, for the actor or this browser, and return it."""
    client = ui.context.client
    language = actor.language if actor is not None and i18n.is_supported(actor.language) \
        else browser_language(client.request)
    i18n.set_language(language)
    if _client_languages.get(client) != language:
        _client_languages[client] = language
        # The page object is shared by every client of a route, so this client gets its own copy, whose
        # language NiceGUI writes into <html lang> and uses for Quasar's built-in texts.
        client.page = copy.copy(client.page)
        client.page.language = i18n.HTML_LANGUAGES[language]
    return language


def _language_of_current_client() -> str | None:
    """Return the language of the page whose handler runs now, or None outside a page."""
    try:
        client = ui.context.client
    except RuntimeError:
        return None
    language = _client_languages.get(client)
    if language is None:
        try:
            request = client.request
        except RuntimeError:  # a client that no request opened, such as NiceGUI's auto-index page outside a page
            return None
        language = browser_language(request)
    return language


i18n.set_fallback_resolver(_language_of_current_client)


def public_switcher() -> None:
    """Add the language choice for visitors who are not signed in: a link per other language, kept in a cookie."""
    current = i18n.current_language()
    request = ui.context.client.request
    current_path = request.url.path if request is not None else '/'
    with ui.row().classes('items-center gap-1 no-wrap').mark('language-switcher'):
        ui.icon('language', color='white').props('aria-hidden=true').classes('nav-wide')
        for code, name in i18n.LANGUAGES.items():
            if code == current:
                continue
            # Phones (the nav-narrow class of the header) get the short code, so the header stays one row high.
            with ui.link(target=f'/language/{code}?next={quote(current_path)}').classes('text-white text-body2 q-mx-xs') \
                    .props(f'lang={code} hreflang={code} aria-label="{name}"').mark(f'language-{code}'):
                ui.label(name).classes('nav-wide')
                ui.label(code.upper()).classes('nav-narrow')


def account_switcher(actor: Actor) -> None:
    """Add the signed-in user's language menu to the header. A choice is stored in the account.

    Phones do not get it, so that their header stays one row high; the profile page offers the choice there.
    """
    def choose(code: str) -> None:
        try:
            profile.set_language(actor=actor, language=code)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            from .layout import notify_error
            notify_error(error)
            return
        ui.navigate.reload()

    with ui.button(icon='language').props(f'flat round dense color=white aria-label="{_("Language")}"') \
            .classes('q-mx-xs nav-wide').mark('language-menu'):
        ui.tooltip(_('Language'))
        with ui.menu():
            for code, name in i18n.LANGUAGES.items():
                ui.menu_item(name, on_click=lambda code=code: choose(code)).props(f'lang={code}') \
                    .mark(f'language-{code}')


def language_select(value: str) -> ui.select:
    """Return a choice among the supported languages, each named in its own language."""
    return ui.select(dict(i18n.LANGUAGES), label=_('Language'), value=value).classes('w-full').mark('language')


def register_routes() -> None:
    @app.get('/language/{code}', include_in_schema=False)
    def choose_language(request: Request, code: str, next: str = '') -> Response:  # noqa: A002 (query name)
        """Remember a visitor's language in the `lang` cookie and go back to the page `next`."""
        if not i18n.is_supported(code):
            choices = ', '.join(i18n.LANGUAGES)
            return PlainTextResponse(f'Language "{code[:16]}" is not supported: choose one of {choices}.',
                                     status_code=400)
        response = RedirectResponse(safe_next(next) or '/', status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, code, max_age=LANGUAGE_COOKIE_MAX_AGE, samesite='lax', path='/',
                            secure=secure_cookies(request))
        response.headers['Cache-Control'] = 'no-store'
        return response
