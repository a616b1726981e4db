"""The patient identity shown to a doctor in de-identified review, and the report's exchange downloads."""

from __future__ import annotations

import io
import json

import pydicom
from nicegui.testing import User

from secondopinion.services import examinations, reports, review_policy
from tests.services.dicom_files import pydicom_file
from tests.services.test_viewer import paid_exam

from .helpers import sign_in

# The name that CT_small.dcm carries, as the study summary formats it.
FILE_PATIENT = 'CompressedSamples'


async def test_viewer_header_shows_name_by_default(user: User, make_patient, make_doctor):
    make_doctor(email='doctor@example.org')
    exam_id = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see(marker='image-information')

    await user.should_see(FILE_PATIENT)


async def test_viewer_header_hides_name_when_deidentified(user: User, admin, make_patient, make_doctor):
    make_doctor(email='doctor@example.org')
    exam_id = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see(marker='image-information')

    await user.should_see('Identity removed')
    await user.should_not_see(FILE_PATIENT)


async def test_review_page_notes_deidentified(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    review_policy.set_global_default(actor=admin, enabled=True)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')

    await user.should_see(marker='deidentified')
    await user.should_not_see(FILE_PATIENT)


async def test_patient_downloads_exchange_formats(user: User, make_patient, make_doctor):
    patient = make_patient(email='pat@example.org')
    doctor = make_doctor()
    exam_id = paid_exam(patient, [pydicom_file('CT_small.dcm')])
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Normal.', impression='No nodule.',
                     recommendations='')
    await sign_in(user, 'pat@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see(marker='download-report-dicom')
    await user.should_see(marker='download-report-fhir')

    dicom = await user.http_client.get(f'/api/exams/{exam_id}/report.dcm')
    fhir = await user.http_client.get(f'/api/exams/{exam_id}/report.fhir.json')

    assert dicom.status_code == 200
    assert dicom.headers['content-type'] == 'application/dicom'
    assert pydicom.dcmread(io.BytesIO(dicom.content)).MIMETypeOfEncapsulatedDocument == 'application/pdf'
    assert fhir.status_code == 200
    assert json.loads(fhir.content)['resourceType'] == 'DiagnosticReport'
