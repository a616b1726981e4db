"""The session cookie in the browser: set at sign-in, flags, sign-out, and pages that leave when it ends."""

from __future__ import annotations

import sys

import httpx
from nicegui import ui
from nicegui.testing import User
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import UserSession
from secondopinion.services import sessions

from .helpers import sign_in


def _ticket(user_id: int) -> str:
    with db.session_scope() as session:
        return sessions.start(session, user_id, method='password', client_address='127.0.0.1')


def _set_cookie_header(response: httpx.Response, name: str) -> str:
    headers = [value for value in response.headers.get_list('set-cookie') if value.startswith(f'{name}=')]
    assert len(headers) == 1, response.headers.get_list('set-cookie')
    return headers[0].lower()


async def test_sign_in_sets_new_cookies(user: User, make_patient):
    patient = make_patient(email='alice@example.org')
    await user.open('/login')
    browser_cookie_before = user.http_client.cookies.get('session')
    response = await user.http_client.get(f'/auth/session?ticket={_ticket(patient.user_id)}')
    assert response.status_code == 303
    assert response.headers['location'] == '/exams'
    cookie = _set_cookie_header(response, sessions.COOKIE_NAME)
    assert 'httponly' in cookie
    assert 'samesite=lax' in cookie
    assert 'path=/' in cookie
    assert 'secure' not in cookie  # served over plain http here, as on the embedded default
    # NiceGUI's own cookie gets a new browser id, so nothing kept before sign-in carries over.
    assert user.http_client.cookies.get('session') != browser_cookie_before


async def test_cookie_is_secure_when_served_over_https(user: User, make_patient, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_PUBLIC_BASE_URL', 'https://second.example.org')
    from secondopinion.config import reset_settings
    reset_settings()
    patient = make_patient()
    response = await user.http_client.get(f'/auth/session?ticket={_ticket(patient.user_id)}')
    assert 'secure' in _set_cookie_header(response, sessions.COOKIE_NAME)


async def test_used_ticket_and_foreign_next_are_refused(user: User, make_patient):
    patient = make_patient()
    ticket = _ticket(patient.user_id)
    first = await user.http_client.get(f'/auth/session?ticket={ticket}&next=//elsewhere.example/x')
    assert first.headers['location'] == '/exams'
    again = await user.http_client.get(f'/auth/session?ticket={ticket}')
    assert again.headers['location'] == '/login?ticket=expired'
    own = await user.http_client.get(f'/auth/session?ticket={_ticket(patient.user_id)}&next=/profile')
    assert own.headers['location'] == '/profile'


async def test_sign_out_ends_the_session_on_the_server(user: User, make_patient):
    make_patient(email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    token = user.http_client.cookies.get(sessions.COOKIE_NAME)
    assert token and sessions.resolve(token) is not None
    user.find(marker='sign-out').click()
    await user.should_see(marker='sign-in')
    assert sessions.resolve(token) is None
    # The old cookie value, sent again, opens nothing.
    user.http_client.cookies.set(sessions.COOKIE_NAME, token)
    assert (await user.http_client.post('/auth/activity')).status_code == 401
    await user.open('/exams')
    await user.should_see(marker='sign-in')
    with db.session_scope() as session:
        assert session.scalars(select(UserSession.revoke_reason)).all() == [sessions.SIGNED_OUT]


async def test_open_page_leaves_when_its_session_ends(user: User, make_patient):
    make_patient(email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    sessions.end(user.http_client.cookies.get(sessions.COOKIE_NAME), reason=sessions.PASSWORD_CHANGED)
    await user.should_see(marker='sign-in')
    await user.should_see('the password of this account was changed')


async def test_activity_route_status_codes(user: User, make_patient):
    make_patient(email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    assert (await user.http_client.post('/auth/activity')).status_code == 204
    user.http_client.cookies.delete(sessions.COOKIE_NAME)
    assert (await user.http_client.post('/auth/activity')).status_code == 401


async def test_signed_out_keeps_live_session(user: User, make_patient):
    make_patient(email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    token = user.http_client.cookies.get(sessions.COOKIE_NAME)
    response = await user.http_client.get('/auth/signed-out', follow_redirects=False)
    assert response.headers['location'] == '/exams'
    assert sessions.resolve(token) is not None
    assert user.http_client.cookies.get(sessions.COOKIE_NAME) == token


async def test_sign_out_not_reported_as_ended(user: User, make_patient, monkeypatch):
    make_patient(email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    client = user.client
    watch = next(element for element in client.elements.values()
                 if isinstance(element, ui.timer) and '_watch_session' in element.callback.__qualname__)
    targets: list[str] = []
    navigate = sys.modules['secondopinion.pages.layout'].ui.navigate
    original = navigate.to
    monkeypatch.setattr(navigate, 'to', lambda target, *args, **kwargs: (targets.append(target),
                                                                          original(target, *args, **kwargs)))

    user.find(marker='sign-out').click()
    # The page's session watch runs once more before the browser has left, and must not send it elsewhere.
    with client:
        watch.callback()
    assert targets == ['/auth/signed-out']
