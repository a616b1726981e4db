"""Installing the app in Chromium: the manifest and its icons, the service worker, what it caches, and offline pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    PHONE,
    assert_no_horizontal_scroll,
    register_patient,
    save_screenshot,
    submit_paid_examination,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# Paths the service worker stores at install. Nothing else may ever be in Cache Storage.
SHELL_PATHS = {'/offline', '/assets/logo.png'}


def _load_image_size(page: sync_api.Page, url: str) -> list[int]:
    """Load the image at `url` in the page and return its natural [width, height]."""
    return page.evaluate('''async url => {
        const image = new Image();
        image.src = url;
        await image.decode();
        return [image.naturalWidth, image.naturalHeight];
    }''', url)


def _fetch_status(page: sync_api.Page, url: str) -> int:
    return page.evaluate('url => fetch(url).then(response => response.status)', url)


def _wait_for_active_worker(page: sync_api.Page) -> str:
    """Wait until the page's service worker is activated and controls the page, and return its script URL."""
    return page.evaluate('''async () => {
        const registration = await navigator.serviceWorker.ready;
        const worker = registration.active;
        if (worker.state !== 'activated') {
            await new Promise(resolve => worker.addEventListener('statechange', () => {
                if (worker.state === 'activated') resolve();
            }));
        }
        if (!navigator.serviceWorker.controller) {
            await new Promise(resolve => navigator.serviceWorker.addEventListener('controllerchange', resolve));
        }
        return worker.scriptURL;
    }''')


def _cached_urls(page: sync_api.Page) -> dict[str, list[str]]:
    """Return the URLs in the page's Cache Storage, by cache name."""
    return page.evaluate('''async () => {
        const result = {};
        for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            result[name] = (await cache.keys()).map(request => request.url);
        }
        return result;
    }''')


def test_manifest_linked_with_icons(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page()
    page.goto('/')
    expect(page.locator('link[rel=manifest]')).to_have_attribute('href', '/manifest.webmanifest')
    expect(page.locator('meta[name=theme-color]')).to_have_attribute('content', '#0f766e')
    apple_icon = page.locator('link[rel=apple-touch-icon]').get_attribute('href')
    assert _load_image_size(page, apple_icon) == [180, 180]

    response = page.request.get('/manifest.webmanifest')
    assert response.status == 200
    assert response.headers['content-type'] == 'application/manifest+json'
    manifest = response.json()
    assert manifest['name'] == 'SecondOpinion Radiology'
    assert manifest['short_name'] == 'SecondOpinion'
    assert manifest['start_url'] == '/'
    assert manifest['scope'] == '/'
    assert manifest['display'] == 'standalone'
    assert manifest['theme_color'] == '#0f766e'
    assert manifest['background_color'] == '#f5f7f8'

    purposes = sorted(icon['purpose'] for icon in manifest['icons'])
    assert purposes == ['any', 'any', 'maskable']
    for icon in manifest['icons']:
        width, height = (int(number) for number in icon['sizes'].split('x'))
        assert icon['type'] == 'image/png'
        assert _load_image_size(page, icon['src']) == [width, height], icon['src']


def test_worker_caches_no_patient_data(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    page.goto('/register')
    register_patient(page, name='Wanda Worker', email=unique_email('worker'))
    script_url = _wait_for_active_worker(page)
    assert urlsplit(script_url).path == '/sw.js'

    exam_id = submit_paid_examination(page, images=[Path(get_testdata_file('CT_small.dcm'))],
                                      modality='CT (computed tomography)', body_part='Chest',
                                      question='Is the nodule benign?')
    exam_path = f'/exams/{exam_id}'
    # Open the examination page again, now certainly through the worker, with its series thumbnail.
    response = page.goto(exam_path)
    assert response is not None and response.status == 200
    thumbnail = page.locator('img[src*="/thumbnail.png"]').first
    expect(thumbnail).to_be_visible()
    thumbnail_path = thumbnail.get_attribute('src')
    assert thumbnail_path.startswith(f'/api/exams/{exam_id}/')
    assert page.evaluate('() => navigator.serviceWorker.controller !== null')

    # An image route opened as a page, and downloads fetched by the page.
    image_response = page.goto(thumbnail_path)
    assert image_response is not None and image_response.status == 200
    page.goto(exam_path)
    expect(page.locator('img[src*="/thumbnail.png"]').first).to_be_visible()
    assert _fetch_status(page, f'/api/exams/{exam_id}/images.zip') == 200
    assert _fetch_status(page, f'/api/exams/{exam_id}/report.pdf') == 404  # not reported yet

    cached = _cached_urls(page)
    assert len(cached) == 1, f'expected one cache, found {sorted(cached)}'
    name, urls = next(iter(cached.items()))
    assert name.startswith('secondopinion-shell-')
    assert {urlsplit(url).path for url in urls} == SHELL_PATHS
    for url in urls:
        assert exam_id not in url
        assert urlsplit(url).query == ''


def test_offline_navigation_shows_offline_page(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    page.goto('/')
    _wait_for_active_worker(page)
    expect(page.get_by_text('How it works')).to_be_visible()

    page.context.set_offline(True)
    response = page.goto('/login')
    assert response is not None and response.from_service_worker
    expect(page.get_by_role('heading', name='You are offline')).to_be_visible()
    # The logo comes from the worker's cache too.
    logo = page.locator('header img')
    expect(logo).to_be_visible()
    assert page.evaluate('image => image.naturalWidth', logo.element_handle()) == 256
    assert_no_horizontal_scroll(page)
    save_screenshot(page, 'phone-offline')

    page.context.set_offline(False)
    page.get_by_role('button', name='Try again').click()
    expect(page.get_by_label('Email')).to_be_visible()
    expect(page.get_by_role('heading', name='You are offline')).to_be_hidden()


def test_landing_page_fits_phone(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    page.goto('/')
    expect(page.get_by_text('Any other examination')).to_be_visible()
    expect(page.get_by_text('Your privacy')).to_be_visible()
    assert_no_horizontal_scroll(page)
    save_screenshot(page, 'phone-landing')
    page.get_by_role('button', name='Create an account').last.click()
    page.wait_for_url('**/register')
