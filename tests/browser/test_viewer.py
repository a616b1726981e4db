"""The doctor's image viewer in a real browser: keys, mouse wheel and window presets on a 20-slice CT series.

The tests save desktop screenshots of the viewer into $SECONDOPINION_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from .conftest import (
    DESKTOP,
    create_doctor_in_admin_panel,
    register_patient,
    save_screenshot,
    sign_in,
    submit_paid_examination,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

SLICE_COUNT = 20
SLICE_SIZE = 64
PAGE_STEP = 10  # slices moved by PageUp and PageDown
SLICE_IMAGE = 'img[alt="Selected slice"]'
# Resolves once the image finished loading or failed, because `complete` is false only while it loads.
WAIT_FOR_IMAGE_SCRIPT = '''image => image.complete || new Promise(resolve => {
    image.addEventListener('load', resolve, {once: true});
    image.addEventListener('error', resolve, {once: true});
})'''


def write_ct_series(folder: Path) -> list[Path]:
    """Write a CT series of SLICE_COUNT single-frame files whose slices all differ, with a soft-tissue window.

    Each slice is a disc of -800 HU (lung) in a ring of 40 HU (soft tissue) on -1000 HU (air), with a
    1000 HU (bone) square whose column moves with the slice index, so no two slices render alike.
    """
    study_uid, series_uid = generate_uid(), generate_uid()
    rows, columns = np.mgrid[0:SLICE_SIZE, 0:SLICE_SIZE]
    distance = np.hypot(rows - SLICE_SIZE / 2, columns - SLICE_SIZE / 2)
    paths = []
    for index in range(SLICE_COUNT):
        hounsfield = np.full((SLICE_SIZE, SLICE_SIZE), -1000, dtype=np.int16)
        hounsfield[distance < SLICE_SIZE * 0.45] = 40
        hounsfield[distance < SLICE_SIZE * 0.30] = -800
        left = 4 + 2 * index
        hounsfield[4:10, left:left + 6] = 1000

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.Modality = 'CT'
        dataset.PatientName = 'Test^Viewer'
        dataset.PatientID = 'VIEWER-1'
        dataset.StudyDate = '20260101'
        dataset.SeriesNumber = 1
        dataset.SeriesDescription = 'Synthetic chest'
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [0, 0, float(index)]
        dataset.SliceThickness = 1
        dataset.Rows = SLICE_SIZE
        dataset.Columns = SLICE_SIZE
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = 'MONOCHROME2'
        dataset.BitsAllocated = 16
        dataset.BitsStored = 16
        dataset.HighBit = 15
        dataset.PixelRepresentation = 1
        dataset.RescaleIntercept = 0
        dataset.RescaleSlope = 1
        dataset.WindowCenter = 40
        dataset.WindowWidth = 400
        dataset.PixelData = hounsfield.tobytes()
        path = folder / f'ct-{index + 1:02d}.dcm'
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def open_viewer_on_new_case(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> sync_api.Page:
    """Have a patient pay for a CT case, then accept it as a new doctor and open the viewer at desktop size."""
    question = f'Is there a nodule in my lungs? (viewer case {time.time_ns()})'
    doctor_email = unique_email('viewer-doctor')
    doctor = open_page(**DESKTOP)
    create_doctor_in_admin_panel(doctor, name='Dr. Wilhelm Roentgen', email=doctor_email)
    doctor.context.clear_cookies()

    patient = open_page(**DESKTOP)
    patient.goto('/register')
    register_patient(patient, name='Lena Lung', email=unique_email('lung'))
    submit_paid_examination(patient, images=write_ct_series(tmp_path), modality='CT (computed tomography)',
                            body_part='Chest', question=question)

    sign_in(doctor, doctor_email)
    doctor.wait_for_url('**/doctor')
    doctor.locator('.q-card', has_text=question).get_by_role('button', name='Accept').click()
    doctor.wait_for_url('**/doctor/cases/*')
    doctor.get_by_role('button', name='Open viewer').click()
    doctor.wait_for_url('**/viewer')
    return doctor


def expect_slice(page: sync_api.Page, index: int, *, query: str = '') -> None:
    """Check that the label, the slider and the loaded image all show the slice at this 0-based index."""
    expect(page.get_by_text(f'Slice {index + 1} of {SLICE_COUNT}', exact=True)).to_be_visible()
    expect(page.get_by_role('slider')).to_have_attribute('aria-valuenow', str(index))

    image = page.locator(SLICE_IMAGE)
    source = re.escape(f'/slices/{index}.png' + (f'?{query}' if query else ''))
    expect(image).to_have_attribute('src', re.compile(rf'^/api/exams/\w+/series/\d+{source}$'))
    image.evaluate(WAIT_FOR_IMAGE_SCRIPT)
    natural_width = image.evaluate('image => image.naturalWidth')
    assert natural_width > 0, f'slice {index} did not load: {image.get_attribute("src")} has naturalWidth 0'


def scroll_position(page: sync_api.Page) -> float:
    return page.evaluate('window.scrollY')


def scroll_window_to_middle(page: sync_api.Page) -> float:
    """Scroll the page halfway down, so a key that scrolls it in either direction changes window.scrollY."""
    overflow = page.evaluate('document.documentElement.scrollHeight - window.innerHeight')
    assert overflow >= 2, f'the viewer page does not scroll ({overflow} px), so the scroll checks would prove nothing'
    page.evaluate(f'window.scrollTo(0, {overflow // 2})')
    return scroll_position(page)


def test_viewer_keys_move_through_slices(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    page = open_viewer_on_new_case(open_page, tmp_path)
    expect_slice(page, 0)
    save_screenshot(page, 'desktop-viewer')

    # The focus is on the page body at first.
    scroll_y = scroll_window_to_middle(page)
    steps = [('ArrowDown', 1), ('ArrowRight', 2), ('ArrowUp', 1), ('ArrowLeft', 0), ('ArrowLeft', 0),
             ('PageDown', 10), ('PageDown', SLICE_COUNT - 1), ('PageUp', SLICE_COUNT - 1 - PAGE_STEP),
             ('Home', 0), ('End', SLICE_COUNT - 1), ('ArrowRight', SLICE_COUNT - 1), ('Home', 0)]
    for key, expected_index in steps:
        page.keyboard.press(key)
        expect_slice(page, expected_index)
        assert scroll_position(page) == scroll_y, f'{key} scrolled the page from {scroll_y} to {scroll_position(page)}'

    # After a mouse click on "Next slice", Quasar leaves the focus on a helper element inside the button.
    page.get_by_role('button', name='Next slice').click()
    expect_slice(page, 1)
    scroll_y = scroll_window_to_middle(page)
    page.keyboard.press('ArrowDown')
    expect_slice(page, 2)
    assert scroll_position(page) == scroll_y, f'ArrowDown scrolled the page from {scroll_y} to {scroll_position(page)}'

    # A keyboard user who tabbed to "Previous slice" and pressed Enter has the focus on the <button> itself.
    page.get_by_role('button', name='Previous slice').focus()
    page.keyboard.press('Enter')
    expect_slice(page, 1)
    scroll_y = scroll_window_to_middle(page)
    for key, expected_index in [('ArrowDown', 2), ('End', SLICE_COUNT - 1), ('Home', 0)]:
        page.keyboard.press(key)
        expect_slice(page, expected_index)
        assert scroll_position(page) == scroll_y, f'{key} scrolled the page from {scroll_y} to {scroll_position(page)}'

    # A click on the slider's thumb focuses the slider. Quasar's QSlider then moves it by one step per arrow
    # key and by ten per PageUp or PageDown, and the page's own key handling must not move it a second time.
    # QSlider ignores Home and End, so the page handles those.
    page.locator('.q-slider__thumb').click()
    expect_slice(page, 0)
    scroll_y = scroll_window_to_middle(page)
    slider_steps = [('ArrowRight', 1), ('ArrowRight', 2), ('ArrowLeft', 1), ('PageUp', 1 + PAGE_STEP),
                    ('End', SLICE_COUNT - 1), ('Home', 0)]
    for key, expected_index in slider_steps:
        # The slider sends its value at most every 50 ms, plus once more at the end (NiceGUI's throttle). A key
        # that the page handles within those 50 ms can be undone by that last slider event, so the test waits
        # as long as a person between two keys would.
        page.wait_for_timeout(150)
        page.keyboard.press(key)
        expect_slice(page, expected_index)
        assert scroll_position(page) == scroll_y, (f'{key} on the slider scrolled the page from {scroll_y} '
                                                   f'to {scroll_position(page)}')

    page.keyboard.press('End')
    expect_slice(page, SLICE_COUNT - 1)
    save_screenshot(page, 'desktop-viewer-last-slice')


def test_viewer_wheel_moves_one_slice(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    page = open_viewer_on_new_case(open_page, tmp_path)
    expect_slice(page, 0)
    scroll_y = scroll_window_to_middle(page)

    box = page.locator('.viewer-stage').bounding_box()
    page.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
    page.mouse.wheel(0, 100)
    expect_slice(page, 1)
    assert scroll_position(page) == scroll_y, f'the wheel scrolled the page from {scroll_y} to {scroll_position(page)}'

    page.mouse.wheel(0, -100)
    expect_slice(page, 0)
    assert scroll_position(page) == scroll_y, f'the wheel scrolled the page from {scroll_y} to {scroll_position(page)}'


def test_viewer_lung_preset_renders_other_image(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    page = open_viewer_on_new_case(open_page, tmp_path)
    expect_slice(page, 0)
    default_source = page.locator(SLICE_IMAGE).get_attribute('src')

    page.get_by_role('button', name='Lung').click()
    expect_slice(page, 0, query='preset=lung')
    lung_source = page.locator(SLICE_IMAGE).get_attribute('src')
    save_screenshot(page, 'desktop-viewer-lung')

    # The browser context's request client sends the doctor's session cookie, as the <img> does.
    default_response = page.request.get(default_source)
    lung_response = page.request.get(lung_source)
    for response in (default_response, lung_response):
        assert response.status == 200, f'GET {response.url} returned {response.status}'
        assert response.headers['content-type'] == 'image/png', f'GET {response.url}: {response.headers}'
    assert lung_response.body() != default_response.body(), 'the lung window rendered the same PNG as the file window'

    # The slices differ, so a wrong index in the URL would show a wrong image.
    next_slice = page.request.get(default_source.replace('/slices/0.png', '/slices/1.png'))
    assert next_slice.status == 200, f'GET {next_slice.url} returned {next_slice.status}'
    assert next_slice.body() != default_response.body(), 'slices 0 and 1 rendered the same PNG'

    # The click left the focus inside the Lung button, and the keys must still move through the slices
    # with the preset.
    page.keyboard.press('ArrowDown')
    expect_slice(page, 1, query='preset=lung')
    page.get_by_role('button', name='File window').click()
    expect_slice(page, 1)
