"""Access control by page and by URL: each person reaches only their own data."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import User
from pydicom.data import get_testdata_file

from secondopinion.services import examinations, reports, studies
from tests.services.flow import paid

from .helpers import open_page, sign_in

QUESTION = 'Is the nodule in the right upper lobe benign?'
REPORT = {'findings': 'Solid nodule, 6 mm.', 'impression': 'Probably benign.', 'recommendations': ''}


def _paid_with_image(patient) -> str:  # noqa: ANN001
    exam_id = examinations.create_draft(actor=patient)
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[('CT_small.dcm', Path(get_testdata_file('CT_small.dcm')))])
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question=QUESTION)
    examinations.submit(actor=patient, examination_id=exam_id)
    from secondopinion.services import payments
    ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=patient, provider_ref=ref)
    return exam_id


def _api_paths(exam_id: str, series_id: int) -> list[str]:
    return [f'/api/exams/{exam_id}/images.zip', f'/api/exams/{exam_id}/report.pdf',
            f'/api/exams/{exam_id}/series/{series_id}/thumbnail.png']


def _series_id(actor, exam_id: str) -> int:  # noqa: ANN001
    summary = studies.get_study_summary(actor=actor, examination_id=exam_id)
    return summary.studies[0].series[0].id


async def test_anonymous_sent_to_sign_in(user: User):
    for path in ('/exams', '/exams/new', '/doctor', '/doctor/cases', '/admin'):
        await user.open(path)
        await user.should_see(marker='sign-in')


async def test_anonymous_api_not_found(user: User, make_patient, make_doctor):
    alice, doctor = make_patient('Alice'), make_doctor()
    exam_id = _paid_with_image(alice)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    for path in _api_paths(exam_id, _series_id(alice, exam_id)):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path


async def test_other_patient_sees_nothing(user: User, make_patient, make_doctor):
    alice = make_patient('Alice', email='alice@example.org')
    make_patient('Bob', email='bob@example.org')
    doctor = make_doctor()
    exam_id = _paid_with_image(alice)
    series_id = _series_id(alice, exam_id)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)

    await sign_in(user, 'bob@example.org')
    await user.should_see('You have no examinations yet.')
    for path in (f'/exams/{exam_id}', f'/exams/{exam_id}/edit', f'/doctor/cases/{exam_id}'):
        assert (await open_page(user, path)).status == 404, path
        await user.should_see(marker='not-found')
        await user.should_not_see(QUESTION)
        await user.should_not_see('Probably benign.')
    for path in _api_paths(exam_id, series_id):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path
        assert b'benign' not in response.content


async def test_owner_downloads_own_files(user: User, make_patient, make_doctor):
    alice, doctor = make_patient('Alice', email='alice@example.org'), make_doctor()
    exam_id = _paid_with_image(alice)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    for path, content_type in zip(_api_paths(exam_id, _series_id(alice, exam_id)),
                                  ('application/zip', 'application/pdf', 'image/png'), strict=True):
        response = await user.http_client.get(path)
        assert response.status_code == 200, path
        assert response.headers['content-type'].startswith(content_type)


async def test_patient_cannot_open_staff_pages(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    paid(alice)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    for path in ('/doctor', '/doctor/cases', '/admin'):
        assert (await open_page(user, path)).status == 404, path
        await user.should_see(marker='not-found')
        await user.should_not_see('Pending examinations')
        await user.should_not_see('Admin panel')


async def test_doctor_cannot_open_admin_or_others_cases(user: User, make_patient, make_doctor):
    alice = make_patient('Alice')
    owner = make_doctor(email='owner@example.org')
    make_doctor(email='other@example.org')
    exam_id = _paid_with_image(alice)
    series_id = _series_id(alice, exam_id)
    examinations.accept(actor=owner, examination_id=exam_id)

    await sign_in(user, 'other@example.org')
    await user.should_see(marker='board-empty')
    assert (await open_page(user, '/admin')).status == 404
    await user.should_see(marker='not-found')
    assert (await open_page(user, f'/doctor/cases/{exam_id}')).status == 404
    await user.should_see(marker='not-found')
    await user.should_not_see(QUESTION)
    assert (await open_page(user, f'/exams/{exam_id}')).status == 404
    await user.should_see(marker='not-found')
    for path in _api_paths(exam_id, series_id):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path


async def test_doctor_previews_pending_images(user: User, make_patient, make_doctor):
    alice = make_patient('Alice')
    make_doctor(email='doctor@example.org')
    exam_id = _paid_with_image(alice)
    await sign_in(user, 'doctor@example.org')
    await user.should_see(QUESTION)
    response = await user.http_client.get(f'/api/exams/{exam_id}/series/{_series_id(alice, exam_id)}/thumbnail.png')
    assert response.status_code == 200
    response = await user.http_client.get(f'/api/exams/{exam_id}/report.pdf')
    assert response.status_code == 404


async def test_deactivated_doctor_signed_out(user: User, admin, make_patient, make_doctor):
    from secondopinion.services import accounts

    doctor = make_doctor(email='doctor@example.org')
    await sign_in(user, 'doctor@example.org')
    await user.should_see(marker='board-empty')
    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    await user.open('/doctor')
    await user.should_see(marker='sign-in')
    await sign_in(user, 'doctor@example.org')
    await user.should_see('This account is deactivated')
