"""De-identified review beyond the image headers: the patient's identity in case views, the report copies
and exports, prior report files, and images whose pixels may show text."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from secondopinion.models.base import utcnow
from secondopinion.services import examinations, payments, reports, review_policy, standards, studies
from secondopinion.services.deidentify import burned_in_text_reason
from secondopinion.services.errors import NotFoundError
from tests.services.test_report_pdf import needs_pdftotext, pdf_text

PATIENT_NAME = 'Erika Mustermann'
BIRTH_DATE = '1980-05-17'  # the date of birth that make_patient registers


@pytest.fixture
def patient(make_patient):
    return make_patient(name=PATIENT_NAME)


def _paid_exam(patient, files: list[Path]) -> str:
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    studies.add_files(actor=patient, examination_id=exam_id, files=[(path.name, path) for path in files])
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    return exam_id


@pytest.fixture
def exam_id(patient) -> str:
    return _paid_exam(patient, [Path(get_testdata_file('CT_small.dcm'))])


def burned_in_copy(tmp_path: Path) -> Path:
    """Write CT_small.dcm with BurnedInAnnotation YES, as a modality that printed the name into the image would."""
    dataset = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
    dataset.BurnedInAnnotation = 'YES'
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    path = tmp_path / 'burned_in.dcm'
    dataset.save_as(path, enforce_file_format=True)
    return path


def _zip(actor, exam_id: str) -> zipfile.ZipFile:
    _name, chunks = studies.stream_images_zip(actor=actor, examination_id=exam_id)
    return zipfile.ZipFile(io.BytesIO(b''.join(chunks)))


# --- The patient's identity in case views -------------------------------------------------------------------------


def test_doctor_view_has_pseudonym(admin, make_doctor, exam_id):
    doctor = make_doctor()
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)
    examinations.accept(actor=doctor, examination_id=exam_id)

    view = examinations.view_exam(actor=doctor, examination_id=exam_id, page='review')
    listed = examinations.list_for_doctor(actor=doctor)

    assert view.deidentified
    assert view.patient_name == review_policy.pseudonym(exam_id)
    assert view.patient_name.startswith('Patient ')
    assert PATIENT_NAME not in view.patient_name
    assert view.patient_birth_date == ''
    assert view.patient_age == review_policy.patient_age(date.fromisoformat(BIRTH_DATE), utcnow().date())
    assert view.patient_age.endswith('years')
    assert view.patient_sex == 'O'  # as CT_small.dcm records it
    assert view.clinical_question == 'Is it benign?'
    assert [item.patient_name for item in listed] == [view.patient_name]


def test_pending_list_has_pseudonym(admin, make_doctor, exam_id):
    doctor = make_doctor()
    review_policy.set_global_default(actor=admin, enabled=True)

    pending, _total = examinations.list_pending(actor=doctor)
    admin_pending, _total = examinations.list_pending(actor=admin)

    assert [view.patient_name for view in pending] == [review_policy.pseudonym(exam_id)]
    assert [view.patient_name for view in admin_pending] == [PATIENT_NAME]


def test_names_kept_for_admin_and_patient(admin, make_doctor, patient, exam_id):
    doctor = make_doctor()
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)

    for actor in (admin, patient):
        view = examinations.get_exam(actor=actor, examination_id=exam_id)
        assert view.patient_name == PATIENT_NAME
        assert view.patient_birth_date == BIRTH_DATE
        assert not view.deidentified
    assert examinations.get_exam(actor=doctor, examination_id=exam_id).patient_name != PATIENT_NAME


def test_doctor_view_has_name_when_off(make_doctor, exam_id):
    doctor = make_doctor()

    view = examinations.get_exam(actor=doctor, examination_id=exam_id)

    assert view.patient_name == PATIENT_NAME
    assert view.patient_birth_date == BIRTH_DATE
    assert not view.deidentified


def test_pseudonym_stable_per_examination(patient):
    first = _paid_exam(patient, [Path(get_testdata_file('CT_small.dcm'))])
    second = _paid_exam(patient, [Path(get_testdata_file('CT_small.dcm'))])

    assert review_policy.pseudonym(first) == review_policy.pseudonym(first)
    assert review_policy.pseudonym(first) != review_policy.pseudonym(second)


@pytest.mark.parametrize(('birth', 'on', 'expected'), [
    (date(1980, 5, 17), date(2026, 5, 16), '45 years'),
    (date(1980, 5, 17), date(2026, 5, 17), '46 years'),
    (date(2026, 1, 10), date(2026, 4, 9), '2 months'),
    (date(2026, 5, 17), date(2026, 5, 16), ''),
])
def test_patient_age(birth, on, expected):
    assert review_policy.patient_age(birth, on) == expected


# --- The report: PDF copy for the doctor, exports ----------------------------------------------------------------


@pytest.fixture
def reported_exam(admin, make_doctor, exam_id):
    doctor = make_doctor()
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Small nodule.', impression='Benign.',
                     recommendations='')
    return doctor, exam_id


def _pdf(actor, exam_id: str, version: int | None = None) -> bytes:
    _name, chunks = reports.open_report_pdf(actor=actor, examination_id=exam_id, version=version)
    return b''.join(chunks)


@needs_pdftotext
def test_doctor_pdf_copy_has_pseudonym(admin, patient, reported_exam):
    doctor, exam_id = reported_exam
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)
    reports.add_addendum(actor=doctor, examination_id=exam_id, text='Also a rib fracture.')

    doctor_text = pdf_text(_pdf(doctor, exam_id))
    doctor_first = pdf_text(_pdf(doctor, exam_id, version=1))
    patient_text = pdf_text(_pdf(patient, exam_id))

    assert review_policy.pseudonym(exam_id) in doctor_text
    assert PATIENT_NAME not in doctor_text
    assert BIRTH_DATE not in doctor_text
    assert 'Age' in doctor_text
    assert 'Benign.' in doctor_text
    assert 'rib fracture' in doctor_text
    assert PATIENT_NAME not in doctor_first
    assert 'rib fracture' not in doctor_first
    assert PATIENT_NAME in patient_text
    assert BIRTH_DATE in patient_text


def test_doctor_pdf_is_signed_original_when_off(patient, reported_exam):
    doctor, exam_id = reported_exam

    assert _pdf(doctor, exam_id) == _pdf(patient, exam_id)


def test_doctor_report_exports_withheld(admin, patient, reported_exam):
    doctor, exam_id = reported_exam
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)

    with pytest.raises(NotFoundError):
        standards.export_report_dicom(actor=doctor, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        standards.export_report_fhir(actor=doctor, examination_id=exam_id)
    _name, data = standards.export_report_dicom(actor=patient, examination_id=exam_id)
    assert pydicom.dcmread(io.BytesIO(data)).PatientName == 'CompressedSamples^CT1'  # from the study's header


# --- Prior report files ------------------------------------------------------------------------------------------


@pytest.fixture
def exam_with_prior_report(patient, tmp_path) -> str:
    exam_id = examinations.create_draft(actor=patient)
    path = tmp_path / 'upload'
    path.write_bytes(b'%PDF-1.4\n% first report of ' + PATIENT_NAME.encode() + b'\n' + b'x' * 200)
    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename='first report.pdf', path=path)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[('CT_small.dcm', Path(get_testdata_file('CT_small.dcm')))])
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    return exam_id


def test_prior_reports_withheld_from_doctor(admin, make_doctor, patient, exam_with_prior_report):
    doctor = make_doctor()
    exam_id = exam_with_prior_report
    file_id = studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports[0].id
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)

    summary = studies.get_study_summary(actor=doctor, examination_id=exam_id)

    assert summary.prior_reports == []
    assert summary.prior_reports_withheld == 1
    with pytest.raises(NotFoundError):
        studies.open_prior_report(actor=doctor, examination_id=exam_id, file_id=file_id)
    for actor in (patient, admin):
        assert len(studies.get_study_summary(actor=actor, examination_id=exam_id).prior_reports) == 1
        _name, _type, chunks = studies.open_prior_report(actor=actor, examination_id=exam_id, file_id=file_id)
        assert PATIENT_NAME.encode() in b''.join(chunks)


def test_prior_reports_served_when_off(make_doctor, patient, exam_with_prior_report):
    doctor = make_doctor()
    exam_id = exam_with_prior_report

    summary = studies.get_study_summary(actor=doctor, examination_id=exam_id)
    _name, _type, chunks = studies.open_prior_report(actor=doctor, examination_id=exam_id,
                                                     file_id=summary.prior_reports[0].id)

    assert summary.prior_reports_withheld == 0
    assert PATIENT_NAME.encode() in b''.join(chunks)


# --- Burned-in text -----------------------------------------------------------------------------------------------


def _header(**values: str) -> Dataset:
    dataset = Dataset()
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    return dataset


@pytest.mark.parametrize(('values', 'flagged'), [
    ({'Modality': 'CT', 'BurnedInAnnotation': 'YES'}, True),
    ({'Modality': 'CT', 'BurnedInAnnotation': 'NO'}, False),
    ({'Modality': 'CT'}, False),
    ({'Modality': 'US'}, True),
    ({'Modality': 'US', 'BurnedInAnnotation': 'NO'}, False),
    ({'Modality': 'OT'}, True),
    ({'Modality': 'SC'}, True),
    ({'Modality': 'CT', 'SOPClassUID': '1.2.840.10008.5.1.4.1.1.7'}, True),
    ({'Modality': 'MR', 'BurnedInAnnotation': 'yes '}, True),
])
def test_burned_in_text_reason(values, flagged):
    assert bool(burned_in_text_reason(_header(**values))) is flagged


def test_burned_in_flagged_in_zip(admin, make_doctor, patient, tmp_path):
    doctor = make_doctor()
    exam_id = _paid_exam(patient, [burned_in_copy(tmp_path), Path(get_testdata_file('MR_small.dcm'))])
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)

    archive = _zip(doctor, exam_id)

    flagged = [name for name in archive.namelist() if name.endswith(studies.BURNED_IN_SUFFIX)]
    assert len(flagged) == 1
    assert pydicom.dcmread(io.BytesIO(archive.read(flagged[0]))).Modality == 'CT'
    warning = archive.read(studies.BURNED_IN_LIST_NAME).decode()
    assert flagged[0] in warning
    assert 'burned into its pixels' in warning
    assert len([name for name in archive.namelist() if name.endswith('.dcm')]) == 2


def test_burned_in_not_flagged_when_off(make_doctor, patient, tmp_path):
    doctor = make_doctor()
    exam_id = _paid_exam(patient, [burned_in_copy(tmp_path)])

    names = _zip(doctor, exam_id).namelist()

    assert studies.BURNED_IN_LIST_NAME not in names
    assert not [name for name in names if name.endswith(studies.BURNED_IN_SUFFIX)]


def test_burned_in_series_in_summary(admin, make_doctor, patient, tmp_path):
    doctor = make_doctor()
    exam_id = _paid_exam(patient, [burned_in_copy(tmp_path), Path(get_testdata_file('MR_small.dcm'))])
    review_policy.set_exam_choice(actor=admin, examination_id=exam_id, choice=True)

    doctor_series = {series.modality: series.burned_in_text
                     for study in studies.get_study_summary(actor=doctor, examination_id=exam_id).studies
                     for series in study.series}
    patient_series = [series.burned_in_text
                      for study in studies.get_study_summary(actor=patient, examination_id=exam_id).studies
                      for series in study.series]

    assert doctor_series['CT'] == 'the image states that text is burned into its pixels'
    assert doctor_series['MR'] == ''
    assert patient_series == ['', '']
