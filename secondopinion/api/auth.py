"""HTTP routes of the session cookie: trading a sign-in ticket for it, activity reports and sign-out."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from nicegui import app

from ..config import get_settings
from ..services import sessions
from .security import is_https

logger = logging.getLogger(__name__)

HOME_BY_ROLE = {'patient': '/exams', 'doctor': '/doctor', 'admin': '/admin'}
# The key under which NiceGUI keeps its browser id in the session cookie (app.storage.browser['id']).
BROWSER_ID_KEY = 'id'


def safe_next(target: str | None) -> str | None:
    """Return `target` when it is a path on this site, None otherwise (no open redirects)."""
    if not target or not target.startswith('/') or target.startswith('//') or '\\' in target:
        return None
    if target.startswith('/auth/'):
        return None
    return target


def secure_cookies(request: Request) -> bool:
    settings = get_settings()
    return settings.cookies_secure or is_https(request.scope, request.headers, settings)


def register_auth_routes() -> None:
    @app.get('/auth/session', include_in_schema=False)
    def take_ticket(request: Request, ticket: str = '', next: str = '') -> Response:  # noqa: A002 (query name)
        client = request.client.host if request.client else None
        activation = sessions.activate(ticket, client_address=client,
                                       user_agent=request.headers.get('user-agent'))
        if activation is None:
            return RedirectResponse('/login?ticket=expired', status_code=303)
        # A new NiceGUI browser id, so that nothing kept for the browser before sign-in carries over.
        request.session[BROWSER_ID_KEY] = str(uuid.uuid4())
        target = safe_next(next) or HOME_BY_ROLE.get(activation.role, '/')
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(sessions.COOKIE_NAME, activation.token, httponly=True, samesite='lax', path='/',
                            secure=secure_cookies(request),
                            max_age=get_settings().session_max_hours * 3600)
        response.headers['Cache-Control'] = 'no-store'
        return response

    @app.post('/auth/activity', include_in_schema=False)
    def activity(request: Request) -> Response:
        """Mark the session active; the page script calls this at most once a minute while the user clicks or types."""
        actor = sessions.resolve(request.cookies.get(sessions.COOKIE_NAME))
        return Response(status_code=204 if actor else 401, headers={'Cache-Control': 'no-store'})

    @app.get('/auth/signed-out', include_in_schema=False)
    def signed_out(request: Request, reason: str = '') -> Response:
        """Remove the cookie of a session that has ended, and show the sign-in page.

        The session itself is ended by the page's sign-out button (or by the server), never by this
        GET, so a link on another site cannot sign anyone out. After an account deletion (reason
        "deleted") the browser goes to the page that confirms it instead.
        """
        token = request.cookies.get(sessions.COOKIE_NAME)
        actor = sessions.resolve(token, touch=False)
        if actor is not None:
            return RedirectResponse(HOME_BY_ROLE.get(actor.role, '/'), status_code=303)
        request.session[BROWSER_ID_KEY] = str(uuid.uuid4())
        if reason == 'deleted':
            target = '/account-deleted'
        elif reason:
            # The sign-in page explains the known reasons and shows a general notice for any other.
            target = f'/login?ended={quote(reason)}'
        else:
            target = '/login'
        response = RedirectResponse(target, status_code=303)
        if token:
            response.delete_cookie(sessions.COOKIE_NAME, path='/', httponly=True, samesite='lax',
                                   secure=secure_cookies(request))
        response.headers['Cache-Control'] = 'no-store'
        return response
