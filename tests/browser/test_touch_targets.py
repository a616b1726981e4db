"""Every control on the patient's pages is large enough to hit with a finger on a phone (390 x 844 CSS px).

The rule: every button, link, field, checkbox, radio button, tab, step header and the uploader's pick
buttons offer a hit area of at least 48 x 48 CSS px. That is Material Design's minimum touch target (48 dp),
chosen over the 44 x 44 px of WCAG 2.5.5 because Quasar's own tabs and fields are already 48 px or taller.
The exception is a link inside a sentence. It must be at least 44 px high, and its width follows its
words, as WCAG 2.5.5 allows for inline targets. The patient pages have no such link at present. A field
counts with the whole box that focuses it on a tap (Quasar's label element), not only its native <input>.

With SECONDOPINION_SCREENSHOT_DIR set, each page checked is saved as `touch-NN-<page>.png`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    DESKTOP,
    PHONE,
    assert_header_one_row,
    assert_no_horizontal_scroll,
    choose_modality,
    create_doctor_in_admin_panel,
    register_patient,
    save_screenshot,
    sign_in,
    unique_email,
    upload_images,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

MIN_TARGET_PX = 48
MIN_INLINE_LINK_HEIGHT_PX = 44

# Returns one line for each visible control whose hit area is too small.
SMALL_TARGETS_JS = """([minimum, inlineMinimum]) => {
    const selector = 'button, a[href], input:not([type=hidden]), textarea, select, [role=button], [role=checkbox], '
        + '[role=radio], [role=switch], [role=tab], [role=option], .q-stepper__tab--navigation, .cursor-pointer';
    const describe = element => {
        const text = (element.innerText || element.getAttribute('aria-label') || element.value || '').trim();
        const classes = [...element.classList].slice(0, 3).join('.');
        return `${element.tagName.toLowerCase()}.${classes} "${text.slice(0, 40)}"`;
    };
    const inSentence = link => [...link.parentElement.childNodes].some(
        node => node !== link && node.nodeType === Node.TEXT_NODE && node.textContent.trim());
    const small = [];
    const seen = new Set();
    for (const element of document.querySelectorAll(selector)) {
        // A field is tapped anywhere in its Quasar box; controls inside a larger one count as that one.
        const target = element.closest('label.q-field') || element;
        // A part of a larger control, such as the arrow of an expansion item's header, counts as that control.
        const outer = target.parentElement && target.parentElement.closest(selector);
        if (seen.has(target) || outer || element.closest('[aria-hidden=true], [inert]')) continue;
        seen.add(target);
        const box = target.getBoundingClientRect();
        const style = getComputedStyle(target);
        if (box.width === 0 || box.height === 0 || style.visibility === 'hidden' || style.pointerEvents === 'none') {
            continue;
        }
        const inline = target.tagName === 'A' && inSentence(target);
        const tooSmall = inline ? box.height < inlineMinimum
                                : box.width < minimum - 0.5 || box.height < minimum - 0.5;
        if (tooSmall) {
            small.push(`${describe(target)} is ${Math.round(box.width)} x ${Math.round(box.height)} px`
                       + (inline ? ' (link in a sentence)' : ''));
        }
    }
    return small;
}"""


def small_targets(page: sync_api.Page) -> list[str]:
    """Return a line for each visible control on the page whose hit area is below the rule of this module."""
    return page.evaluate(SMALL_TARGETS_JS, [MIN_TARGET_PX, MIN_INLINE_LINK_HEIGHT_PX])


class Walk:
    """Small controls by page, collected over the whole walk so one run reports all of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pages = 0

    def check(self, page: sync_api.Page, name: str) -> None:
        self.pages += 1
        assert_no_horizontal_scroll(page)
        assert_header_one_row(page)
        # Quasar loads images lazily, and the screenshot waits for every image, also those below the fold.
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(image => { image.loading = 'eager'; })")
        save_screenshot(page, f'touch-{self.pages:02d}-{name}')
        self.lines.extend(f'{name} ({page.url}): {line}' for line in small_targets(page))

    def assert_none(self) -> None:
        assert not self.lines, 'Controls smaller than the touch target rule:\n' + '\n'.join(self.lines)


def test_small_target_detected(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    page.goto('/login')
    expect(page.get_by_label('Email')).to_be_visible()
    page.evaluate("""() => {
        const button = document.createElement('button');
        button.id = 'tiny';
        button.textContent = 'x';
        button.style.cssText = 'all: unset; display: inline-block; width: 20px; height: 20px';
        const sentence = document.createElement('p');
        sentence.innerHTML = 'Read the <a id="inline" href="/privacy" style="all: unset">terms</a> first.';
        document.body.append(button, sentence);
    }""")
    found = small_targets(page)
    assert any('"x" is 20 x 20 px' in line for line in found), found
    assert any('"terms"' in line and 'link in a sentence' in line for line in found), found


def test_patient_pages_touch_targets(open_page: Callable[..., sync_api.Page]) -> None:
    walk = Walk()
    doctor_email = unique_email('touch-doctor')
    create_doctor_in_admin_panel(open_page(**DESKTOP), name='Dr. Touch Target', email=doctor_email)

    page = open_page(**PHONE)
    page.goto('/login')
    expect(page.get_by_label('Email')).to_be_visible()
    walk.check(page, 'sign-in')
    page.goto('/register')
    expect(page.get_by_text('Create a patient account')).to_be_visible()
    walk.check(page, 'register')
    register_patient(page, name='Tilda Touch', email=unique_email('touch'))
    expect(page.get_by_text('You have no examinations yet.')).to_be_visible()
    walk.check(page, 'examinations-empty')

    # The steps of the new-examination form.
    page.get_by_role('button', name='Start a new examination').click()
    page.wait_for_url('**/edit')
    expect(page.get_by_text('No images uploaded yet.')).to_be_visible()
    walk.check(page, 'form-images-empty')
    upload_images(page, [Path(get_testdata_file('CT_small.dcm'))])
    expect(page.get_by_text('1 DICOM image added.')).to_be_visible()
    page.get_by_text('First radiologist\'s report (optional)').click()
    expect(page.get_by_label('Text of the first report')).to_be_visible()
    walk.check(page, 'form-images')
    page.get_by_role('button', name='Continue to details').click()
    page.wait_for_url('**/edit?step=details')
    choose_modality(page, 'CT (computed tomography)')
    page.get_by_label('Body part').fill('Chest')
    page.get_by_label('Your question for the radiologist').fill('Is the touch nodule benign?')
    walk.check(page, 'form-details')
    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text('Is the touch nodule benign?')).to_be_visible()
    walk.check(page, 'form-review')
    page.get_by_role('button', name='Continue to payment').click()
    expect(page.get_by_role('button', name='Submit and pay')).to_be_visible()
    walk.check(page, 'form-payment')
    page.get_by_role('button', name='Submit and pay').click()
    page.wait_for_url('**/checkout/test/**')
    expect(page.get_by_text('TEST MODE', exact=False)).to_be_visible()
    walk.check(page, 'test-checkout')
    page.get_by_role('button', name='Pay (test)').click()
    page.wait_for_url('**/exams/*')
    expect(page.get_by_text('Waiting for a radiologist').first).to_be_visible()
    exam_url = page.url
    walk.check(page, 'examination-paid')
    page.goto('/exams')
    expect(page.get_by_text('CT Chest')).to_be_visible()
    walk.check(page, 'examinations')

    # A radiologist reports, and the patient reads the report, asks a question and shares the examination.
    doctor = open_page(**DESKTOP)
    sign_in(doctor, doctor_email)
    doctor.locator('.q-card', has_text='Is the touch nodule benign?').get_by_role('button', name='Accept').click()
    doctor.wait_for_url('**/doctor/cases/*')
    doctor.get_by_label('Findings').fill('A 6 mm solid nodule, smooth margins.')
    doctor.get_by_label('Impression').fill('Probably benign nodule.')
    doctor.get_by_role('button', name='Finalize report').click()
    doctor.get_by_role('button', name='Finalize and sign').click()
    expect(doctor.get_by_text('SHA-256 of the first PDF', exact=False)).to_be_visible()

    page.goto(exam_url)
    expect(page.get_by_text('Probably benign nodule.')).to_be_visible()
    walk.check(page, 'examination-report')
    page.get_by_label('Your question').fill('Do I need a follow-up scan?')
    page.get_by_role('button', name='Send question').click()
    expect(page.get_by_text('Waiting for the radiologist\'s answer.')).to_be_visible()
    page.get_by_label('For whom (optional)').fill('Dr. Meier')
    page.get_by_role('button', name='Create link').click()
    address = page.get_by_label('Share link').input_value()
    walk.check(page, 'examination-question-and-share')

    physician = open_page(**PHONE)
    physician.goto(address)
    expect(physician.get_by_role('button', name='Download the report (PDF)')).to_be_visible()
    walk.check(physician, 'shared-view')

    page.goto('/profile')
    expect(page.get_by_text('Two-step sign-in').first).to_be_visible()
    walk.check(page, 'profile')

    assert walk.pages == 15
    walk.assert_none()
