"""The Basic Profile on pydicom's and deid-data's files after writing a fake patient's details into them."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from secondopinion.services.deidentify import BASIC_PROFILE, age_string, deidentify_dataset, deidentify_file, uid_mapper

# Several modalities and encodings: CT and MR (little and big endian, RLE), colour US and secondary capture,
# JPEG, JPEG 2000, a multi-frame RT dose and an RT plan without pixels.
# Only names that the pydicom wheel ships: for any other name pydicom tries to download the file.
PYDICOM_FILES = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_RLE.dcm', 'SC_rgb_rle.dcm',
                 'JPEG2000.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'rtdose.dcm', 'rtplan.dcm', 'examples_overlay.dcm',
                 'priv_SQ.dcm', 'examples_ybr_color.dcm', 'liver_1frame.dcm', 'waveform_ecg.dcm']

FAKE = {
    'PatientName': 'Testperson^Erika', 'PatientID': 'PID-778899', 'PatientBirthDate': '19700315',
    'PatientAddress': 'Heidestrasse 17, 51147 Koeln', 'PatientTelephoneNumbers': '+49 221 555 0199',
    'OtherPatientIDs': 'OTHER-4242', 'OtherPatientNames': 'Mustermann^Erika', 'PatientBirthName': 'Gabler^Erika',
    'PatientMotherBirthName': 'Gabler^Hildegard', 'InstitutionName': 'St. Example Hospital',
    'InstitutionAddress': 'Klinikweg 1, 50667 Koeln', 'ReferringPhysicianName': 'Referrer^Rita',
    'ReferringPhysicianTelephoneNumbers': '+49 221 555 0100', 'PerformingPhysicianName': 'Performer^Paul',
    'NameOfPhysiciansReadingStudy': 'Reader^Rolf', 'OperatorsName': 'Operator^Olga',
    'RequestingPhysician': 'Requester^Ruth', 'AccessionNumber': 'ACC-123456', 'StudyID': 'STUDY-998877',
    'PatientComments': 'Erika prefers mornings', 'ImageComments': 'for Erika Testperson',
    'StudyDescription': 'CT Erika Testperson', 'StationName': 'KOELN-CT-01', 'MedicalRecordLocator': 'MRN-5555',
}
# Strings that must not appear in any value of the de-identified file, sequences and file meta included.
SECRETS = ['Erika', 'Testperson', 'PID-778899', '19700315', 'Heidestrasse', '555 0199', '555 0100', 'OTHER-4242',
           'Example Hospital', 'Klinikweg', 'Referrer', 'Performer', 'Reader^', 'Operator^', 'Requester',
           'ACC-123456', 'STUDY-998877', 'KOELN-CT', 'MRN-5555', 'Gabler', 'Mustermann', 'PRIVATE SECRET']
SECRET = b'test-secret'


def _pydicom_paths() -> list[Path]:
    return [Path(get_testdata_file(name)) for name in PYDICOM_FILES]


def _deid_data_paths() -> list[Path]:
    deid_data = pytest.importorskip('deid_data')
    folder = Path(deid_data.__file__).parent / 'data'
    return sorted(path for path in folder.rglob('*.dcm'))


def _with_fake_patient(path: Path) -> Dataset:
    dataset = pydicom.dcmread(path, force=True)
    # Files made only to test private sequences lack the UIDs of an image.
    for keyword in ('SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'):
        if keyword not in dataset:
            setattr(dataset, keyword, generate_uid())
    if 'SOPClassUID' not in dataset:
        dataset.SOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    for keyword, value in FAKE.items():
        setattr(dataset, keyword, value)
    dataset.StudyDate = '20200601'
    if 'PatientAge' in dataset:
        del dataset.PatientAge
    dataset.PatientSex = 'F'
    block = dataset.private_block(0x0011, 'SECONDOPINION TEST', create=True)
    block.add_new(0x01, 'LO', 'PRIVATE SECRET Erika')
    # A name and a reference inside a sequence that the profile keeps.
    item = Dataset()
    item.ReferencedSOPClassUID = dataset.get('SOPClassUID', '1.2.840.10008.5.1.4.1.1.7')
    item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
    item.VerifyingObserverName = 'Testperson^Erika'
    item.ContentDate = '19700315'
    inner = item.private_block(0x0013, 'NESTED TEST', create=True)
    inner.add_new(0x01, 'LO', 'PRIVATE SECRET nested')
    dataset.SourceImageSequence = Sequence([item])
    return dataset


def _all_values(dataset: Dataset) -> list[str]:
    values = []
    for element in dataset.iterall():
        if element.VR in ('OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN', 'SQ'):
            continue
        values.append(str(element.value))
    meta = getattr(dataset, 'file_meta', None)
    if meta is not None:
        values.extend(str(element.value) for element in meta if element.VR not in ('OB', 'UN'))
    return values


def _roundtrip(dataset: Dataset) -> Dataset:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()), force=True)


def _pixels(dataset: Dataset) -> np.ndarray | None:
    if 'PixelData' not in dataset:
        return None
    return dataset.pixel_array


def _check_file(path: Path) -> None:
    original = _roundtrip(_with_fake_patient(path))
    original_sop = str(original.SOPInstanceUID)
    original_study = str(original.StudyInstanceUID)
    before = _pixels(original)
    buffer = io.BytesIO()
    original.save_as(buffer, enforce_file_format=False)
    buffer.seek(0)

    result = pydicom.dcmread(io.BytesIO(deidentify_file(buffer, uid_mapper(SECRET, 'exam-1'))), force=True)

    leaks = [(secret, value) for value in _all_values(result) for secret in SECRETS if secret in value]
    assert leaks == [], f'{path.name}: {leaks[:3]}'
    private = [element.tag for element in result.iterall() if element.tag.is_private]
    assert private == [], f'{path.name}: private tags left {private}'
    for keyword, action in BASIC_PROFILE.items():
        if action in ('Z', 'X') and keyword in result:
            assert not result[keyword].value, f'{path.name}: {keyword} kept a value'
    assert result.PatientSex == 'F'
    assert result.PatientAge == '050Y'
    assert result.PatientIdentityRemoved == 'YES'
    assert result.DeidentificationMethodCodeSequence[0].CodeValue == '113100'
    assert result.SOPInstanceUID != original_sop
    assert result.StudyInstanceUID != original_study
    assert str(result.StudyInstanceUID).startswith('2.25.')
    assert result.SOPClassUID == original.SOPClassUID
    assert result.SourceImageSequence[0].ReferencedSOPInstanceUID == result.SOPInstanceUID
    if getattr(result, 'file_meta', None) is not None and 'MediaStorageSOPInstanceUID' in result.file_meta:
        assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    if before is not None:
        assert np.array_equal(_pixels(result), before), f'{path.name}: pixels changed'


@pytest.mark.parametrize('path', _pydicom_paths(), ids=lambda path: path.name)
def test_pydicom_file_deidentified(path):
    _check_file(path)


def test_deid_data_files_deidentified():
    paths = _deid_data_paths()
    assert len(paths) >= 10
    for path in paths:
        _check_file(path)


def test_uids_consistent_within_study():
    """Two files of one study keep one study UID, different from the original, and get distinct instance UIDs."""
    paths = [path for path in _deid_data_paths() if path.parent.name == 'dicom-cookies']
    originals = [pydicom.dcmread(path) for path in paths[:2]]
    study = originals[0].StudyInstanceUID
    for dataset in originals:
        dataset.StudyInstanceUID = study
        dataset.SeriesInstanceUID = originals[0].SeriesInstanceUID
    results = [deidentify_dataset(dataset, uid_mapper(SECRET, 'exam-1')) for dataset in originals]

    assert results[0].StudyInstanceUID == results[1].StudyInstanceUID
    assert results[0].StudyInstanceUID != study
    assert results[0].SeriesInstanceUID == results[1].SeriesInstanceUID
    assert results[0].SOPInstanceUID != results[1].SOPInstanceUID


def test_uids_differ_between_examinations():
    dataset = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
    first = deidentify_dataset(copy.deepcopy(dataset), uid_mapper(SECRET, 'exam-1'))
    second = deidentify_dataset(copy.deepcopy(dataset), uid_mapper(SECRET, 'exam-2'))

    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert len(str(first.StudyInstanceUID)) <= 64


def test_profile_keywords_are_dicom_keywords():
    from pydicom.datadict import tag_for_keyword

    unknown = [keyword for keyword in BASIC_PROFILE if tag_for_keyword(keyword) is None]
    assert unknown == []


@pytest.mark.parametrize(('birth', 'on', 'expected'), [
    ((1970, 3, 15), (2020, 6, 1), '050Y'), ((1970, 6, 2), (2020, 6, 1), '049Y'),
    ((2019, 1, 10), (2020, 6, 1), '016M'), ((2020, 5, 20), (2020, 6, 1), '012D')])
def test_age_string(birth, on, expected):
    import datetime as dt

    assert age_string(dt.date(*birth), dt.date(*on)) == expected
