"""`main.py inspect-study`: the upload checks run on files, CD folders and zips, with nothing stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from .services.dicom_files import dicomdir_folder, make_zip, pydicom_file, zip_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inspect(tmp_path):
    """Run `main.py inspect-study` with a data folder that must still not exist when the test ends."""
    data_dir = tmp_path / 'inspect-data'

    def run(*paths: Path | str, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {key: value for key, value in os.environ.items() if key != 'PYTEST_CURRENT_TEST'}
        environment.update(settings or {})
        environment['SECONDOPINION_DATA_DIR'] = str(data_dir)
        environment.pop('SECONDOPINION_DATABASE_URL', None)
        return subprocess.run([sys.executable, 'main.py', 'inspect-study', *map(str, paths)], cwd=ROOT,
                              env=environment, capture_output=True, text=True, timeout=120)

    yield run
    assert not data_dir.exists(), 'inspect-study created the data folder'


def read_every_file(folder: Path) -> dict[str, dict[str, set[str]]]:
    """Group the SOP Instance UIDs of every DICOM image under the folder by study and series, read with pydicom."""
    studies: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in folder.rglob('*'):
        if not path.is_file():
            continue
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - README files and other non-DICOM files fail in many ways
            continue
        if 'DirectoryRecordSequence' in dataset or 'SOPInstanceUID' not in dataset:
            continue
        studies[dataset.StudyInstanceUID][dataset.SeriesInstanceUID].add(dataset.SOPInstanceUID)
    return studies


def reported_instances(report: dict) -> dict[str, dict[str, int]]:
    return {study['study_instance_uid']: {series['series_instance_uid']: series['instances']
                                          for series in study['series']}
            for study in report['studies']}


def expected_instances(folder: Path) -> dict[str, dict[str, int]]:
    return {study_uid: {series_uid: len(sop_uids) for series_uid, sop_uids in series.items()}
            for study_uid, series in read_every_file(folder).items()}


def patient_names(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob('*'):
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - folders and non-DICOM files
            continue
        name = str(dataset.get('PatientName', '') or '')
        if len(name) > 3:
            names.add(name)
    return names


def test_single_ct_file(inspect):
    result = inspect(pydicom_file('CT_small.dcm'))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['files_scanned'] == 1
    assert report['dicom_files'] == 1
    assert report['duplicates'] == 0
    assert report['skipped'] == []
    assert report['rejected'] == []
    assert report['dicomdir'] == 'not applicable'
    assert len(report['studies']) == 1
    study = report['studies'][0]
    assert set(study) == {'study_instance_uid', 'study_date', 'description', 'patient_sex', 'patient_age',
                          'specific_character_sets', 'modalities', 'series'}
    assert study['modalities'] == ['CT']
    assert len(study['series']) == 1
    series = study['series'][0]
    assert set(series) == {'series_instance_uid', 'number', 'modality', 'description', 'body_part', 'instances',
                           'transfer_syntaxes'}
    dataset = pydicom.dcmread(pydicom_file('CT_small.dcm'))
    assert study['study_instance_uid'] == dataset.StudyInstanceUID
    assert series['series_instance_uid'] == dataset.SeriesInstanceUID
    assert series['instances'] == 1
    assert series['transfer_syntaxes'] == [dataset.file_meta.TransferSyntaxUID]
    assert str(dataset.PatientName) not in result.stdout


def test_same_file_twice_counts_duplicate(inspect):
    ct = pydicom_file('CT_small.dcm')

    result = inspect(ct, ct)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicom_files'] == 2
    assert report['duplicates'] == 1
    assert report['studies'][0]['series'][0]['instances'] == 1


def test_file_without_preamble_accepted(inspect):
    result = inspect(pydicom_file('ExplVR_LitEndNoMeta.dcm'))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicom_files'] == 1
    assert report['studies'][0]['modalities'] == ['RTPLAN']


def test_cd_folder_uses_dicomdir(inspect):
    folder = dicomdir_folder()

    result = inspect(folder)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'] == 'used'
    assert reported_instances(report) == expected_instances(folder)
    assert report['dicom_files'] == 81
    assert report['duplicates'] == 0
    assert report['rejected'] == []
    skipped = {Path(item['file']).relative_to(folder).as_posix(): item['reason'] for item in report['skipped']}
    assert 'DICOMDIR' in skipped['DICOMDIR']
    assert skipped['README.txt'] == 'not a DICOM file'
    assert report['files_scanned'] == report['dicom_files'] + len(report['skipped'])
    for name in patient_names(folder):
        assert name not in result.stdout


def test_broken_dicomdir_falls_back_to_scan(inspect, tmp_path):
    folder = shutil.copytree(dicomdir_folder(), tmp_path / 'cd')
    dicomdir = folder / 'DICOMDIR'
    dicomdir.write_bytes(dicomdir.read_bytes()[:1000])  # a CD copy that stopped early

    result = inspect(folder)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'].startswith('broken: ')
    assert str(dicomdir) in report['dicomdir']
    assert reported_instances(report) == expected_instances(folder)
    assert report['rejected'] == []


def test_dicomdir_with_missing_file_broken(inspect, tmp_path):
    folder = shutil.copytree(dicomdir_folder(), tmp_path / 'cd')
    removed = folder / '77654033' / 'CR1' / '6154'
    removed.unlink()

    result = inspect(folder)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'].startswith('broken: ')
    assert str(removed) in report['dicomdir']
    assert reported_instances(report) == expected_instances(folder)


def test_dicomdir_matches_lower_case_names(inspect, tmp_path):
    # A CD copied from Windows can have lower-case names while its DICOMDIR lists upper-case ones.
    folder = tmp_path / 'cd'
    for source in dicomdir_folder().rglob('*'):
        if source.is_file():
            target = folder / source.relative_to(dicomdir_folder()).as_posix().lower()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    result = inspect(folder)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'] == 'used'
    assert reported_instances(report) == expected_instances(folder)


def test_folder_without_dicomdir_missing(inspect, tmp_path):
    folder = shutil.copytree(dicomdir_folder() / '98892001', tmp_path / 'copied')

    result = inspect(folder)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'] == 'missing'
    assert reported_instances(report) == expected_instances(folder)


def test_folder_without_dicom_rejected(inspect, tmp_path):
    folder = tmp_path / 'notes'
    folder.mkdir()
    (folder / 'readme.txt').write_text('not an image')

    result = inspect(folder)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report['skipped'] == [{'file': str(folder / 'readme.txt'), 'reason': 'not a DICOM file'}]
    assert [item['file'] for item in report['rejected']] == [str(folder)]
    assert 'contains no DICOM images' in report['rejected'][0]['reason']


def test_zip_of_cd_folder(inspect, tmp_path):
    folder = dicomdir_folder()
    archive = zip_folder(folder, tmp_path / 'cd.zip')

    result = inspect(archive)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dicomdir'] == 'not applicable'
    assert reported_instances(report) == expected_instances(folder)
    assert report['dicom_files'] == 81
    assert report['rejected'] == []
    assert f'{archive}/README.txt' in {item['file'] for item in report['skipped']}


def test_zip_slip_entry_rejected(inspect, tmp_path):
    ct = pydicom_file('CT_small.dcm').read_bytes()
    archive = make_zip(tmp_path / 'evil.zip', {'images/ct.dcm': ct, '../evil.dcm': ct})

    result = inspect(archive)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert len(report['rejected']) == 1
    assert report['rejected'][0]['file'] == str(archive)
    assert 'contains the entry "../evil.dcm"' in report['rejected'][0]['reason']
    assert report['studies'] == []
    assert not (tmp_path / 'evil.dcm').exists()


def test_text_file_renamed_dcm_rejected(inspect, tmp_path):
    text_file = tmp_path / 'scan.dcm'
    text_file.write_text('These are my notes about the scan, not an image.\n' * 20)

    result = inspect(text_file)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report['rejected'] == [{'file': str(text_file),
                                   'reason': f'{text_file} is not a DICOM file. Choose only DICOM images or a '
                                             f'.zip of the CD and upload again.'}]
    assert report['dicom_files'] == 0


def test_only_dicomdir_not_usable(inspect):
    result = inspect(pydicom_file('DICOMDIR'))

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report['rejected'] == []
    assert report['dicom_files'] == 0
    assert len(report['skipped']) == 1


def test_file_over_size_limit_rejected(inspect):
    ct = pydicom_file('CT_small.dcm')

    result = inspect(ct, settings={'SECONDOPINION_MAX_FILE_BYTES': '1000'})

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [item['file'] for item in report['rejected']] == [str(ct)]
    assert 'more than the limit of 1000 bytes per file' in report['rejected'][0]['reason']


def test_folder_over_examination_limit_rejected(inspect):
    result = inspect(dicomdir_folder(), settings={'SECONDOPINION_MAX_EXAMINATION_BYTES': '100000'})

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert len(report['rejected']) == 1
    assert 'per examination' in report['rejected'][0]['reason']
    assert report['dicom_files'] == 81


def test_missing_path_usage_error(inspect, tmp_path):
    missing = tmp_path / 'no-such-cd'

    result = inspect(pydicom_file('CT_small.dcm'), missing)

    assert result.returncode == 2
    assert result.stdout == ''
    assert f'{missing} not found' in result.stderr


def test_no_path_usage_error(inspect):
    result = inspect()

    assert result.returncode == 2
    assert 'PATH' in result.stderr


def test_report_has_body_part_sex_and_age(inspect):
    path = pydicom.data.get_charset_files('chrJapMulti.dcm')[0]

    result = inspect(path)

    study = json.loads(result.stdout)['studies'][0]
    assert study['patient_sex'] == 'M'
    assert study['patient_age'] == ''
    assert study['specific_character_sets'] == [['', 'ISO 2022 IR 87']]
    assert study['series'][0]['body_part'] == 'CHEST'
    assert 'patient_name' not in result.stdout
