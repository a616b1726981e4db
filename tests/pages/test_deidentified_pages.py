"""The patient identity shown to a doctor in de-identified review, and the report's exchange downloads."""

from __future__ import annotations

import io
import json
import zipfile

import pydicom
from nicegui.testing import User

from secondopinion.services import examinations, payments, reports, review_policy, studies
from tests.services.dicom_files import pydicom_file
from tests.services.test_deidentified_review import burned_in_copy
from tests.services.test_report_pdf import PDFTOTEXT, pdf_text
from tests.services.test_viewer import QUESTION, paid_exam

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


# --- The patient's identity on the doctor's pages ------------------------------------------------------------------

PATIENT_NAME = 'Alice Patient'  # make_patient's default name
BIRTH_DATE = '1980-05-17'  # make_patient's date of birth


def _accepted_exam(admin, patient, doctor, files, *, deidentified: bool) -> str:
    exam_id = paid_exam(patient, files)
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=deidentified)
    examinations.accept(actor=doctor, examination_id=exam_id)
    return exam_id


async def test_case_page_shows_pseudonym(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [pydicom_file('CT_small.dcm')], deidentified=True)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')

    await user.should_see(review_policy.pseudonym(exam_id))
    await user.should_see('Age')
    await user.should_see('other')  # CT_small.dcm records the sex O
    await user.should_see(QUESTION)
    await user.should_not_see(PATIENT_NAME)
    await user.should_not_see(BIRTH_DATE)


async def test_case_page_shows_name_when_off(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [pydicom_file('CT_small.dcm')], deidentified=False)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')

    await user.should_see(PATIENT_NAME)
    await user.should_see(BIRTH_DATE)
    await user.should_not_see(review_policy.pseudonym(exam_id))


async def test_case_list_shows_pseudonym(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [pydicom_file('CT_small.dcm')], deidentified=True)
    await sign_in(user, 'doctor@example.org')
    await user.open('/doctor/cases')
    await user.should_see(marker=f'case-{exam_id}')

    await user.should_see(review_policy.pseudonym(exam_id))
    await user.should_not_see(PATIENT_NAME)


async def test_board_card_hides_name(user: User, admin, make_patient, make_doctor):
    make_doctor(email='doctor@example.org')
    exam_id = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    review_policy.set_global_default(actor=admin, enabled=True)
    await sign_in(user, 'doctor@example.org')
    await user.open('/doctor')
    await user.should_see(QUESTION)

    await user.should_not_see(PATIENT_NAME)
    await user.should_not_see(BIRTH_DATE)
    assert exam_id


async def test_report_copy_and_exports_on_case_page(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [pydicom_file('CT_small.dcm')], deidentified=True)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Normal.', impression='No nodule.',
                     recommendations='')
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see(marker='download-report')

    await user.should_see(marker='exports-withheld')
    await user.should_not_see(marker='download-report-dicom')
    await user.should_not_see(marker='download-report-fhir')
    assert (await user.http_client.get(f'/api/exams/{exam_id}/report.dcm')).status_code == 404
    assert (await user.http_client.get(f'/api/exams/{exam_id}/report.fhir.json')).status_code == 404
    pdf = await user.http_client.get(f'/api/exams/{exam_id}/report.pdf')
    assert pdf.status_code == 200
    if PDFTOTEXT is not None:
        text = pdf_text(pdf.content)
        assert review_policy.pseudonym(exam_id) in text
        assert PATIENT_NAME not in text


async def test_patient_report_keeps_name(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor()
    make_patient(email='pat@example.org')
    patient = make_patient(email='pat2@example.org')
    exam_id = _accepted_exam(admin, patient, doctor, [pydicom_file('CT_small.dcm')], deidentified=True)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Normal.', impression='No nodule.',
                     recommendations='')
    await sign_in(user, 'pat2@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see(marker='download-report-dicom')

    pdf = await user.http_client.get(f'/api/exams/{exam_id}/report.pdf')
    assert pdf.status_code == 200
    if PDFTOTEXT is not None:
        text = pdf_text(pdf.content)
        assert PATIENT_NAME in text
        assert BIRTH_DATE in text


async def test_prior_reports_hidden_on_case_page(user: User, admin, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    prior = tmp_path / 'upload'
    prior.write_bytes(b'%PDF-1.4\n% first report of Alice Patient\n' + b'x' * 200)
    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename='first report.pdf', path=prior)
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[('CT_small.dcm', pydicom_file('CT_small.dcm'))])
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question=QUESTION)
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)
    examinations.accept(actor=doctor, examination_id=exam_id)
    file_id = studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports[0].id
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')

    await user.should_see(marker='prior-reports-withheld')
    await user.should_see('Prior reports are hidden in de-identified review')
    await user.should_not_see(marker='prior-report-file')
    response = await user.http_client.get(f'/api/exams/{exam_id}/prior-report/{file_id}')
    assert response.status_code == 404


async def test_burned_in_series_flagged(user: User, admin, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [burned_in_copy(tmp_path)], deidentified=True)
    series_id = studies.get_study_summary(actor=doctor, examination_id=exam_id).studies[0].series[0].id
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')

    await user.should_see(marker='burned-in-warning')
    await user.should_see(marker=f'burned-in-{series_id}')
    archive = zipfile.ZipFile(io.BytesIO((await user.http_client.get(f'/api/exams/{exam_id}/images.zip')).content))
    assert studies.BURNED_IN_LIST_NAME in archive.namelist()


async def test_viewer_warns_of_burned_in_text(user: User, admin, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [burned_in_copy(tmp_path)], deidentified=True)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see(marker='image-information')

    await user.should_see(marker='viewer-burned-in-warning')


async def test_viewer_no_warning_when_off(user: User, admin, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = _accepted_exam(admin, make_patient(), doctor, [burned_in_copy(tmp_path)], deidentified=False)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see(marker='image-information')

    await user.should_not_see(marker='viewer-burned-in-warning')
