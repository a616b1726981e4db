"""A patient on a phone: registration, upload through the real file input, details, and the test checkout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    EXAM_URL,
    PHONE,
    assert_header_one_row,
    assert_no_horizontal_scroll,
    choose_modality,
    register_patient,
    save_screenshot,
    unique_email,
    upload_images,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def _check_fits_phone(page: sync_api.Page, screenshot: str | None = None) -> None:
    assert_no_horizontal_scroll(page)
    assert_header_one_row(page)
    if screenshot:
        save_screenshot(page, screenshot)


def test_patient_phone_request_and_payment(open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    page = open_page(**PHONE)
    question = 'Is the nodule in my right lung benign?'

    page.goto('/')
    expect(page.get_by_text('A second opinion on your scan, from a qualified radiologist')).to_be_visible()
    _check_fits_phone(page, 'phone-01-landing')

    page.get_by_role('button', name='Create an account').first.click()
    page.wait_for_url('**/register')
    expect(page.get_by_text('Create a patient account')).to_be_visible()
    _check_fits_phone(page, 'phone-02-register')

    register_patient(page, name='Şükrü Yılmaz', email=unique_email('phone'), date_of_birth='1975-03-02',
                     phone='+90 532 123 45 67')
    expect(page.get_by_text('My examinations').last).to_be_visible()
    expect(page.get_by_text('You have no examinations yet.')).to_be_visible()
    _check_fits_phone(page, 'phone-03-my-examinations')

    page.get_by_role('button', name='New examination').last.click()
    page.wait_for_url('**/edit')
    expect(page.get_by_text('No images uploaded yet.')).to_be_visible()
    _check_fits_phone(page, 'phone-04-new-examination')

    ct = Path(get_testdata_file('CT_small.dcm'))
    mr = Path(get_testdata_file('MR_small.dcm'))
    upload_images(page, [ct, mr])
    expect(page.get_by_text('2 DICOM images added.')).to_be_visible()
    expect(page.get_by_text('2 studies, 2 series, 2 images', exact=False)).to_be_visible()
    _check_fits_phone(page)

    not_dicom = tmp_path / 'notes.dcm'
    not_dicom.write_text('Questions for the radiologist: see the form.\n', encoding='utf-8')
    upload_images(page, [not_dicom])
    upload_status = page.locator('.text-negative', has_text='not a DICOM file')
    expect(upload_status).to_contain_text('notes.dcm')
    expect(page.get_by_text('2 studies, 2 series, 2 images', exact=False)).to_be_visible()
    _check_fits_phone(page, 'phone-05-images-uploaded')

    page.get_by_role('button', name='Continue to details').click()
    choose_modality(page, 'CT (computed tomography)')
    expect(page.get_by_label('Type of examination')).to_have_value('CT (computed tomography)')
    page.get_by_label('Body part').fill('Chest')
    page.get_by_label('Your question for the radiologist').fill(question)
    _check_fits_phone(page, 'phone-06-details-filled')

    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text(question)).to_be_visible()
    expect(page.get_by_text('Price: 150.00 EUR')).to_be_visible()
    _check_fits_phone(page, 'phone-06b-review')

    page.get_by_role('button', name='Continue to payment').click()
    _check_fits_phone(page, 'phone-06c-payment')
    page.get_by_role('button', name='Submit and pay').click()
    page.wait_for_url('**/checkout/test/**')
    expect(page.get_by_text('TEST MODE', exact=False)).to_be_visible()
    expect(page.get_by_text('150.00 EUR')).to_be_visible()
    _check_fits_phone(page, 'phone-07-test-checkout')

    page.get_by_role('button', name='Pay (test)').click()
    page.wait_for_url(EXAM_URL)
    expect(page.get_by_text('Waiting for a radiologist')).to_be_visible()
    expect(page.get_by_text(question)).to_be_visible()
    _check_fits_phone(page, 'phone-08-examination-paid')

    page.goto('/exams')
    expect(page.get_by_text('CT Chest')).to_be_visible()
    expect(page.get_by_text('Waiting for a radiologist')).to_be_visible()
    _check_fits_phone(page, 'phone-09-my-examinations-paid')
