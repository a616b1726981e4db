"""The manifest, the service worker and the offline page as HTTP responses, and their links in every page."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.api import pwa
from secondopinion.api.security import CONTENT_SECURITY_POLICY


async def test_manifest_response(user: User):
    await user.open('/')
    response = await user.http_client.get('/manifest.webmanifest')
    assert response.status_code == 200
    assert response.headers['content-type'] == 'application/manifest+json'
    assert response.headers['cache-control'] == 'no-cache'
    manifest = response.json()
    assert manifest['name'] == 'SecondOpinion Radiology'
    assert manifest['short_name'] == 'SecondOpinion'
    assert manifest['start_url'] == '/'
    assert manifest['scope'] == '/'
    assert manifest['display'] == 'standalone'
    assert manifest['theme_color'] == '#0f766e'
    assert manifest['background_color'] == '#f5f7f8'


async def test_manifest_icons_served(user: User):
    await user.open('/')
    manifest = (await user.http_client.get('/manifest.webmanifest')).json()
    purposes = {(icon['sizes'], icon['purpose']) for icon in manifest['icons']}
    assert purposes == {('192x192', 'any'), ('512x512', 'any'), ('512x512', 'maskable')}
    for icon in manifest['icons']:
        response = await user.http_client.get(icon['src'])
        assert response.status_code == 200, icon['src']
        assert response.content.startswith(b'\x89PNG'), icon['src']


async def test_service_worker_response(user: User):
    await user.open('/')
    response = await user.http_client.get('/sw.js')
    assert response.status_code == 200
    assert response.headers['content-type'].startswith('text/javascript')
    assert response.headers['cache-control'] == 'no-cache'
    assert f"const CACHE_NAME = '{pwa.CACHE_NAME}';" in response.text
    assert '__' not in response.text  # every placeholder was filled in
    # The worker writes to Cache Storage only at install, with the shell files.
    assert '.put(' not in response.text
    assert response.text.count('.addAll(') == 1


async def test_offline_page_response(user: User):
    await user.open('/')
    response = await user.http_client.get('/offline')
    assert response.status_code == 200
    assert response.headers['content-type'].startswith('text/html')
    assert 'You are offline' in response.text
    assert '__' not in response.text


async def test_pages_link_manifest(user: User):
    for path in ('/', '/login', '/register'):
        response = await user.http_client.get(path)
        assert '<link rel="manifest" href="/manifest.webmanifest">' in response.text, path
        assert '<link rel="apple-touch-icon" href="/assets/icons/apple-touch-icon.png">' in response.text, path
        assert '<meta name="theme-color" content="#0f766e">' in response.text, path
        assert "navigator.serviceWorker.register('/sw.js'" in response.text, path


def test_policy_allows_own_manifest_and_worker():
    directives = dict(part.split(' ', 1) for part in CONTENT_SECURITY_POLICY.split('; '))
    assert directives['manifest-src'] == "'self'"
    assert directives['worker-src'] == "'self'"
