"""The report editor and the finalized report: templates, comparison, addenda, and the patient's timeline."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from secondopinion.services import examinations, reports
from tests.services.flow import paid

from .helpers import set_value, sign_in

SECTIONS = {'technique': 'Low-dose CT.', 'findings': 'A 6 mm nodule.', 'impression': 'Probably benign.',
            'recommendations': ''}


def _accepted(make_patient, make_doctor, prior_report: str = ''):  # noqa: ANN001, ANN202
    patient, doctor = make_patient('Alice', email='alice@example.org'), make_doctor(email='doctor@example.org')
    exam_id = paid(patient)
    if prior_report:
        from secondopinion import db
        from secondopinion.models import Examination
        with db.session_scope() as session:
            session.get(Examination, exam_id).prior_report_text = prior_report
    examinations.accept(actor=doctor, examination_id=exam_id)
    return patient, doctor, exam_id


async def test_template_fills_only_empty_sections(user: User, make_patient, make_doctor):
    _patient, doctor, exam_id = _accepted(make_patient, make_doctor)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    user.find(marker='findings').type('My own findings.')
    set_value(user, 'template', 'CT chest')
    user.find(marker='use-template').click()
    await user.should_see('Technique, Impression filled from the template "CT chest".')
    draft = reports.get_report(actor=doctor, examination_id=exam_id)
    assert draft.findings == 'My own findings.'
    assert draft.technique.startswith('Multidetector CT of the chest')
    await user.should_not_see(marker='comparison')


async def test_comparison_asked_when_first_report_given(user: User, make_patient, make_doctor):
    _patient, doctor, exam_id = _accepted(make_patient, make_doctor, prior_report='A 9 mm nodule.')
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see(marker='comparison')
    for name in ('technique', 'findings', 'impression'):
        user.find(marker=name).type(SECTIONS[name])
    user.find(marker='finalize').click()
    user.find(marker='confirm-finalize').click()
    await user.should_see('Choose whether your opinion agrees')
    set_value(user, 'comparison', 'disagrees')
    user.find(marker='comparison_note').type('I measure 6 mm.')
    user.find(marker='finalize').click()
    user.find(marker='confirm-finalize').click()
    await user.should_see(marker='final-comparison')
    await user.should_see('Disagrees with the first report. I measure 6 mm.')
    assert examinations.get_exam(actor=doctor, examination_id=exam_id).status in {'reported', 'completed'}


async def test_addendum_from_the_page_and_patient_view(user: User, create_user, make_patient, make_doctor):
    patient, doctor, exam_id = _accepted(make_patient, make_doctor)
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see(marker='addendum-form')
    user.find(marker='addendum-text').type('The nodule lies in segment 2.')
    user.find(marker='sign-addendum').click()
    user.find(marker='confirm-addendum').click()
    await user.should_see(marker='addendum-1')
    assert reports.get_report(actor=doctor, examination_id=exam_id).version == 2

    viewer = create_user()
    await sign_in(viewer, 'alice@example.org')
    await viewer.should_see('My examinations')
    await viewer.open(f'/exams/{exam_id}')
    await viewer.should_see("Radiologist's report (version 2)")
    await viewer.should_see('The nodule lies in segment 2.')
    await viewer.should_see(marker='report-version-1')
    await viewer.should_see(marker='timeline')
    entries = sorted(viewer.find(kind=ui.timeline_entry).elements, key=lambda entry: entry.id)  # page order
    titles = [entry.props['title'] for entry in entries]
    assert titles == ['Submitted', 'Paid', 'Accepted by a radiologist', 'Report signed', 'Addendum 1 signed']
    await viewer.should_not_see(marker='addendum-form')
    response = await viewer.http_client.get(f'/api/exams/{exam_id}/report.pdf?version=1')
    assert response.status_code == 200
    response = await viewer.http_client.get(f'/api/exams/{exam_id}/report.pdf?version=3')
    assert response.status_code == 404
