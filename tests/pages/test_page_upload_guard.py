"""The upload route NiceGUI creates for each ui.upload accepts files only from the page's own session."""

from __future__ import annotations

import httpx
from nicegui import ui
from nicegui.testing import User

from secondopinion.services import sessions
from tests.conftest import open_session

from .helpers import sign_in

PDF = b'%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n'


async def _prior_upload_url(user: User) -> str:
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='prior-upload')
    element = user.find(marker='prior-upload').elements.pop()
    assert isinstance(element, ui.upload)
    return element.props['url']


async def _send(client: httpx.AsyncClient, url: str) -> int:
    response = await client.post(url, files={'file': ('first-report.pdf', PDF, 'application/pdf')})
    return response.status_code


def _other_browser(user: User, token: str | None) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=user.http_client._transport, base_url=str(user.http_client.base_url))
    if token:
        client.cookies.set(sessions.COOKIE_NAME, token)
    return client


async def test_page_upload_refused_from_another_session(user: User, make_patient):
    make_patient(email='carol@example.org')
    other = make_patient(name='Dan Other', email='dan@example.org')
    url = await _prior_upload_url(user)
    async with _other_browser(user, open_session(other.user_id)) as other_browser:
        assert await _send(other_browser, url) == 404
    async with _other_browser(user, None) as anonymous:
        assert await _send(anonymous, url) == 404
    await user.should_not_see(marker='prior-report-file')
    # The page's own browser may send it.
    assert await _send(user.http_client, url) == 200
    await user.should_see(marker='prior-report-file', retries=100)


async def test_page_upload_refused_after_sign_out_elsewhere(user: User, make_patient):
    make_patient(email='carol@example.org')
    url = await _prior_upload_url(user)
    sessions.end(user.http_client.cookies.get(sessions.COOKIE_NAME))
    assert await _send(user.http_client, url) == 404
