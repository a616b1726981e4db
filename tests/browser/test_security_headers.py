"""The Content Security Policy in a real browser: sent with the pages, enforced, and not in the app's way.

`open_page` fails every browser test whose pages reported a policy violation in the console, so the
other tests check the registration, the image upload and the viewer under the policy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from secondopinion.api.security import CONTENT_SECURITY_POLICY

from .conftest import REPO_ROOT, register_patient, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# Another port on loopback is another origin, so img-src 'self' blocks it before any request is made.
OTHER_ORIGIN_IMAGE = 'http://127.0.0.1:9/blocked.png'
VIOLATION_TIMEOUT_SECONDS = 5.0


def test_policy_blocks_other_origin_image(open_page: Callable[..., sync_api.Page], csp_violations: list[str]) -> None:
    page = open_page()
    response = page.goto('/register')
    assert response is not None
    assert response.headers['content-security-policy'] == CONTENT_SECURITY_POLICY
    expect(page.get_by_role('button', name='Create account')).to_be_visible()
    assert csp_violations == []

    page.evaluate('url => document.body.append(Object.assign(document.createElement("img"), {src: url}))',
                  OTHER_ORIGIN_IMAGE)
    deadline = time.monotonic() + VIOLATION_TIMEOUT_SECONDS
    while not csp_violations and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(csp_violations) == 1
    assert OTHER_ORIGIN_IMAGE in csp_violations[0]
    assert 'img-src' in csp_violations[0]
    csp_violations.clear()  # the violation was the point of this test, so open_page must not fail it


def test_report_photo_upload_under_policy(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    photo = tmp_path / 'report-photo.png'
    shutil.copyfile(REPO_ROOT / 'assets' / 'logo.png', photo)
    page = open_page()
    page.goto('/register')
    register_patient(page, name='Petra Photo', email=unique_email('photo'))
    page.goto('/exams/new')
    page.wait_for_url('**/edit')

    uploader = page.locator('.q-uploader', has_text='Report as PDF or image')
    uploader.locator('input[type=file]').set_input_files(str(photo))
    expect(page.get_by_text('report-photo.png attached.')).to_be_visible()
