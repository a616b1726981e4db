"""Security headers on every kind of response, and the request body limit of each route, over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from fastapi.responses import PlainTextResponse
from nicegui import app
from nicegui.testing import User

from secondopinion.api import security
from secondopinion.config import reset_settings
from secondopinion.services import examinations, uploads
from secondopinion.services.studies import MAX_PRIOR_REPORT_BYTES

from .helpers import sign_in

WEBHOOK = '/api/stripe/webhook'
BOUNDARY = 'test-boundary-7f3a'
DICOM_UID = '1.2.840.113619.2.55.3.604688119.969.1716000000.123'
EXPECTED_HEADERS = {
    'content-security-policy': security.CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'x-frame-options': 'DENY',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
}


def _assert_security_headers(response) -> None:  # noqa: ANN001
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, f'{name} of {response.request.url}'


async def _chunks(total: int, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """Yield `total` bytes in chunks, so that httpx sends them chunked, without a Content-Length."""
    sent = 0
    while sent < total:
        size = min(chunk_size, total - sent)
        sent += size
        yield b'x' * size


async def _multipart_chunks(name: str, size: int) -> AsyncIterator[bytes]:
    """Yield a multipart/form-data body with one file of `size` bytes, chunked as a browser streams it."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
           f'Content-Type: application/pdf\r\n\r\n').encode()
    async for chunk in _chunks(size):
        yield chunk
    yield f'\r\n--{BOUNDARY}--\r\n'.encode()


async def _signed_in_upload(user: User, make_patient, size: int) -> str:  # noqa: ANN001
    """Start an upload of one file of `size` bytes as a signed-in patient and return its id."""
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    response = await user.http_client.post(f'/api/exams/{exam_id}/uploads',
                                           json={'folder': False, 'files': [{'name': 'a.dcm', 'size': size}]})
    assert response.status_code == 201
    return response.json()['upload_id']


@pytest.mark.parametrize('path', ['/login', '/healthz', '/assets/logo.png', '/no-such-page'])
async def test_headers_on_every_response(user: User, path: str):
    response = await user.http_client.get(path)
    assert response.status_code == (404 if path == '/no-such-page' else 200)
    _assert_security_headers(response)
    assert 'strict-transport-security' not in response.headers


async def test_headers_on_nicegui_static_file(user: User):
    response = await user.http_client.get('/login')
    script = next(line.split('src="')[1].split('"')[0] for line in response.text.splitlines()
                  if 'nicegui.js' in line and 'src="' in line)
    response = await user.http_client.get(script)
    assert response.status_code == 200
    _assert_security_headers(response)


async def test_headers_on_upload_file_response(user: User, make_patient):
    upload_id = await _signed_in_upload(user, make_patient, 10)
    response = await user.http_client.put(f'/api/uploads/{upload_id}/files/0', content=b'x' * 10)
    assert response.status_code == 204
    _assert_security_headers(response)


async def test_header_set_by_route_is_kept(user: User):
    @app.get('/test-own-policy')
    def own_policy() -> PlainTextResponse:
        return PlainTextResponse('x', headers={'Content-Security-Policy': "default-src 'none'"})

    response = await user.http_client.get('/test-own-policy')
    assert response.headers.get_list('content-security-policy') == ["default-src 'none'"]
    assert response.headers['x-content-type-options'] == 'nosniff'


async def test_hsts_only_over_https(user: User, monkeypatch):
    client = user.http_client
    assert 'strict-transport-security' not in (await client.get('/healthz')).headers
    forwarded = {'X-Forwarded-Proto': 'https'}
    assert 'strict-transport-security' not in (await client.get('/healthz', headers=forwarded)).headers

    response = await client.get('https://test/healthz')
    assert response.headers['strict-transport-security'] == 'max-age=31536000; includeSubDomains'

    monkeypatch.setenv('SECONDOPINION_BEHIND_HTTPS_PROXY', 'true')
    reset_settings()
    response = await client.get('/healthz', headers=forwarded)
    assert response.headers['strict-transport-security'] == 'max-age=31536000; includeSubDomains'
    response = await client.get('/healthz', headers={'X-Forwarded-Proto': 'http'})
    assert 'strict-transport-security' not in response.headers


async def test_oversized_body_rejected_with_413(user: User, caplog):
    caplog.set_level(logging.WARNING, logger=security.__name__)
    too_large = b'x' * (security.DEFAULT_MAX_BODY_BYTES + 1)
    for path in ('/api/uploads/some-upload/commit', WEBHOOK):
        response = await user.http_client.post(path, content=too_large)
        assert response.status_code == 413, path
        assert response.json() == {'detail': 'The request body is larger than the limit of 1,048,576 bytes.'}
        _assert_security_headers(response)
        assert f'POST {path} rejected: the body of 1048577 bytes' in caplog.text


async def test_streamed_body_cut_off_at_limit(user: User, stripe_server, caplog):
    caplog.set_level(logging.WARNING, logger=security.__name__)
    response = await user.http_client.post(WEBHOOK, content=_chunks(security.STRIPE_WEBHOOK_MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.json()['detail'] == 'The request body is larger than the limit of 1,048,576 bytes.'
    _assert_security_headers(response)
    assert f'POST {WEBHOOK} cut off' in caplog.text

    # A streamed body within the limit still reaches the route, which rejects it for its missing signature.
    response = await user.http_client.post(WEBHOOK, content=_chunks(security.STRIPE_WEBHOOK_MAX_BODY_BYTES))
    assert response.status_code == 400


async def test_upload_file_limit_is_max_file_bytes(user: User, make_patient, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_MAX_FILE_BYTES', '1000')
    reset_settings()
    upload_id = await _signed_in_upload(user, make_patient, 1000)
    client = user.http_client
    url = f'/api/uploads/{upload_id}/files/0'
    expected_detail = 'The request body is larger than the limit of 1,000 bytes.'

    response = await client.put(url, content=b'x' * 1001)
    assert response.status_code == 413
    assert response.json()['detail'] == expected_detail
    response = await client.put(url, content=_chunks(1001, chunk_size=100))
    assert response.status_code == 413
    assert response.json()['detail'] == expected_detail
    assert sorted(path.name for path in (uploads.staging_root() / upload_id).iterdir()) == [uploads.MANIFEST_NAME]

    assert (await client.put(url, content=_chunks(1000, chunk_size=100))).status_code == 204


async def test_start_of_5000_files_fits(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    # The folders and files of a CD named after DICOM UIDs: about 1.05 MB of JSON, above the default limit.
    names = [f'CD 2024-05-17/DICOM/{DICOM_UID}.1/{DICOM_UID}.2/{DICOM_UID}.{index}.dcm' for index in range(5000)]
    body = {'folder': True, 'files': [{'name': name, 'size': 512 * 1024} for name in names]}
    response = await user.http_client.post(f'/api/exams/{exam_id}/uploads', json=body)
    assert int(response.request.headers['content-length']) > security.DEFAULT_MAX_BODY_BYTES
    assert response.status_code == 201


async def test_report_upload_accepts_max_report_size(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='prior-upload')
    url = user.find(marker='prior-upload').elements.pop().props['url']
    header = b'%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n'

    largest = header + b' ' * (MAX_PRIOR_REPORT_BYTES - len(header))
    response = await user.http_client.post(url, files={'file': ('largest.pdf', largest, 'application/pdf')})
    assert response.status_code == 200
    await user.should_see('largest.pdf', retries=100)

    too_large = b'x' * (MAX_PRIOR_REPORT_BYTES + security.MULTIPART_OVERHEAD_BYTES)
    response = await user.http_client.post(url, files={'file': ('too-large.pdf', too_large, 'application/pdf')})
    assert response.status_code == 413
    _assert_security_headers(response)

    response = await user.http_client.post(url, content=_multipart_chunks('streamed.pdf', len(too_large)),
                                           headers={'Content-Type': f'multipart/form-data; boundary={BOUNDARY}'})
    assert response.status_code == 413
    await user.should_not_see('streamed.pdf')
