"""A page's websocket must carry the page's session, and only sockets that joined a page may drive it."""

from __future__ import annotations

from nicegui import core, ui
from nicegui.testing import User

from secondopinion.api.socket_guard import socket_may_join
from secondopinion.services import sessions
from tests.conftest import open_session

from .helpers import sign_in


def _environ(token: str | None) -> dict[str, str]:
    return {'HTTP_COOKIE': f'session=abc; {sessions.COOKIE_NAME}={token}'} if token else {}


async def test_socket_needs_the_session_of_the_page(user: User, make_patient):
    make_patient(email='carol@example.org')
    other = make_patient(name='Dan Other', email='dan@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    client = user.client
    own = user.http_client.cookies.get(sessions.COOKIE_NAME)
    assert socket_may_join(client, _environ(own))
    assert not socket_may_join(client, _environ(open_session(other.user_id)))
    assert not socket_may_join(client, _environ(None))
    assert not socket_may_join(client, {'HTTP_COOKIE': 'not a cookie header ;;; ='})
    # A page opened without a session, like the sign-in page, may be joined by any socket.
    user.http_client.cookies.delete(sessions.COOKIE_NAME)
    await user.open('/login')
    assert socket_may_join(user.client, _environ(None))


async def test_events_only_from_sockets_that_joined(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    client = user.client
    button = next(element for element in client.elements.values()
                  if isinstance(element, ui.button) and 'sign-out' in element._markers)
    listener_id = next(iter(button._event_listeners))
    message = {'client_id': client.id, 'id': button.id, 'type': 'click', 'listener_id': listener_id, 'args': []}
    token = user.http_client.cookies.get(sessions.COOKIE_NAME)

    core.sio.handlers['/']['event']('socket-of-another-browser', dict(message))
    await user.should_see('My examinations')
    assert sessions.resolve(token) is not None  # the click was dropped: still signed in

    joined = next(iter(client._socket_to_document_id))
    core.sio.handlers['/']['event'](joined, dict(message))
    await user.should_see(marker='sign-in')
    assert sessions.resolve(token) is None
