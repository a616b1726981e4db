"""Dry run of the upload intake for `main.py inspect-study`: classify files, folders and zips, store nothing.

Files and zips go through the same classification as an upload (studies.classify_upload). A folder
is read like a zip of that folder: non-DICOM files are skipped, not rejected. No database, blob
storage or data folder is touched, so support staff can run it on a copy of a patient's CD.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from ..config import Settings
from .dicom import DicomInfo
from .studies import (
    DICOM_OUTCOME,
    SKIPPED_OUTCOME,
    IntakeItem,
    format_bytes,
    classify_member,
    classify_upload,
)

logger = logging.getLogger(__name__)

DICOMDIR_NAME = 'DICOMDIR'
DICOMDIR_USED = 'used'
DICOMDIR_MISSING = 'missing'
DICOMDIR_NOT_APPLICABLE = 'not applicable'
MAX_MISSING_NAMES = 3  # referenced files named in the "broken" status before the rest are only counted


@dataclass
class _Series:
    number: int | None
    modality: str
    description: str
    body_part: str = ''
    sop_instance_uids: set[str] = field(default_factory=set)
    transfer_syntaxes: set[str] = field(default_factory=set)


@dataclass
class _Study:
    date: str
    description: str
    patient_sex: str = ''
    patient_age: str = ''
    character_sets: set[tuple[str, ...]] = field(default_factory=set)
    series: dict[str, _Series] = field(default_factory=dict)


@dataclass
class Inspection:
    """The studies, counts, skipped files and rejections that an upload of the inspected paths would produce."""

    settings: Settings
    studies: dict[str, _Study] = field(default_factory=dict)
    sop_instance_uids: set[str] = field(default_factory=set)
    files_scanned: int = 0
    dicom_files: int = 0
    duplicates: int = 0
    dicom_bytes: int = 0  # of the unique images, for the per-examination size limit
    skipped: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    dicomdir_statuses: list[str] = field(default_factory=list)  # one per inspected folder

    def add_path(self, path: Path) -> None:
        """Inspect a DICOM file, a zip or a folder. The path must exist."""
        if path.is_dir():
            self._add_folder(path)
            return
        with contextlib.closing(classify_upload(str(path), path, self.settings)) as items:
            for item in items:
                self._add_item(item)

    def _add_item(self, item: IntakeItem) -> None:
        if item.scanned:
            self.files_scanned += 1
        if item.outcome == DICOM_OUTCOME and item.info is not None and item.path is not None:
            self._add_dicom(item.info, item.path.stat().st_size)
        elif item.outcome == SKIPPED_OUTCOME:
            self.skipped.append({'file': item.name, 'reason': item.reason})
        else:
            self.rejected.append({'file': item.name, 'reason': item.reason})

    def _add_dicom(self, info: DicomInfo, size: int) -> None:
        """Count an image once per SOP Instance UID, as the upload does."""
        self.dicom_files += 1
        if info.sop_instance_uid in self.sop_instance_uids:
            self.duplicates += 1
            return
        self.sop_instance_uids.add(info.sop_instance_uid)
        self.dicom_bytes += size

        study = self.studies.setdefault(info.study_instance_uid,
                                        _Study(date=info.study_date, description=info.study_description))
        study.date = study.date or info.study_date
        study.description = study.description or info.study_description
        study.patient_sex = study.patient_sex or info.patient_sex
        study.patient_age = study.patient_age or info.patient_age
        study.character_sets.add(info.character_sets)
        series = study.series.setdefault(info.series_instance_uid, _Series(
            number=info.series_number, modality=info.modality, description=info.series_description))
        series.body_part = series.body_part or info.body_part
        series.sop_instance_uids.add(info.sop_instance_uid)
        if info.transfer_syntax_uid:
            series.transfer_syntaxes.add(info.transfer_syntax_uid)

    def _add_folder(self, folder: Path) -> None:
        """Read the DICOMDIR's referenced files first, then every other file, so the result matches an upload.

        The upload stores every DICOM file of a zipped CD, listed in the DICOMDIR or not, so files
        the DICOMDIR does not reference are scanned too. A missing or broken DICOMDIR therefore only
        changes the reported status and the reading order.
        """
        all_files = _walk_files(folder)
        referenced, status = _read_dicomdir(folder, all_files)
        self.dicomdir_statuses.append(status)
        referenced_set = set(referenced)
        ordered = referenced + [path for path in all_files if path not in referenced_set]

        found_dicom = False
        for path in ordered:
            name = str(path)
            size = path.stat().st_size
            if size > self.settings.max_file_bytes:
                self.files_scanned += 1
                self.rejected.append({'file': name, 'reason': (
                    f'{name} is {format_bytes(size)}, more than the limit of '
                    f'{format_bytes(self.settings.max_file_bytes)} per file. Remove it from the folder.')})
                continue
            item = classify_member(name, path)
            found_dicom = found_dicom or item.outcome == DICOM_OUTCOME
            self._add_item(item)

        if not found_dicom:
            self.rejected.append({'file': str(folder), 'reason': (
                f'{folder} contains no DICOM images. Choose the folder of the whole CD or DVD, '
                f'or the DICOM files themselves.')})

    def check_total_size(self) -> None:
        """Reject the whole set when its unique images exceed the per-examination limit, as the upload does."""
        limit = self.settings.max_examination_bytes
        if self.dicom_bytes > limit:
            self.rejected.append({'file': '', 'reason': (
                f'These paths have {format_bytes(self.dicom_bytes)} of images, more than the limit of '
                f'{format_bytes(limit)} per examination. Upload fewer images.')})

    @property
    def usable(self) -> bool:
        """True when an upload of these paths would be accepted: some DICOM image and no rejection."""
        return self.dicom_files > 0 and not self.rejected

    def to_json(self) -> dict[str, Any]:
        """Return the report printed by `main.py inspect-study`.

        It contains UIDs, study dates, descriptions, body parts, the patient's sex and age (an Age
        String such as 045Y) and the file names given, but no patient name, ID or birth date, because
        support staff share this output. The Specific Character Set values of each study's files are
        listed, with an empty list for files without them, to explain names that the app shows
        garbled. NOTE: free-text descriptions are printed as
        stored, so a site that writes patient details into them would show them here.
        """
        studies = sorted(self.studies.items(), key=lambda pair: (pair[1].date == '', pair[1].date, pair[0]))
        return {
            'studies': [_study_json(uid, study) for uid, study in studies],
            'files_scanned': self.files_scanned,
            'dicom_files': self.dicom_files,
            'duplicates': self.duplicates,
            'skipped': self.skipped,
            'rejected': self.rejected,
            'dicomdir': _combined_dicomdir_status(self.dicomdir_statuses),
        }


def inspect_paths(paths: list[Path], settings: Settings) -> Inspection:
    """Classify every path as an upload of them all in one call would, and store nothing."""
    inspection = Inspection(settings=settings)
    for path in paths:
        inspection.add_path(path)
    inspection.check_total_size()
    return inspection


def _study_json(uid: str, study: _Study) -> dict[str, Any]:
    series = sorted(study.series.items(),
                    key=lambda pair: (pair[1].number is None, pair[1].number or 0, pair[0]))
    return {
        'study_instance_uid': uid,
        'study_date': study.date,
        'description': study.description,
        'patient_sex': study.patient_sex,
        'patient_age': study.patient_age,
        'specific_character_sets': [list(values) for values in sorted(study.character_sets)],
        'modalities': sorted({item.modality for _, item in series if item.modality}),
        'series': [{
            'series_instance_uid': series_uid,
            'number': item.number,
            'modality': item.modality,
            'description': item.description,
            'body_part': item.body_part,
            'instances': len(item.sop_instance_uids),
            'transfer_syntaxes': sorted(item.transfer_syntaxes),
        } for series_uid, item in series],
    }


def _combined_dicomdir_status(statuses: list[str]) -> str:
    """Return the first broken status, else "missing" when any folder lacks a DICOMDIR, else "used"."""
    if not statuses:
        return DICOMDIR_NOT_APPLICABLE
    for status in statuses:
        if status not in {DICOMDIR_USED, DICOMDIR_MISSING}:
            return status
    return DICOMDIR_MISSING if DICOMDIR_MISSING in statuses else DICOMDIR_USED


def _walk_files(folder: Path) -> list[Path]:
    """Return every file under the folder in a stable order. Symbolic links to folders are not followed."""
    files = []
    for root, folders, names in os.walk(folder):
        folders.sort()
        files.extend(Path(root) / name for name in sorted(names) if (Path(root) / name).is_file())
    return files


def _find_dicomdir(folder: Path) -> Path | None:
    """Return the DICOMDIR at the top of the folder, where PS3.10 places it, matching the name in any case."""
    for child in sorted(folder.iterdir()):
        if child.name.upper() == DICOMDIR_NAME and child.is_file():
            return child
    return None


def _read_dicomdir(folder: Path, files: list[Path]) -> tuple[list[Path], str]:
    """Return the files the folder's DICOMDIR references and the status: "used", "missing" or "broken: <reason>".

    `files` are the files found under the folder. A referenced file matches one of them in any
    letter case, because a CD copied from Windows can have lower-case names while its DICOMDIR has
    upper-case ones. A DICOMDIR that pydicom cannot read, or that references files which do not
    exist, is broken, and then no files are returned so the caller scans the folder.
    """
    path = _find_dicomdir(folder)
    if path is None:
        return [], DICOMDIR_MISSING
    try:
        with warnings.catch_warnings():
            # pydicom 3.0 warns about each referenced file that does not exist and leaves it out of the
            # FileSet, so the FileSet only checks the record structure and the paths come from the records.
            warnings.simplefilter('ignore')
            dataset = pydicom.dcmread(path)
            FileSet(dataset)
        referenced = [_referenced_path(path.parent, record) for record in dataset.DirectoryRecordSequence
                      if 'ReferencedFileID' in record]
    except Exception as error:  # noqa: BLE001 - a damaged DICOMDIR fails in pydicom with many error types
        logger.info('DICOMDIR %s could not be read: %s: %s', path, type(error).__name__, error)
        return [], f'broken: {path} could not be read ({type(error).__name__}: {error})'

    files_by_lower_name = {str(file).lower(): file for file in files}
    referenced = [files_by_lower_name.get(str(reference).lower(), reference) for reference in referenced]
    outside = [reference for reference in referenced if not reference.resolve().is_relative_to(folder.resolve())]
    if outside:
        return [], f'broken: {path} references {outside[0]}, outside the folder'
    found = set(files)
    missing = [reference for reference in referenced if reference not in found]
    if missing:
        listed = ', '.join(str(reference) for reference in missing[:MAX_MISSING_NAMES])
        more = f' and {len(missing) - MAX_MISSING_NAMES} more' if len(missing) > MAX_MISSING_NAMES else ''
        return [], f'broken: {path} references {len(missing)} files that do not exist: {listed}{more}'
    if not referenced:
        return [], f'broken: {path} references no image files'
    return referenced, DICOMDIR_USED


def _referenced_path(root: Path, record: Dataset) -> Path:
    """Return the path of a directory record's Referenced File ID, whose components are relative to the DICOMDIR."""
    value = record.ReferencedFileID
    components = [value] if isinstance(value, str) else list(value)
    return root.joinpath(*(str(component).strip() for component in components))
