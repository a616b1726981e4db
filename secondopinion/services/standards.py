"""The finalized report in exchange formats: an encapsulated-PDF DICOM object and a FHIR R4 DiagnosticReport.

The DICOM object joins the patient's own study (same StudyInstanceUID and patient module, a new
series), so a PACS or viewer shows the report beside the images. Both formats carry the latest
signed PDF version. Their UIDs and ids derive from the examination and the version, so exporting
the same version twice gives the same object, which a PACS stores once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import Doctor, Examination, Patient, Report, ReportAddendum, Role, Series, Study, StudyFile
from . import audit, review_policy
from .access import deny, get_visible_exam
from .actors import Actor
from .deidentify import uid_mapper
from .errors import NotFoundError
from .storage import get_storage

logger = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = '1.2.840.10008.5.1.4.1.1.104.1'
LOINC_SYSTEM = 'http://loinc.org'
# LOINC 18748-4 is the document type of a diagnostic imaging report.
REPORT_CODE = ('18748-4', 'Diagnostic imaging study')
REPORT_SERIES_NUMBER = 9901  # high, so the report series sorts after the image series in viewers
DOCUMENT_TITLE = 'Second opinion radiology report'
# The patient module: copied from the study so that the PACS files the report with that patient.
PATIENT_KEYWORDS = ('PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex',
                    'OtherPatientIDsSequence')
STUDY_KEYWORDS = ('StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID',
                  'AccessionNumber', 'StudyDescription', 'PatientAge')
DICOM_UID_SYSTEM = 'urn:dicom:uid'


@dataclass(frozen=True)
class ReportExport:
    """The report data that both formats need, read in one transaction."""

    examination_id: str
    version: int
    pdf: bytes
    signed_at: dt.datetime
    doctor_name: str
    doctor_license: str
    impression: str
    modality: str
    body_part: str
    patient_id: int
    patient_name: str
    patient_birth_date: dt.date
    study_header: Dataset | None  # the patient and study modules of the first image, None without images
    submitted_at: dt.datetime | None


def export_report_dicom(*, actor: Actor, examination_id: str) -> tuple[str, bytes]:
    """Return the file name and bytes of the report as an encapsulated-PDF DICOM file (Part 10)."""
    export = _load(actor, examination_id, 'dicom')
    dataset = encapsulated_pdf(export)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    logger.info('examination %s: report version %s exported as DICOM for user %s', examination_id,
                export.version, actor.user_id)
    return f'second-opinion-report-{examination_id[:8]}-v{export.version}.dcm', buffer.getvalue()


def export_report_fhir(*, actor: Actor, examination_id: str) -> tuple[str, bytes]:
    """Return the file name and UTF-8 JSON of the report as a FHIR R4 DiagnosticReport."""
    export = _load(actor, examination_id, 'fhir')
    resource = diagnostic_report(export)
    logger.info('examination %s: report version %s exported as FHIR for user %s', examination_id,
                export.version, actor.user_id)
    data = json.dumps(resource, ensure_ascii=False, indent=2).encode()
    return f'second-opinion-report-{examination_id[:8]}-v{export.version}.fhir.json', data


def load_export(session: Session, exam: Examination) -> ReportExport:
    """Read the latest signed PDF version of the examination's report and the data both formats carry.

    Raises NotFoundError when the report is not final.
    """
    report = session.scalar(select(Report).where(Report.examination_id == exam.id))
    if report is None or not report.is_final or not report.pdf_key or report.finalized_at is None:
        raise NotFoundError('Report')
    latest = session.scalar(select(ReportAddendum).where(ReportAddendum.report_id == report.id)
                            .order_by(ReportAddendum.number.desc()).limit(1))
    key = latest.pdf_key if latest else report.pdf_key
    signed_at = latest.signed_at if latest else report.finalized_at
    version = 1 + (latest.number if latest else 0)
    patient = session.get(Patient, exam.patient_id)
    doctor = session.get(Doctor, report.doctor_id)
    assert patient is not None and doctor is not None
    try:
        pdf = b''.join(get_storage().iter_chunks(key))
    except FileNotFoundError:
        logger.error('examination %s: report PDF blob %s is missing, so the report cannot be exported', exam.id, key)
        raise NotFoundError('Report') from None
    return ReportExport(
        examination_id=exam.id, version=version, pdf=pdf, signed_at=signed_at,
        doctor_name=doctor.user.full_name, doctor_license=doctor.license_number, impression=report.impression,
        modality=exam.modality, body_part=exam.body_part, patient_id=patient.id,
        patient_name=patient.user.full_name, patient_birth_date=patient.date_of_birth,
        study_header=_study_header(session, exam.id), submitted_at=exam.submitted_at)


def _load(actor: Actor, examination_id: str, export_format: str) -> ReportExport:
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            raise deny(session, actor, exam, 'only the accepting doctor may export the report')
        if review_policy.applies(session, actor, exam):
            # Both formats carry the patient's name and birth date, in the header and in the signed PDF.
            raise deny(session, actor, exam, 'report exports carry the patient identity, withheld in de-identified '
                                             'review')
        export = load_export(session, exam)
        audit.record(session, actor, 'report.exported', 'examination', exam.id, format=export_format,
                     version=export.version)
    return export


def _study_header(session: Session, examination_id: str) -> Dataset | None:
    """Return the header of the first image of the examination's earliest study, without pixel data."""
    key = session.scalar(
        select(StudyFile.storage_key)
        .join(Series, StudyFile.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .where(StudyFile.examination_id == examination_id, StudyFile.kind == 'dicom')
        .order_by(Study.study_date, Study.id, Series.number, StudyFile.instance_number, StudyFile.id).limit(1))
    if key is None:
        return None
    try:
        with get_storage().open(key) as file:
            return pydicom.dcmread(file, stop_before_pixels=True, force=True)
    except FileNotFoundError:
        logger.error('examination %s: blob %s is missing, so the report export has no study header',
                     examination_id, key)
        return None


def _uid(export: ReportExport, purpose: str) -> str:
    secret = get_settings().storage_secret.get_secret_value().encode()
    return uid_mapper(secret, f'report:{export.examination_id}')(f'{purpose}:{export.version}')


# --- DICOM ---------------------------------------------------------------------------------------------------


def encapsulated_pdf(export: ReportExport) -> Dataset:
    """Build the Encapsulated PDF IOD (PS3.3 A.45.1) in the patient's study, with a new series."""
    dataset = Dataset()
    header = export.study_header
    if header is not None:
        for keyword in (*PATIENT_KEYWORDS, *STUDY_KEYWORDS):
            if keyword in header:
                dataset[keyword] = header[keyword]
    if 'StudyInstanceUID' not in dataset:
        # A case with only links to images: the report starts a study of its own.
        dataset.StudyInstanceUID = _uid(export, 'study')
        dataset.PatientName = export.patient_name
        dataset.PatientID = f'SECONDOPINION-{export.patient_id}'
        dataset.PatientBirthDate = export.patient_birth_date.strftime('%Y%m%d')
        dataset.StudyDate = _dicom_date(export.submitted_at or export.signed_at)
    dataset.SpecificCharacterSet = 'ISO_IR 192'  # UTF-8, for doctors' names in any script
    for keyword in ('PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime',
                    'ReferringPhysicianName', 'StudyID', 'AccessionNumber'):
        if keyword not in dataset:
            setattr(dataset, keyword, '')  # type 2: present, even when empty

    signed = export.signed_at.astimezone(dt.UTC)
    dataset.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    dataset.SOPInstanceUID = _uid(export, 'instance')
    dataset.Modality = 'DOC'
    dataset.SeriesInstanceUID = _uid(export, 'series')
    dataset.SeriesNumber = REPORT_SERIES_NUMBER
    dataset.SeriesDescription = DOCUMENT_TITLE
    dataset.Manufacturer = 'SecondOpinion'
    dataset.ConversionType = 'WSD'  # workstation
    dataset.InstanceNumber = export.version
    dataset.ContentDate = signed.strftime('%Y%m%d')
    dataset.ContentTime = signed.strftime('%H%M%S')
    dataset.AcquisitionDateTime = signed.strftime('%Y%m%d%H%M%S') + '+0000'
    dataset.BurnedInAnnotation = 'YES'  # the PDF prints the patient's name
    dataset.DocumentTitle = DOCUMENT_TITLE
    dataset.ConceptNameCodeSequence = Sequence([_code(*REPORT_CODE)])
    dataset.MIMETypeOfEncapsulatedDocument = 'application/pdf'
    dataset.EncapsulatedDocumentLength = len(export.pdf)
    # OB values have an even length, so an odd PDF gets one padding byte. The length above excludes it.
    dataset.EncapsulatedDocument = export.pdf + (b'\x00' if len(export.pdf) % 2 else b'')

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    return dataset


def pdf_from_dataset(dataset: Dataset) -> bytes:
    """Return the PDF of an encapsulated-PDF dataset without the padding byte."""
    data = bytes(dataset.EncapsulatedDocument)
    length = dataset.get('EncapsulatedDocumentLength')
    return data[:int(length)] if length is not None else data


def _code(value: str, meaning: str, scheme: str = 'LN') -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _dicom_date(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime('%Y%m%d')


# --- FHIR ----------------------------------------------------------------------------------------------------


def diagnostic_report(export: ReportExport) -> dict:
    """Build a FHIR R4 DiagnosticReport with the PDF inline (base64) and the study referenced by its UID."""
    settings = get_settings()
    base = settings.public_base_url.rstrip('/')
    header = export.study_header
    resource: dict = {
        'resourceType': 'DiagnosticReport',
        'id': f'{export.examination_id}-v{export.version}',
        'identifier': [{'system': f'{base}/fhir/diagnostic-report',
                        'value': f'{export.examination_id}-v{export.version}'}],
        'status': 'final',
        'category': [{'coding': [{'system': 'http://terminology.hl7.org/CodeSystem/v2-0074', 'code': 'RAD',
                                  'display': 'Radiology'}]}],
        'code': {'coding': [{'system': LOINC_SYSTEM, 'code': REPORT_CODE[0], 'display': REPORT_CODE[1]}],
                 'text': f'Second opinion: {export.modality} {export.body_part}'.strip()},
        'subject': {'identifier': {'system': f'{base}/fhir/patient', 'value': str(export.patient_id)},
                    'display': export.patient_name},
        'effectiveDateTime': _effective(export),
        'issued': export.signed_at.astimezone(dt.UTC).isoformat(timespec='seconds').replace('+00:00', 'Z'),
        'performer': [{'identifier': {'system': f'{base}/fhir/license', 'value': export.doctor_license},
                       'display': export.doctor_name}],
        'resultsInterpreter': [{'identifier': {'system': f'{base}/fhir/license', 'value': export.doctor_license},
                                'display': export.doctor_name}],
        'conclusion': export.impression,
        'presentedForm': [{
            'contentType': 'application/pdf',
            'data': base64.b64encode(export.pdf).decode('ascii'),
            'size': len(export.pdf),
            # FHIR R4 Attachment.hash is the base64 of the SHA-1 of the data.
            'hash': base64.b64encode(hashlib.sha1(export.pdf).digest()).decode('ascii'),  # noqa: S324
            'title': f'{DOCUMENT_TITLE}, version {export.version}',
            'creation': export.signed_at.astimezone(dt.UTC).isoformat(timespec='seconds').replace('+00:00', 'Z'),
        }],
    }
    if header is not None and 'StudyInstanceUID' in header:
        # R4 DiagnosticReport.imagingStudy is a Reference(ImagingStudy). This logical reference carries the UID.
        resource['imagingStudy'] = [{'identifier': {'system': DICOM_UID_SYSTEM,
                                                    'value': f'urn:oid:{header.StudyInstanceUID}'},
                                     'type': 'ImagingStudy'}]
    return resource


def _effective(export: ReportExport) -> str:
    """Return the study date as a FHIR date, else the day the case was submitted, else the signing day."""
    header = export.study_header
    study_date = str(header.get('StudyDate', '') or '') if header is not None else ''
    try:
        return dt.datetime.strptime(study_date[:8], '%Y%m%d').date().isoformat()
    except ValueError:
        return (export.submitted_at or export.signed_at).astimezone(dt.UTC).date().isoformat()
