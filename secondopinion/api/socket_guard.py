"""Binding each page's websocket to the browser session that opened the page.

NiceGUI routes a websocket message to a page by the client id inside the message, and the page's
event handlers then act as the page's signed-in user. Two checks close that gap:

- a socket may join a page only with the same session cookie as the request that opened the page
  (a page opened without one, like the sign-in page, takes any socket);
- an event, JavaScript result or log message is accepted only from a socket that joined that page.

Both wrap NiceGUI's own handlers, which keep doing their own checks.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from nicegui import Client, core

from ..services import sessions

logger = logging.getLogger(__name__)

GUARDED_MESSAGES = ('event', 'javascript_response', 'log')
NAMESPACE = '/'


def cookie_from_environ(environ: dict[str, Any], name: str) -> str | None:
    """Return one cookie of the socket's opening request, None when it is missing or unreadable."""
    header = environ.get('HTTP_COOKIE', '')
    if not header:
        return None
    try:
        cookies = SimpleCookie(header)
    except CookieError:
        return None
    morsel = cookies.get(name)
    return morsel.value if morsel is not None else None


def socket_may_join(client: Client, environ: dict[str, Any] | None) -> bool:
    """Tell whether a socket opened with `environ` may join the page of `client`."""
    if environ is None:
        return True  # NiceGUI's simulated test user, which has no socket
    page_token = client.request.cookies.get(sessions.COOKIE_NAME) if client.request is not None else None
    if page_token is None:
        return True
    socket_token = cookie_from_environ(environ, sessions.COOKIE_NAME) or ''
    return hmac.compare_digest(page_token, socket_token)


def install_socket_guard() -> None:
    """Wrap NiceGUI's handshake check and message handlers, once per process."""
    if getattr(Client, '_secondopinion_guarded', False):
        return
    accept_handshake = Client.accept_handshake

    def guarded_accept(self: Client, socket_id: str, tab_id: str, environ: dict[str, Any] | None) -> bool:
        # Checked before NiceGUI's own check, which pins the tab id of the first socket it accepts.
        if not socket_may_join(self, environ):
            logger.warning('socket %s rejected for page %s: it lacks the session of the page', socket_id, self.id)
            return False
        return accept_handshake(self, socket_id, tab_id, environ)

    Client.accept_handshake = guarded_accept  # type: ignore[method-assign]
    handlers = core.sio.handlers[NAMESPACE]
    for message in GUARDED_MESSAGES:
        handlers[message] = _only_from_joined_socket(message, handlers[message])
    Client._secondopinion_guarded = True  # type: ignore[attr-defined]


def _only_from_joined_socket(message: str, handler: Callable[[str, dict], Any]) -> Callable[[str, dict], Any]:
    def guarded(socket_id: str, data: dict) -> Any:
        client = Client.instances.get(data.get('client_id', '')) if isinstance(data, dict) else None
        if client is not None and socket_id not in client._socket_to_document_id:
            logger.warning('%s message for page %s dropped: socket %s did not join it', message, client.id,
                           socket_id)
            return None
        return handler(socket_id, data)
    return guarded
