"""The new-examination stepper on a phone: going back and reloading keep the step and the values."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import PHONE, assert_no_horizontal_scroll, register_patient, save_screenshot, unique_email, upload_images

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

QUESTION = 'Has the nodule grown since last year?'
HISTORY = 'Smoker for 20 years'


def test_back_and_reload_keep_values(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    page.goto('/register')
    register_patient(page, name='Stella Stepper', email=unique_email('stepper'))
    page.goto('/exams/new')
    page.wait_for_url('**/edit')

    upload_images(page, [Path(get_testdata_file('CT_small.dcm'))])
    expect(page.get_by_text('1 DICOM image added.')).to_be_visible()
    expect(page.get_by_text(re.compile(r'^CT · .* · 1 series · 1 image$'))).to_be_visible()
    assert_no_horizontal_scroll(page)

    page.get_by_role('button', name='Continue to details').click()
    page.wait_for_url('**/edit?step=details')
    # The type of examination came from the images.
    expect(page.get_by_label('Type of examination')).to_have_value('CT (computed tomography)')

    # Going on with an empty question shows the message on that field.
    page.get_by_label('Body part').fill('Chest')
    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text('Write the question that the radiologist should answer.')).to_be_visible()
    page.get_by_label('Your question for the radiologist').fill(QUESTION)
    page.get_by_label('Relevant history').fill(HISTORY)
    save_screenshot(page, 'stepper-details')
    assert_no_horizontal_scroll(page)

    page.get_by_role('button', name='Continue to review').click()
    page.wait_for_url('**/edit?step=review')
    expect(page.get_by_text(QUESTION)).to_be_visible()
    expect(page.get_by_text('Price: 150.00 EUR')).to_be_visible()
    save_screenshot(page, 'stepper-review')
    assert_no_horizontal_scroll(page)

    # Back to the details: the values are still there, and a change shows on the review.
    page.get_by_role('button', name='Back to details').click()
    page.wait_for_url('**/edit?step=details')
    expect(page.get_by_label('Body part')).to_have_value('Chest')
    expect(page.get_by_label('Your question for the radiologist')).to_have_value(QUESTION)
    page.get_by_label('Relevant history').fill(HISTORY + ', stopped in 2020')
    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text(HISTORY + ', stopped in 2020')).to_be_visible()
    page.get_by_role('button', name='Back to details').click()
    page.wait_for_url('**/edit?step=details')

    # A reload opens the same step with the values from the draft.
    page.reload()
    expect(page.get_by_label('Your question for the radiologist')).to_have_value(QUESTION)
    expect(page.get_by_label('Relevant history')).to_have_value(HISTORY + ', stopped in 2020')
    expect(page.get_by_label('Body part')).to_have_value('Chest')
    assert page.url.endswith('?step=details')

    # The review's edit button for the images opens the images step.
    page.get_by_role('button', name='Continue to review').click()
    page.wait_for_url('**/edit?step=review')
    page.get_by_role('button', name='Edit').first.click()
    page.wait_for_url('**/edit?step=images')
    expect(page.get_by_role('button', name='Continue to details')).to_be_visible()
    expect(page.get_by_text('1 study, 1 series, 1 image', exact=False)).to_be_visible()
    assert_no_horizontal_scroll(page)
