"""The study uploader in Chromium: a 2,000-file series with a failed request retried, a CD folder, cancel and close."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.services.dicom_files import dicomdir_folder

from .conftest import (
    DESKTOP, AppServer, register_patient, save_screenshot, unique_email, upload_folder, upload_images,
)

SERIES_FILES = 2000
SLICE_SIZE = 32  # pixels per side, so the 2,000 files stay small and the test fast
COMMIT_TIMEOUT_MS = 180_000
FILE_ROUTE = re.compile(r'/api/uploads/[0-9a-f]{32}/files/(\d+)$')


@pytest.fixture(scope='module')
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Write a CT series of SERIES_FILES slices, each named IM000001 and so on as on a CD."""
    folder = tmp_path_factory.mktemp('ct-series')
    template = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
    template.Rows = template.Columns = SLICE_SIZE
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for number in range(1, SERIES_FILES + 1):
        template.StudyInstanceUID, template.SeriesInstanceUID = study_uid, series_uid
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        template.InstanceNumber = number
        template.PixelData = np.full((SLICE_SIZE, SLICE_SIZE), number, dtype=np.int16).tobytes()
        path = folder / f'IM{number:06d}'
        template.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _new_examination(open_page: Callable, **options):  # noqa: ANN202
    page = open_page(**(options or DESKTOP))
    page.goto('/register')
    register_patient(page, name='Uma Uploader', email=unique_email('uploader'))
    page.goto('/exams/new')
    page.wait_for_url('**/edit')
    return page


def _staged_uploads(app: AppServer) -> list[str]:
    root = app.data_dir / 'uploads'
    return sorted(path.name for path in root.iterdir()) if root.exists() else []


def _wait_until_no_staged_upload(app: AppServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _staged_uploads(app) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _staged_uploads(app) == []


def test_series_of_2000_files_with_a_retry(open_page, app: AppServer, ct_series: list[Path]):
    from playwright.sync_api import Route, expect

    page = _new_examination(open_page)
    failed_once: list[int] = []

    def fail_first_attempt(route: Route) -> None:
        index = int(FILE_ROUTE.search(route.request.url).group(1))
        if index == 7 and not failed_once:
            failed_once.append(index)
            route.fulfill(status=503, body='busy')
        else:
            route.continue_()

    page.route(FILE_ROUTE, fail_first_attempt)
    upload_images(page, ct_series)
    expect(page.get_by_text(re.compile(r'^Sending [\d,]+ of 2,000 files'))).to_be_visible()
    save_screenshot(page, 'uploader-sending')
    expect(page.get_by_text('2000 DICOM images added.')).to_be_visible(timeout=COMMIT_TIMEOUT_MS)
    assert failed_once == [7]
    expect(page.get_by_text('1 study, 1 series, 2000 images', exact=False)).to_be_visible()
    _wait_until_no_staged_upload(app)


def test_cd_folder_upload(open_page, app: AppServer, tmp_path: Path):
    from playwright.sync_api import expect

    cd = tmp_path / 'CD'
    shutil.copytree(dicomdir_folder(), cd)
    page = _new_examination(open_page)
    upload_folder(page, cd)
    expect(page.get_by_text('81 DICOM images added, 10 other files skipped (not DICOM images).')) \
        .to_be_visible(timeout=COMMIT_TIMEOUT_MS)
    _wait_until_no_staged_upload(app)


def test_rejected_file_is_named(open_page, app: AppServer, ct_series: list[Path], tmp_path: Path):
    from playwright.sync_api import expect

    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image')
    page = _new_examination(open_page)
    upload_images(page, [ct_series[0], notes])
    expect(page.locator('.text-negative', has_text='notes.txt is not a DICOM file')) \
        .to_be_visible(timeout=COMMIT_TIMEOUT_MS)
    # Below the message, each rejected file has its own row with the reason.
    expect(page.get_by_text('notes.txt', exact=True)).to_be_visible()
    expect(page.get_by_text('Not a DICOM file.', exact=True)).to_be_visible()
    expect(page.get_by_text('No images uploaded yet.')).to_be_visible()
    _wait_until_no_staged_upload(app)


def test_cancel_leaves_nothing(open_page, app: AppServer, ct_series: list[Path]):
    from playwright.sync_api import Route, expect

    page = _new_examination(open_page)

    def hold_later_files(route: Route) -> None:
        if int(FILE_ROUTE.search(route.request.url).group(1)) < 10:
            route.continue_()  # the rest never get a response, as on a stalled connection

    page.route(FILE_ROUTE, hold_later_files)
    upload_images(page, ct_series[:30])
    expect(page.get_by_text(re.compile(r'^Sending 10 of 30 files'))).to_be_visible()
    assert len(_staged_uploads(app)) == 1
    page.get_by_role('button', name='Cancel upload').click()
    expect(page.get_by_text('Upload cancelled. Nothing from it was stored.')).to_be_visible()
    _wait_until_no_staged_upload(app)
    expect(page.get_by_text('No images uploaded yet.')).to_be_visible()


def test_closing_the_page_drops_the_upload(open_page, app: AppServer, ct_series: list[Path]):
    from playwright.sync_api import Route, expect

    page = _new_examination(open_page)

    def hold_later_files(route: Route) -> None:
        if int(FILE_ROUTE.search(route.request.url).group(1)) < 5:
            route.continue_()

    page.route(FILE_ROUTE, hold_later_files)
    upload_images(page, ct_series[:20])
    expect(page.get_by_text(re.compile(r'^Sending 5 of 20 files'))).to_be_visible()
    page.close(run_before_unload=True)
    _wait_until_no_staged_upload(app)
