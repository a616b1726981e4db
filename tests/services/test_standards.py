"""The report as an encapsulated-PDF DICOM object and as a FHIR R4 DiagnosticReport."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from secondopinion.services import examinations, payments, reports, standards, studies
from secondopinion.services.errors import NotFoundError
from secondopinion.services.storage import get_storage
from tests.services.flow import paid

REPORT = {'findings': 'Solid nodule, 6 mm, right upper lobe.', 'impression': 'Probably benign; follow-up in 12 months.',
          'recommendations': 'CT in 12 months.'}


@pytest.fixture
def patient(make_patient):
    return make_patient('Zoë Ångström')


@pytest.fixture
def doctor(make_doctor):
    return make_doctor('Dr. Ines Radiologist')


def _reported(patient, doctor, *, with_image: bool = True) -> str:
    if with_image:
        exam_id = examinations.create_draft(actor=patient)
        examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                    clinical_question='Is it benign?')
        studies.add_files(actor=patient, examination_id=exam_id,
                          files=[('CT_small.dcm', Path(get_testdata_file('CT_small.dcm')))])
        examinations.submit(actor=patient, examination_id=exam_id)
        url = payments.start_checkout(actor=patient, examination_id=exam_id)
        payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    else:
        exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return exam_id


def _pdf(actor, exam_id: str) -> bytes:
    _name, chunks = reports.open_report_pdf(actor=actor, examination_id=exam_id)
    return b''.join(chunks)


def test_dicom_report_reads_back(patient, doctor):
    exam_id = _reported(patient, doctor)
    study = pydicom.dcmread(get_testdata_file('CT_small.dcm'))

    name, data = standards.export_report_dicom(actor=patient, examination_id=exam_id)
    dataset = pydicom.dcmread(io.BytesIO(data))

    assert name.endswith('.dcm')
    assert dataset.file_meta.MediaStorageSOPClassUID == standards.ENCAPSULATED_PDF_STORAGE
    assert dataset.SOPClassUID == '1.2.840.10008.5.1.4.1.1.104.1'
    assert dataset.MIMETypeOfEncapsulatedDocument == 'application/pdf'
    assert dataset.DocumentTitle
    assert dataset.ConceptNameCodeSequence[0].CodeValue == '18748-4'
    assert dataset.ConceptNameCodeSequence[0].CodingSchemeDesignator == 'LN'
    assert standards.pdf_from_dataset(dataset) == _pdf(patient, exam_id)
    assert dataset.StudyInstanceUID == study.StudyInstanceUID
    assert dataset.SeriesInstanceUID != study.SeriesInstanceUID
    assert dataset.PatientName == study.PatientName
    assert dataset.PatientID == study.PatientID
    assert dataset.Modality == 'DOC'


def test_dicom_report_same_uids_twice(patient, doctor):
    exam_id = _reported(patient, doctor)

    first = pydicom.dcmread(io.BytesIO(standards.export_report_dicom(actor=patient, examination_id=exam_id)[1]))
    second = pydicom.dcmread(io.BytesIO(standards.export_report_dicom(actor=doctor, examination_id=exam_id)[1]))

    assert first.SOPInstanceUID == second.SOPInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID


def test_dicom_report_after_addendum(patient, doctor):
    exam_id = _reported(patient, doctor)
    first = pydicom.dcmread(io.BytesIO(standards.export_report_dicom(actor=patient, examination_id=exam_id)[1]))
    reports.add_addendum(actor=doctor, examination_id=exam_id, text='The nodule is calcified.')

    second = pydicom.dcmread(io.BytesIO(standards.export_report_dicom(actor=patient, examination_id=exam_id)[1]))

    assert second.InstanceNumber == 2
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert standards.pdf_from_dataset(second) == _pdf(patient, exam_id)


def test_dicom_report_without_images(patient, doctor):
    exam_id = _reported(patient, doctor, with_image=False)

    dataset = pydicom.dcmread(io.BytesIO(standards.export_report_dicom(actor=patient, examination_id=exam_id)[1]))

    assert str(dataset.StudyInstanceUID).startswith('2.25.')
    assert str(dataset.PatientName) == 'Zoë Ångström'
    assert dataset.PatientBirthDate == '19800517'


# The elements FHIR R4 marks as required (1..1) in DiagnosticReport, and those this export promises.
REQUIRED = ('resourceType', 'status', 'code')
PROMISED = ('subject', 'effectiveDateTime', 'issued', 'performer', 'conclusion', 'presentedForm', 'imagingStudy')
R4_STATUSES = {'registered', 'partial', 'preliminary', 'final', 'amended', 'corrected', 'appended', 'cancelled',
               'entered-in-error', 'unknown'}


def _check_diagnostic_report(resource: dict) -> list[str]:
    """Return the problems of a DiagnosticReport against the R4 rules this export relies on."""
    problems = [f'{name} is missing' for name in (*REQUIRED, *PROMISED) if not resource.get(name)]
    if resource.get('resourceType') != 'DiagnosticReport':
        problems.append('resourceType is not DiagnosticReport')
    if resource.get('status') not in R4_STATUSES:
        problems.append(f'status {resource.get("status")!r} is not an R4 report status')
    codings = resource.get('code', {}).get('coding', [])
    if not all(coding.get('system') and coding.get('code') for coding in codings):
        problems.append('a code coding lacks system or code')
    subject = resource.get('subject', {})
    if not any(subject.get(key) for key in ('reference', 'identifier', 'display')):
        problems.append('subject has neither reference, identifier nor display')
    for attachment in resource.get('presentedForm', []):
        if not attachment.get('contentType'):
            problems.append('presentedForm lacks contentType')
        if not attachment.get('data') and not attachment.get('url'):
            problems.append('presentedForm has neither data nor url')
    return problems


def test_fhir_report_fields(patient, doctor):
    exam_id = _reported(patient, doctor)

    name, data = standards.export_report_fhir(actor=patient, examination_id=exam_id)
    resource = json.loads(data)

    assert name.endswith('.fhir.json')
    assert _check_diagnostic_report(resource) == []
    assert resource['status'] == 'final'
    assert resource['code']['coding'][0] == {'system': 'http://loinc.org', 'code': '18748-4',
                                             'display': 'Diagnostic imaging study'}
    assert resource['subject']['display'] == 'Zoë Ångström'
    assert resource['conclusion'] == REPORT['impression']
    assert base64.b64decode(resource['presentedForm'][0]['data']) == _pdf(patient, exam_id)
    study_uid = pydicom.dcmread(get_testdata_file('CT_small.dcm')).StudyInstanceUID
    assert resource['imagingStudy'][0]['identifier'] == {'system': 'urn:dicom:uid', 'value': f'urn:oid:{study_uid}'}
    assert resource['effectiveDateTime'] == '2004-01-19'


def test_fhir_report_validates_with_fhir_resources(patient, doctor):
    r4b = pytest.importorskip('fhir.resources.R4B.diagnosticreport')
    exam_id = _reported(patient, doctor)

    resource = json.loads(standards.export_report_fhir(actor=patient, examination_id=exam_id)[1])
    report = r4b.DiagnosticReport.model_validate(resource)

    assert report.status == 'final'
    assert report.code.coding[0].code == '18748-4'


def test_checker_finds_missing_fields():
    assert 'status is missing' in _check_diagnostic_report({'resourceType': 'DiagnosticReport', 'code': {}})


def test_export_access(patient, doctor, make_patient, make_doctor, admin):
    exam_id = _reported(patient, doctor)
    other_patient = make_patient('Mallory Other')
    other_doctor = make_doctor('Dr. Other')

    for actor in (other_patient, other_doctor):
        with pytest.raises(NotFoundError):
            standards.export_report_dicom(actor=actor, examination_id=exam_id)
        with pytest.raises(NotFoundError):
            standards.export_report_fhir(actor=actor, examination_id=exam_id)
    assert standards.export_report_fhir(actor=admin, examination_id=exam_id)[1]


def test_export_needs_final_report(patient, doctor):
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)

    with pytest.raises(NotFoundError):
        standards.export_report_dicom(actor=doctor, examination_id=exam_id)


def test_missing_pdf_blob_is_not_found(patient, doctor):
    exam_id = _reported(patient, doctor)
    for key in [key for key in _report_keys(exam_id)]:
        get_storage().delete(key)

    with pytest.raises(NotFoundError):
        standards.export_report_fhir(actor=patient, examination_id=exam_id)


def _report_keys(exam_id: str) -> list[str]:
    from sqlalchemy import select

    from secondopinion.db import session_scope
    from secondopinion.models import Report

    with session_scope() as session:
        return [key for key in session.scalars(select(Report.pdf_key).where(Report.examination_id == exam_id)) if key]
