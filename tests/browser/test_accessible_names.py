"""Every control on every page has an accessible name, for each role, as Chromium's accessibility tree computes it.

Screen readers announce a control by this name, and tests find controls by it (`get_by_label`, `get_by_role`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    DESKTOP,
    PHONE,
    choose_modality,
    create_doctor_in_admin_panel,
    register_patient,
    sign_in,
    unique_email,
    upload_images,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# Roles of the controls that a person operates, each of which needs an accessible name.
CONTROL_ROLES = {'button', 'checkbox', 'combobox', 'link', 'listbox', 'menuitem', 'radio', 'searchbox', 'slider',
                 'spinbutton', 'switch', 'tab', 'textbox'}
# The zone that the patient's browser reports. The examination page must show its times in this zone.
PATIENT_ZONE = 'Asia/Tokyo'


# Function that returns true when the element's name is only the ligature text of its icons, such as "chevron_left".
ICON_ONLY_NAME_JS = """function (name) {
    const icons = [...this.querySelectorAll('i')].map(icon => icon.textContent.trim()).filter(Boolean);
    return icons.length > 0 && icons.join(' ') === name.trim();
}"""


def unnamed_controls(page: sync_api.Page) -> list[str]:
    """Return the HTML of each control shown on the page without a real accessible name.

    Chromium computes the names from labels, aria-label, aria-labelledby, text content and title, as a
    screen reader receives them. Controls that are hidden (display: none, aria-hidden) are not in the tree.
    A name that is only the ligature text of a Material icon ("delete") counts as missing.
    """
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send('Accessibility.getFullAXTree')['nodes']
        found = []
        for node in nodes:
            role = node.get('role', {}).get('value')
            if node.get('ignored') or role not in CONTROL_ROLES or 'backendDOMNodeId' not in node:
                continue
            name = str(node.get('name', {}).get('value', '')).strip()
            if name and not _named_by_icon_only(session, node['backendDOMNodeId'], name):
                continue
            html = session.send('DOM.getOuterHTML', {'backendNodeId': node['backendDOMNodeId']})['outerHTML']
            found.append(f'{role} named "{name}": {html[:240]}')
        return found
    finally:
        session.detach()


def _named_by_icon_only(session: sync_api.CDPSession, backend_node_id: int, name: str) -> bool:
    element = session.send('DOM.resolveNode', {'backendNodeId': backend_node_id})['object']
    result = session.send('Runtime.callFunctionOn', {
        'objectId': element['objectId'], 'functionDeclaration': ICON_ONLY_NAME_JS,
        'arguments': [{'value': name}], 'returnByValue': True})
    return bool(result['result'].get('value'))


class Findings:
    """Unnamed controls by page, collected over a whole walk so one run reports all of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pages = 0

    def check(self, page: sync_api.Page, where: str) -> None:
        self.pages += 1
        self.lines.extend(f'{where} ({page.url}): {control}' for control in unnamed_controls(page))

    def visit(self, page: sync_api.Page, path: str, where: str, ready: str | re.Pattern[str] | None = None) -> None:
        """Open `path`, wait until the text `ready` shows (or until no request is open), and check the page."""
        page.goto(path)
        if ready is None:
            # A loaded machine takes several seconds to fetch NiceGUI's scripts and fonts.
            page.wait_for_load_state('networkidle', timeout=30_000)
        else:
            expect(page.get_by_text(ready).first).to_be_visible()
        self.check(page, where)

    def assert_none(self) -> None:
        assert not self.lines, 'Controls without an accessible name:\n' + '\n'.join(self.lines)


def test_unnamed_controls_detected(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP)
    page.goto('/login')
    expect(page.get_by_label('Email')).to_be_visible()
    page.evaluate("""() => {
        const button = document.createElement('button');
        button.innerHTML = '<i class="material-icons">delete</i>';
        button.id = 'icon-only';
        const input = document.createElement('input');
        input.id = 'no-label';
        document.body.append(button, input);
    }""")
    found = unnamed_controls(page)
    assert any('id="icon-only"' in line for line in found), found
    assert any('id="no-label"' in line for line in found), found
    page.evaluate("document.getElementById('icon-only').setAttribute('aria-label', 'Delete')")
    page.evaluate("document.getElementById('no-label').setAttribute('aria-label', 'Name')")
    assert unnamed_controls(page) == []


def test_signed_out_pages_name_every_control(open_page: Callable[..., sync_api.Page]) -> None:
    findings = Findings()
    for options in (DESKTOP, PHONE):
        page = open_page(**options)
        device = 'phone' if options is PHONE else 'desktop'
        for path in ('/', '/login', '/register', '/forgot-password', '/reset-password?token=unknown',
                     '/verify-email?token=unknown', '/invite?token=unknown', '/account-deleted', '/offline'):
            findings.visit(page, path, f'signed out, {device}')
    findings.assert_none()


def test_signed_in_pages_name_every_control(open_page: Callable[..., sync_api.Page]) -> None:
    findings = Findings()
    doctor_email = unique_email('named-doctor')
    admin = open_page(**DESKTOP)
    create_doctor_in_admin_panel(admin, name='Dr. Named Controls', email=doctor_email)

    # The patient: a paid examination for the doctor, and one left at the test checkout.
    patient = open_page(**DESKTOP, timezone_id=PATIENT_ZONE)
    patient.goto('/register')
    register_patient(patient, name='Nina Named', email=unique_email('named-patient'))
    findings.check(patient, 'patient, no examinations')
    image = Path(get_testdata_file('CT_small.dcm'))
    paid_id = _request_examination(patient, image, 'Is the named nodule benign?', findings)
    patient.get_by_role('button', name='Pay (test)').click()
    patient.wait_for_url(f'**/exams/{paid_id}')
    expect(patient.get_by_text('Waiting for a radiologist').first).to_be_visible()
    findings.check(patient, 'patient, paid examination')
    expect(patient.get_by_text(f'({PATIENT_ZONE})').first).to_be_visible()
    _request_examination(patient, image, 'Is the second nodule benign?', findings)
    findings.visit(patient, '/exams', 'patient, examination list', 'Awaiting payment')
    findings.visit(patient, '/profile', 'patient, profile', 'Two-step sign-in')
    patient.get_by_role('button', name='Delete my account').click()
    expect(patient.get_by_text('Delete your account?')).to_be_visible()
    findings.check(patient, 'patient, account deletion dialog')
    patient.keyboard.press('Escape')
    expect(patient.get_by_text('Delete your account?')).to_be_hidden()
    patient.get_by_role('button', name='Set up two-step sign-in').click()
    expect(patient.get_by_role('button', name='Turn on')).to_be_visible()
    findings.check(patient, 'patient, two-step sign-in set-up')

    # The doctor accepts the case and opens it and its viewer.
    doctor = open_page(**DESKTOP)
    sign_in(doctor, doctor_email)
    doctor.wait_for_url('**/doctor')
    card = doctor.locator('.q-card', has_text='Is the named nodule benign?')
    expect(card).to_be_visible()
    findings.check(doctor, 'doctor, board')
    card.get_by_role('button', name='Accept').click()
    doctor.wait_for_url(f'**/doctor/cases/{paid_id}')
    expect(doctor.get_by_text('Patient and request')).to_be_visible()
    findings.check(doctor, 'doctor, review page')
    doctor.get_by_role('button', name='Finalize report').click()
    expect(doctor.get_by_role('button', name='Keep editing')).to_be_visible()
    findings.check(doctor, 'doctor, finalize dialog')
    doctor.get_by_role('button', name='Keep editing').click()
    findings.visit(doctor, f'/doctor/cases/{paid_id}/viewer', 'doctor, viewer')
    findings.visit(doctor, '/doctor/cases', 'doctor, my cases', 'Earnings')
    findings.visit(doctor, '/profile', 'doctor, profile', 'Two-step sign-in')

    # The admin, still signed in: every tab of the panel, an examination, the profile.
    admin.goto('/admin')
    for tab in ('Doctors', 'Patients', 'Examinations', 'Incomes', 'Notifications', 'Audit log', 'Two-step sign-in'):
        admin.get_by_role('tab', name=tab).click()
        expect(admin.locator('.q-tab-panel').first).to_be_visible()
        admin.wait_for_timeout(300)
        findings.check(admin, f'admin, {tab} tab')
    admin.get_by_role('tab', name='Doctors').click()
    admin.get_by_text('Create a doctor account').click()
    expect(admin.get_by_label('License number')).to_be_visible()
    findings.check(admin, 'admin, create doctor form')
    findings.visit(admin, f'/exams/{paid_id}', 'admin, examination', 'Under review')
    findings.visit(admin, '/profile', 'admin, profile', 'Two-step sign-in')

    # The same pages at phone size, where the header shows icon buttons.
    phone = open_page(**PHONE)
    sign_in(phone, doctor_email)
    phone.wait_for_url('**/doctor')
    findings.check(phone, 'doctor on a phone, board')
    findings.visit(phone, '/doctor/cases', 'doctor on a phone, my cases', 'Earnings')

    assert findings.pages >= 20
    findings.assert_none()


def _request_examination(page: sync_api.Page, image: Path, question: str, findings: Findings) -> str:
    """Fill a new examination as the signed-in patient and submit it; stop at the test checkout, checked."""
    page.goto('/exams/new')
    page.wait_for_url('**/edit')
    expect(page.get_by_text('No images uploaded yet.')).to_be_visible()
    findings.check(page, 'patient, new examination')
    upload_images(page, [image])
    expect(page.get_by_text('1 DICOM image added')).to_be_visible()
    page.get_by_role('button', name='Continue to details').click()
    choose_modality(page, 'CT (computed tomography)')
    page.get_by_label('Body part').fill('Chest')
    page.get_by_label('Your question for the radiologist').fill(question)
    findings.check(page, 'patient, filled examination form')
    exam_id = page.url.split('?', 1)[0].rsplit('/', 2)[1]
    page.get_by_role('button', name='Continue to review').click()
    expect(page.get_by_text(question)).to_be_visible()
    findings.check(page, 'patient, examination review')
    page.get_by_role('button', name='Continue to payment').click()
    findings.check(page, 'patient, examination payment step')
    page.get_by_role('button', name='Submit and pay').click()
    page.wait_for_url('**/checkout/test/**')
    expect(page.get_by_text('TEST MODE')).to_be_visible()
    findings.check(page, 'patient, test checkout')
    return exam_id
