"""Patient name, sex, age and body part read from DICOM files, and shown in the study summary."""

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from pydicom.dataelem import DataElement

from secondopinion.services import studies
from secondopinion.services.dicom import parse_dicom
from secondopinion.services.dicom_patient import age_between, format_age

from .dicom_files import create_draft, pydicom_file, write_variant


def charset_file(name: str) -> Path:
    paths = get_charset_files(name)
    assert paths, f'pydicom charset test file {name} is missing'
    return Path(paths[0])


# pydicom's character set test files and the names they decode to.
CHARSET_NAMES = [
    # The file writes the ASCII letters c, e, y and p among the ISO 8859-5 Cyrillic bytes, so these four are Latin.
    ('chrRuss.dcm', 'Люкceмбypг'),
    ('chrGreek.dcm', 'Διονυσιος'),
    ('chrArab.dcm', 'قباني, لنزار'),
    ('chrHbrw.dcm', 'שרון, דבורה'),
    ('chrFren.dcm', 'Buc, Jérôme'),
    ('chrGerm.dcm', 'Äneas, Rüdiger'),
    ('chrH31.dcm', 'Yamada, Tarou (山田 太郎, やまだ たろう)'),
    ('chrH32.dcm', 'ﾔﾏﾀﾞ, ﾀﾛｳ (山田 太郎, やまだ たろう)'),
    ('chrI2.dcm', 'Hong, Gildong (洪 吉洞, 홍 길동)'),
    ('chrX1.dcm', 'Wang, XiaoDong (王 小東)'),
    ('chrX2.dcm', 'Wang, XiaoDong (王 小东)'),
    ('chrJapMulti.dcm', 'やまだ, たろう'),
    ('chrKoreanMulti.dcm', '김희중'),
]


@pytest.mark.parametrize(('name', 'expected'), CHARSET_NAMES)
def test_patient_name_decoded(name, expected):
    info = parse_dicom(charset_file(name))

    assert info is not None
    assert info.patient_name == expected


def test_character_sets_as_written():
    assert parse_dicom(charset_file('chrRuss.dcm')).character_sets == ('ISO_IR 144',)
    assert parse_dicom(charset_file('chrH31.dcm')).character_sets == ('', 'ISO 2022 IR 87')
    assert parse_dicom(pydicom_file('ExplVR_BigEnd.dcm')).character_sets == ()


def test_sex_and_body_part_read():
    info = parse_dicom(charset_file('chrJapMulti.dcm'))

    assert info.patient_sex == 'M'
    assert info.body_part == 'CHEST'
    # Its birth date 1800-01-01 is a placeholder, 208 years before the study.
    assert info.patient_age == ''


def test_turkish_name_in_latin5(tmp_path):
    path = write_variant(tmp_path / 'tr.dcm', SpecificCharacterSet='ISO_IR 148', PatientName='Yılmaz^Şükrü')

    assert b'Y\xfdlmaz^\xde\xfckr\xfc' in path.read_bytes()
    assert parse_dicom(path).patient_name == 'Yılmaz, Şükrü'


def test_age_from_patient_age(tmp_path):
    path = write_variant(tmp_path / 'age.dcm', PatientAge='045Y', PatientBirthDate='19000101')

    info = parse_dicom(path)

    assert info.patient_age == '045Y'
    assert format_age(info.patient_age) == '45 years'


def test_age_from_birth_date(tmp_path):
    path = write_variant(tmp_path / 'birth.dcm', PatientAge=None, PatientBirthDate='19790615', StudyDate='20240614')

    assert parse_dicom(path).patient_age == '044Y'


@pytest.mark.parametrize(('birth', 'study', 'expected'), [
    ('19790615', '20240615', '045Y'),
    ('20240101', '20240520', '004M'),
    ('20240501', '20240520', '019D'),
    ('20240520', '20240520', '000D'),
    ('20240521', '20240520', ''),
    ('18000101', '20080504', ''),
    ('2024', '20240520', ''),
    ('20241345', '20250101', ''),
    ('19790615', '', ''),
])
def test_age_between_dates(birth, study, expected):
    assert age_between(birth, study) == expected


@pytest.mark.parametrize(('value', 'expected'), [
    ('045Y', '45 years'), ('001Y', '1 year'), ('003M', '3 months'), ('002W', '2 weeks'), ('010D', '10 days'),
    ('abc', ''), ('', ''), ('45', ''),
])
def test_format_age(value, expected):
    assert format_age(value) == expected


def test_malformed_values_leave_fields_empty(tmp_path):
    path = write_variant(tmp_path / 'bad.dcm', PatientAge='abc', PatientBirthDate='not a date', PatientSex='X',
                         StudyDate='20240520')

    info = parse_dicom(path)

    assert info is not None
    assert info.patient_age == ''
    assert info.patient_sex == ''
    assert info.sop_instance_uid != ''


def test_missing_values_leave_fields_empty(tmp_path):
    path = write_variant(tmp_path / 'none.dcm', PatientName=None, PatientAge=None, PatientBirthDate=None,
                         PatientSex=None, BodyPartExamined=None)

    info = parse_dicom(path)

    assert info is not None
    assert info.patient_name == ''
    assert info.patient_age == ''
    assert info.patient_sex == ''
    assert info.body_part == ''


def test_unknown_character_set_accepted(tmp_path):
    path = write_variant(tmp_path / 'charset.dcm', PatientName='Smith^Anna')
    data = path.read_bytes()
    # An unknown Specific Character Set value, written over the file's own element.
    dataset = pydicom.dcmread(path)
    dataset.add_new(0x00080005, 'CS', 'ISO_IR 999')
    with pydicom.config.disable_value_validation(), pytest.warns(UserWarning, match='Unknown encoding'):
        dataset.save_as(path)
    assert path.read_bytes() != data

    with pytest.warns(UserWarning):
        info = parse_dicom(path)

    assert info is not None
    assert info.patient_name == 'Smith, Anna'
    assert info.character_sets == ('ISO_IR 999',)


def test_invalid_name_bytes_replaced(tmp_path):
    path = write_variant(tmp_path / 'latin1-in-utf8.dcm', SpecificCharacterSet='ISO_IR 192')
    dataset = pydicom.dcmread(path)
    # Latin-1 bytes in a file that declares UTF-8, as a misconfigured writer produces them.
    dataset['PatientName'] = DataElement(0x00100010, 'PN', b'M\xfcller^Hans')
    dataset.save_as(path)

    with pytest.warns(UserWarning, match='Failed to decode'):
        info = parse_dicom(path)

    assert info is not None
    assert info.patient_name == 'M\ufffdller, Hans'


# --- Summary of uploaded studies --------------------------------------------------------------------------------


def test_summary_shows_patient_and_body_part(make_patient, tmp_path):
    patient = make_patient()
    exam_id = create_draft(patient)
    path = write_variant(tmp_path / 'tr.dcm', SpecificCharacterSet='ISO_IR 148', PatientName='Yılmaz^Şükrü',
                         PatientSex='M', PatientAge='045Y', BodyPartExamined='ABDOMEN')

    studies.add_files(actor=patient, examination_id=exam_id, files=[('tr.dcm', path)])
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)

    study = images.studies[0]
    assert study.patient_name == 'Yılmaz, Şükrü'
    assert study.patient_sex == 'M'
    assert study.patient_age == '45 years'
    assert study.series[0].body_part == 'ABDOMEN'


def test_summary_of_japanese_file(make_patient):
    patient = make_patient()
    exam_id = create_draft(patient)

    studies.add_files(actor=patient, examination_id=exam_id, files=[('chrH31.dcm', charset_file('chrH31.dcm'))])
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)

    assert images.studies[0].patient_name == 'Yamada, Tarou (山田 太郎, やまだ たろう)'
    assert images.studies[0].patient_age == ''


def test_body_part_from_later_file(make_patient, tmp_path):
    patient = make_patient()
    exam_id = create_draft(patient)
    first = write_variant(tmp_path / 'first.dcm', BodyPartExamined=None, InstanceNumber=1)
    dataset = pydicom.dcmread(first)
    second = write_variant(tmp_path / 'second.dcm', BodyPartExamined='KNEE', InstanceNumber=2)
    same_series = pydicom.dcmread(second)
    same_series.StudyInstanceUID = dataset.StudyInstanceUID
    same_series.SeriesInstanceUID = dataset.SeriesInstanceUID
    same_series.save_as(second)

    studies.add_files(actor=patient, examination_id=exam_id, files=[('first.dcm', first), ('second.dcm', second)])
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)

    assert images.series_count == 1
    assert images.studies[0].series[0].body_part == 'KNEE'
