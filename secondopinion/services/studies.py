"""The images of an examination: ingest of DICOM files and zipped CDs, summaries, thumbnails and zip download.

Uploads are all-or-nothing per call: the blobs are written first, then every row in one
transaction, and any rejection or error deletes the blobs this call wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import re
import tempfile
import time
import unicodedata
import uuid
import zipfile

# Registers Deflate64 (method 9) with zipfile, because Windows Explorer writes it in some zips it makes.
import zipfile_deflate64  # noqa: F401
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.errors
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config import Settings, get_settings
from ..db import session_scope
from ..models import Series, Study, StudyFile
from . import access, audit, review_policy
from .actors import Actor
from .dicom import DicomInfo, HeaderTooLargeError, parse_dicom, read_dicom_info, render_thumbnail
from .deidentify import UidMapper, burned_in_text_reason, deidentify_file_flagged
from .dicom_patient import format_age
from ..i18n import JoinedMessage, Message, N_
from .errors import ConflictError, NotFoundError, ValidationError
from .storage import CHUNK_SIZE, BlobStorage, get_storage, iter_file_chunks

logger = logging.getLogger(__name__)

DICOM_KIND = 'dicom'
PRIOR_REPORT_KIND = 'prior_report'
DICOM_CONTENT_TYPE = 'application/dicom'

MAX_ZIP_ENTRIES = 20_000
# Entries larger than RATIO_CHECK_MIN_BYTES that expand more than MAX_COMPRESSION_RATIO times are
# rejected as zip bombs. zipfile never extracts more than an entry's declared size, so the declared
# totals checked before extraction are the main protection and this ratio is a second one.
# NOTE: an almost blank uncompressed image over 1 MiB could exceed 200:1 and get a genuine CD rejected.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_PRIOR_REPORT_BYTES = 50 * 1024 * 1024
MAX_PRIOR_REPORT_FILES = 10
MAX_SKIPPED_NAMES = 50  # names listed in UploadSummary.skipped_names, while skipped_count has the full count
MAX_NAMES_IN_MESSAGE = 30
THUMBNAIL_ATTEMPTS_PER_SERIES = 3
MAX_NAME_LENGTH = 255  # the length of StudyFile.original_name

ZIP_MAGICS = (b'PK\x03\x04', b'PK\x05\x06')  # a local file header, or the end record of an empty archive
OTHER_ARCHIVE_MAGICS = {b'Rar!': 'RAR', b"7z\xbc\xaf'\x1c": '7-Zip', b'\x1f\x8b': 'gzip'}
# Magic bytes, content type and file extension of the formats accepted for the first radiologist's report.
PRIOR_REPORT_TYPES = (
    (b'%PDF-', 'application/pdf', '.pdf'),
    (b'\x89PNG\r\n\x1a\n', 'image/png', '.png'),
    (b'\xff\xd8\xff', 'image/jpeg', '.jpg'),
)
NOT_DICOM_REMEDY = N_('Choose only DICOM images or a .zip of the CD and upload again.')
MAX_REJECTED_FILES_LISTED = 50  # per-file reasons an upload error lists; the rest are only counted
ARCHIVE_REMEDY = N_('Create the .zip again from the CD folder with standard settings and no password, and upload '
                    'it.')


# --- Results returned to pages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadSummary:
    """Outcome of one add_files call. study_count and series_count cover the images this call added."""

    accepted: int
    duplicates: int
    skipped_names: list[str]
    skipped_count: int
    study_count: int
    series_count: int


@dataclass(frozen=True)
class SeriesSummary:
    id: int
    number: int | None
    modality: str
    description: str
    image_count: int
    has_thumbnail: bool
    body_part: str = ''
    # In de-identified review: why the pixels may show identifying text, or '' (see burned_in_text_reason).
    burned_in_text: str = ''


@dataclass(frozen=True)
class StudySummary:
    uid: str
    date: dt.date | None
    description: str
    modality: str  # the modalities of its series, joined with "/"
    series: list[SeriesSummary]
    patient_name: str = ''  # as dicom_patient.patient_name formats it
    patient_sex: str = ''  # M, F or O
    patient_age: str = ''  # readable, such as "45 years"


@dataclass(frozen=True)
class PriorReportFile:
    id: int
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ExamImages:
    """The uploaded images of an examination and its prior report files. total_bytes counts DICOM files only."""

    studies: list[StudySummary]
    study_count: int
    series_count: int
    image_count: int
    total_bytes: int
    prior_reports: list[PriorReportFile]
    deidentified: bool = False  # the actor gets de-identified images, so the patient names are left out
    # Prior report files withheld from the actor in de-identified review, because their text and
    # letterheads name the patient and no redaction of PDFs and photos is reliable enough.
    prior_reports_withheld: int = 0


# --- Upload of DICOM files and zip archives ---------------------------------------------------------------------


def add_files(*, actor: Actor, examination_id: str, files: list[tuple[str, Path]],
              folder: bool = False, move_files: bool = False) -> UploadSummary:
    """Store DICOM files and zipped CDs in the acting patient's draft examination.

    Each item is the file name as the browser sent it and the path of a local temporary file.
    Raises ValidationError naming every rejected file when any file is rejected, and then stores
    nothing. An image whose SOP Instance UID the examination already has is counted as a duplicate.
    With `folder`, the files are the contents of a chosen folder, such as a CD copied to disk, and
    files that are not DICOM are skipped as they are in a zip, rather than refused. With `move_files`,
    the DICOM files are moved into storage instead of copied, so the caller must not need them afterwards.
    """
    if not files:
        raise ValidationError(N_('No files were uploaded. Choose DICOM files or a .zip of the CD.'), field='files')
    settings = get_settings()
    with session_scope() as session:
        access.get_own_draft(session, actor, examination_id)
        batch = _UploadBatch(examination_id, get_storage(), settings, folder=folder, move_files=move_files)
        batch.load_existing(session)

    try:
        for name, path in files:
            batch.add_upload(_display_name(name), Path(path))
        batch.raise_if_rejected()
        try:
            with session_scope() as session:
                summary, unused_keys = _insert_rows(session, actor, examination_id, batch)
        except IntegrityError as error:
            # Two uploads created the same study or series at the same moment. The one that lost may retry.
            logger.warning('examination %s: upload collided with a concurrent upload: %s', examination_id, error.orig)
            raise ConflictError(N_('Another upload to this examination was saved at the same moment. Upload the files '
                                   'again; images that are already stored are skipped.')) from error
    except BaseException:
        _delete_blobs(batch.storage, batch.written_keys, examination_id)
        raise

    _delete_blobs(batch.storage, unused_keys, examination_id)
    logger.info('examination %s: stored %d images (%d duplicates, %d skipped) in %d series by user %s',
                examination_id, summary.accepted, summary.duplicates, summary.skipped_count,
                summary.series_count, actor.user_id)
    return summary


@dataclass(frozen=True)
class _Rejection:
    name: str
    message: str  # full sentences with the file name and the remedy, empty when not_dicom is set
    not_dicom: bool = False


@dataclass(frozen=True)
class _StagedFile:
    """A DICOM file already written to storage, waiting for its row."""

    name: str
    key: str
    size: int
    sha256: str
    info: DicomInfo


@dataclass
class _UploadBatch:
    """State of one add_files call: what was stored, skipped and rejected so far."""

    examination_id: str
    storage: BlobStorage
    settings: Settings
    folder: bool = False
    move_files: bool = False
    existing_sop_uids: set[str] = field(default_factory=set)
    existing_bytes: int = 0
    series_with_thumbnail: set[tuple[str, str]] = field(default_factory=set)

    staged: list[_StagedFile] = field(default_factory=list)
    written_keys: list[str] = field(default_factory=list)
    rejections: list[_Rejection] = field(default_factory=list)
    batch_sop_uids: set[str] = field(default_factory=set)
    new_bytes: int = 0
    duplicates: int = 0
    skipped_names: list[str] = field(default_factory=list)
    skipped_count: int = 0
    thumbnails: dict[tuple[str, str], str] = field(default_factory=dict)
    thumbnail_attempts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def load_existing(self, session: Session) -> None:
        """Read the SOP Instance UIDs, byte total and thumbnails the examination already has."""
        self.existing_sop_uids = set(session.scalars(
            select(StudyFile.sop_instance_uid).where(StudyFile.examination_id == self.examination_id,
                                                     StudyFile.kind == DICOM_KIND)))
        self.existing_bytes = dicom_bytes(session, self.examination_id)
        rows = session.execute(
            select(Study.study_instance_uid, Series.series_instance_uid)
            .join(Series, Series.study_id == Study.id)
            .where(Study.examination_id == self.examination_id, Series.thumbnail_key.is_not(None)))
        self.series_with_thumbnail = {(study_uid, series_uid) for study_uid, series_uid in rows}

    @property
    def stores_blobs(self) -> bool:
        """False once the call is bound to fail, so the rest is only checked to report every rejected file."""
        return not self.rejections and self.existing_bytes + self.new_bytes <= self.settings.max_examination_bytes

    def reject(self, name: str, message: str) -> None:
        self.rejections.append(_Rejection(name, message))

    def skip(self, name: str) -> None:
        self.skipped_count += 1
        if len(self.skipped_names) < MAX_SKIPPED_NAMES:
            self.skipped_names.append(name)

    def add_upload(self, name: str, path: Path) -> None:
        """Add one uploaded file: a zip archive (recognized by its magic bytes, whatever its name) or a DICOM file."""
        # closing() removes a zip's temporary folder at once when storing an entry raises.
        with contextlib.closing(classify_upload(name, path, self.settings, folder=self.folder)) as items:
            for item in items:
                self._add_item(item)

    def _add_item(self, item: IntakeItem) -> None:
        if item.outcome == DICOM_OUTCOME and item.path is not None and item.info is not None:
            self._add_dicom(item.name, item.path, item.info)
        elif item.outcome == SKIPPED_OUTCOME:
            self.skip(item.name)
        else:
            self.rejections.append(_Rejection(item.name, '' if item.not_dicom else item.reason,
                                              not_dicom=item.not_dicom))

    def _add_dicom(self, name: str, path: Path, info: DicomInfo) -> None:
        sop_uid = info.sop_instance_uid
        if sop_uid in self.existing_sop_uids or sop_uid in self.batch_sop_uids:
            self.duplicates += 1
            return
        self.batch_sop_uids.add(sop_uid)
        self.new_bytes += path.stat().st_size
        if not self.stores_blobs:
            return

        self._store_thumbnail(path, info)  # before storing, which moves the file away with move_files
        key = f'exams/{self.examination_id}/files/{uuid.uuid4().hex}.dcm'
        self.written_keys.append(key)  # before writing, so a failed write is cleaned up too
        if self.move_files:
            with path.open('rb') as file:
                sha256 = hashlib.file_digest(file, 'sha256').hexdigest()
            size = self.storage.move_file(key, path)
        else:
            digest = hashlib.sha256()
            size = self.storage.save(key, _hashing(iter_file_chunks(path), digest))
            sha256 = digest.hexdigest()
        self.staged.append(_StagedFile(name=name, key=key, size=size, sha256=sha256, info=info))

    def _store_thumbnail(self, path: Path, info: DicomInfo) -> None:
        """Render the series thumbnail from the first of its instances that decodes, trying a few at most."""
        series_key = (info.study_instance_uid, info.series_instance_uid)
        if series_key in self.series_with_thumbnail:
            return
        if self.thumbnail_attempts[series_key] >= THUMBNAIL_ATTEMPTS_PER_SERIES:
            return
        self.thumbnail_attempts[series_key] += 1
        png = render_thumbnail(path)
        if png is None:
            return
        key = f'exams/{self.examination_id}/thumbnails/{uuid.uuid4().hex}.png'
        self.written_keys.append(key)
        self.storage.save(key, [png])
        self.thumbnails[series_key] = key
        self.series_with_thumbnail.add(series_key)

    def raise_if_rejected(self) -> None:
        """Raise one ValidationError that lists every rejected file, or when the call found no image at all."""
        limit = self.settings.max_examination_bytes
        if self.existing_bytes + self.new_bytes > limit:
            self.reject('', Message(N_('This upload has {size} of images and the examination already has '
                                       '{existing}, more than the limit of {limit} per examination. Upload fewer '
                                       'images.'), size=format_bytes(self.new_bytes),
                                    existing=format_bytes(self.existing_bytes), limit=format_bytes(limit)))
        if self.rejections:
            logger.info('examination %s: upload rejected, %d files rejected', self.examination_id,
                        len(self.rejections))
            raise FilesRejectedError(_rejection_message(self.rejections), files=_rejected_files(self.rejections))
        if not self.staged and not self.duplicates:
            raise ValidationError(N_('No DICOM images were found in this upload (a DICOMDIR file is only the index '
                                     'of a CD). Upload the image files or a .zip of the whole CD.'), field='files')


# --- Classification of uploaded files, shared by the upload and `main.py inspect-study` -----------------------

DICOM_OUTCOME = 'dicom'
SKIPPED_OUTCOME = 'skipped'
REJECTED_OUTCOME = 'rejected'
DICOMDIR_SKIP_REASON = 'DICOMDIR, the index of a CD, whose images are read as separate files'
NOT_DICOM_SKIP_REASON = 'not a DICOM file'


@dataclass(frozen=True)
class IntakeItem:
    """The outcome for one uploaded file or zip entry: a DICOM image, a skipped file or a rejection.

    For a DICOM item, `path` is the file to read. For a zip entry it is a temporary file that is
    deleted when the generator that yielded the item resumes. `reason` gives why a file was skipped,
    or is the full rejection message with the file name and the remedy. When `not_dicom` is set the
    upload names the file in one shared sentence instead of using `reason`. `scanned` is False for
    the rejection of an archive that contains no DICOM images, which is not a file of its own.
    """

    name: str
    outcome: str  # DICOM_OUTCOME, SKIPPED_OUTCOME or REJECTED_OUTCOME
    info: DicomInfo | None = None
    path: Path | None = None
    reason: str = ''
    not_dicom: bool = False
    scanned: bool = True


def _rejected(name: str, reason: str, *, not_dicom: bool = False, scanned: bool = True) -> IntakeItem:
    return IntakeItem(name=name, outcome=REJECTED_OUTCOME, reason=reason, not_dicom=not_dicom, scanned=scanned)


def classify_member(name: str, path: Path) -> IntakeItem:
    """Classify a file from a zip archive or a CD folder: a DICOM image, or skipped when it is a DICOMDIR or not DICOM.

    A file whose header exceeds the read limits of read_dicom_info is rejected with its own message.
    """
    try:
        info = read_dicom_info(path)
    except HeaderTooLargeError:
        return _rejected(name, Message(N_('{name} could not be read, because its DICOM header is larger or has '
                                          'more elements than this service reads before the image data. Remove '
                                          'the file from the upload and upload again.'), name=name))
    if info is None:
        return IntakeItem(name=name, outcome=SKIPPED_OUTCOME, reason=NOT_DICOM_SKIP_REASON)
    if info.is_dicomdir:
        return IntakeItem(name=name, outcome=SKIPPED_OUTCOME, reason=DICOMDIR_SKIP_REASON)
    return IntakeItem(name=name, outcome=DICOM_OUTCOME, info=info, path=path)


def classify_upload(name: str, path: Path, settings: Settings, *, folder: bool = False) -> Iterator[IntakeItem]:
    """Classify one uploaded file: a zip archive (recognized by its magic bytes, whatever its name) or a DICOM file.

    Yields one item for a loose file and one per entry of a zip, plus a rejection when the zip has
    no DICOM image. Nothing is stored, so the upload and `main.py inspect-study` both use this.
    With `folder`, the file comes from a chosen folder and is skipped, not rejected, when it is not DICOM.
    """
    with path.open('rb') as file:
        magic = file.read(8)
    if magic.startswith(ZIP_MAGICS):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError):
            # A damaged archive, or a DICOM file whose free-form preamble starts like a zip.
            if parse_dicom(path) is None:
                yield _rejected(name, JoinedMessage([Message(N_('{name} is a damaged .zip archive.'), name=name),
                                                     Message(ARCHIVE_REMEDY)]))
                return
        else:
            with archive:
                yield from _classify_archive(name, archive, settings)
            return
    for archive_magic, archive_format in OTHER_ARCHIVE_MAGICS.items():
        if magic.startswith(archive_magic) and folder:
            yield IntakeItem(name=name, outcome=SKIPPED_OUTCOME, reason=NOT_DICOM_SKIP_REASON)
            return
        if magic.startswith(archive_magic):
            yield _rejected(name, Message(N_('{name} is a {format} archive, and only .zip archives can be read. '
                                             'Create a .zip of the CD folder and upload it.'),
                                          name=name, format=archive_format))
            return
    yield _classify_loose_file(name, path, settings, folder=folder)


def _classify_loose_file(name: str, path: Path, settings: Settings, *, folder: bool) -> IntakeItem:
    size = path.stat().st_size
    if size > settings.max_file_bytes:
        return _rejected(name, Message(N_('{name} is {size}, more than the limit of {limit} per file. Remove it '
                                          'from the upload.'),
                                       name=name, size=format_bytes(size), limit=format_bytes(settings.max_file_bytes)))
    item = classify_member(name, path)
    if item.outcome == SKIPPED_OUTCOME and item.reason == NOT_DICOM_SKIP_REASON and not folder:
        if name.lower().endswith('.zip'):
            return _rejected(name, JoinedMessage([Message(N_('{name} is not a valid .zip archive.'), name=name),
                                                  Message(ARCHIVE_REMEDY)]))
        return _rejected(name, _not_dicom_message(name), not_dicom=True)
    return item


def _classify_archive(name: str, archive: zipfile.ZipFile, settings: Settings) -> Iterator[IntakeItem]:
    """Extract the entries one at a time to a temporary file and classify each one."""
    entries = archive.infolist()
    problem = _check_archive_entries(name, entries, settings)
    if problem:
        yield _rejected(name, problem)
        return

    found_dicom = False
    with tempfile.TemporaryDirectory(prefix='secondopinion-zip-') as folder:
        entry_path = Path(folder) / 'entry'
        for position, entry in enumerate(entries):
            if entry.is_dir() or entry.filename.startswith('__MACOSX/'):
                continue  # folders, and the resource forks macOS adds to archives
            try:
                _extract_entry(archive, entry, entry_path)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
                logger.info('zip entry %d of an upload could not be extracted: %s', position, error)
                yield _rejected(name, JoinedMessage([
                    Message(N_('{name} is damaged or uses an unsupported compression method (entry "{entry}").'),
                            name=name, entry=entry.filename),
                    Message(ARCHIVE_REMEDY)]))
                return
            try:
                item = classify_member(f'{name}/{entry.filename}', entry_path)
                found_dicom = found_dicom or item.outcome == DICOM_OUTCOME
                yield item
            finally:
                entry_path.unlink(missing_ok=True)

    if not found_dicom:
        yield _rejected(name, Message(N_('{name} contains no DICOM images. Upload a .zip of the whole CD or DVD, '
                                         'or the DICOM files themselves.'), name=name), scanned=False)


def _check_archive_entries(name: str, entries: list[zipfile.ZipInfo], settings: Settings) -> Message | None:
    """Return why the archive `name` is rejected and what to do, or None when its entries are acceptable."""
    split_remedy = Message(N_('Upload the images in several smaller .zip files.'))
    if len(entries) > MAX_ZIP_ENTRIES:
        return JoinedMessage([Message(N_('{name} contains {count} entries, more than the limit of {limit}.'),
                                      name=name, count=f'{len(entries):,}', limit=f'{MAX_ZIP_ENTRIES:,}'),
                              split_remedy])
    total = 0
    for entry in entries:
        if _is_unsafe_entry_name(entry.filename):
            return JoinedMessage([Message(N_('{name} contains the entry "{entry}", whose absolute path or ".." is '
                                             'not allowed.'), name=name, entry=entry.filename),
                                  Message(ARCHIVE_REMEDY)])
        if entry.flag_bits & 0x1:
            return JoinedMessage([Message(N_('{name} is password-protected, so its entries cannot be read.'),
                                          name=name),
                                  Message(ARCHIVE_REMEDY)])
        if entry.file_size > settings.max_file_bytes:
            return Message(N_('{name} contains the entry "{entry}" of {size}, more than the limit of {limit} per '
                              'file. Remove it from the archive.'), name=name, entry=entry.filename,
                           size=format_bytes(entry.file_size), limit=format_bytes(settings.max_file_bytes))
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            return JoinedMessage([Message(N_('{name} contains the entry "{entry}" with a compression ratio of '
                                             '{ratio}:1, above the limit of {limit}:1 that protects against zip '
                                             'bombs.'), name=name, entry=entry.filename, ratio=f'{ratio:,.0f}',
                                          limit=MAX_COMPRESSION_RATIO),
                                  Message(ARCHIVE_REMEDY)])
        total += entry.file_size
    if total > settings.max_examination_bytes:
        return Message(N_('{name} expands to {size}, more than the limit of {limit} per examination. Upload fewer '
                          'images.'), name=name, size=format_bytes(total),
                       limit=format_bytes(settings.max_examination_bytes))
    return None


def _is_unsafe_entry_name(name: str) -> bool:
    normalized = name.replace('\\', '/')
    if normalized.startswith('/') or re.match(r'^[A-Za-z]:', normalized):
        return True
    return '..' in normalized.split('/')


def _extract_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: Path) -> None:
    """Copy one entry to the target file in chunks. zipfile checks the CRC and stops at the declared size."""
    written = 0
    with archive.open(entry) as source, target.open('wb') as output:
        while chunk := source.read(CHUNK_SIZE):
            written += len(chunk)
            if written > entry.file_size:
                raise zipfile.BadZipFile('entry is larger than its header states')
            output.write(chunk)


def _hashing(chunks: Iterator[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _insert_rows(session: Session, actor: Actor, examination_id: str,
                 batch: _UploadBatch) -> tuple[UploadSummary, list[str]]:
    """Insert the studies, series and files of the staged blobs.

    Checks the draft state, duplicates and the size limit again, because another upload may have
    committed since the batch started. Returns the summary and the keys of blobs that no row uses.
    """
    access.get_own_draft(session, actor, examination_id)
    existing_uids = set(session.scalars(
        select(StudyFile.sop_instance_uid).where(StudyFile.examination_id == examination_id,
                                                 StudyFile.kind == DICOM_KIND)))
    existing_bytes = dicom_bytes(session, examination_id)
    studies = {study.study_instance_uid: study for study in session.scalars(
        select(Study).where(Study.examination_id == examination_id))}
    series_by_uid: dict[tuple[str, str], Series] = {}
    modalities: dict[str, set[str]] = {uid: set() for uid in studies}
    for study in studies.values():
        for series in study.series:
            series_by_uid[(study.study_instance_uid, series.series_instance_uid)] = series
            modalities[study.study_instance_uid].add(series.modality)

    unused_keys: list[str] = []
    added_bytes = 0
    late_duplicates = 0
    touched_studies: set[str] = set()
    touched_series: set[tuple[str, str]] = set()
    for staged in batch.staged:
        info = staged.info
        if info.sop_instance_uid in existing_uids:
            late_duplicates += 1
            unused_keys.append(staged.key)
            continue
        existing_uids.add(info.sop_instance_uid)

        study = studies.get(info.study_instance_uid)
        if study is None:
            study = Study(examination_id=examination_id, study_instance_uid=info.study_instance_uid)
            session.add(study)
            studies[info.study_instance_uid] = study
            modalities[info.study_instance_uid] = set()
        study.study_date = study.study_date or info.study_date
        study.description = study.description or info.study_description[:200]
        study.patient_name = study.patient_name or info.patient_name[:200]
        study.patient_sex = study.patient_sex or info.patient_sex[:16]
        study.patient_age = study.patient_age or info.patient_age[:16]

        series_key = (info.study_instance_uid, info.series_instance_uid)
        series = series_by_uid.get(series_key)
        if series is None:
            series = Series(study=study, series_instance_uid=info.series_instance_uid, number=info.series_number,
                            modality=info.modality[:16], description=info.series_description[:200])
            session.add(series)
            series_by_uid[series_key] = series
        series.body_part = series.body_part or info.body_part[:64]
        modalities[info.study_instance_uid].add(series.modality)
        study.modality = _join_modalities(modalities[info.study_instance_uid])

        session.add(StudyFile(
            examination_id=examination_id, series=series, kind=DICOM_KIND, original_name=_fit_name(staged.name),
            storage_key=staged.key, content_type=DICOM_CONTENT_TYPE, size_bytes=staged.size, sha256=staged.sha256,
            sop_instance_uid=info.sop_instance_uid, instance_number=info.instance_number))
        added_bytes += staged.size
        touched_studies.add(info.study_instance_uid)
        touched_series.add(series_key)

    for series_key, thumbnail_key in batch.thumbnails.items():
        series = series_by_uid.get(series_key)
        if series is not None and series.thumbnail_key is None:
            series.thumbnail_key = thumbnail_key
        else:
            unused_keys.append(thumbnail_key)

    limit = batch.settings.max_examination_bytes
    if existing_bytes + added_bytes > limit:
        raise ValidationError(N_('This upload has {size} of images and the examination already has {stored}, '
                                 'more than the limit of {limit} per examination. Upload fewer images.'),
                              field='files', size=format_bytes(added_bytes), stored=format_bytes(existing_bytes),
                              limit=format_bytes(limit))

    accepted = len(batch.staged) - late_duplicates
    if accepted:
        audit.record(session, actor, 'study.uploaded', 'examination', examination_id, files=accepted,
                     duplicates=batch.duplicates + late_duplicates, studies=len(touched_studies),
                     series=len(touched_series))
    summary = UploadSummary(accepted=accepted, duplicates=batch.duplicates + late_duplicates,
                            skipped_names=list(batch.skipped_names), skipped_count=batch.skipped_count,
                            study_count=len(touched_studies), series_count=len(touched_series))
    return summary, unused_keys


def _join_modalities(modalities: set[str]) -> str:
    return '/'.join(sorted(modality for modality in modalities if modality))[:16]


class FilesRejectedError(ValidationError):
    """An upload with rejected files. The message covers all of them, and `files` pairs each name with its reason.

    The name is '' for a rejection of the whole upload, such as the size limit per examination.
    """

    def __init__(self, message: str, *, files: list[tuple[str, str]]) -> None:
        # The message is a JoinedMessage of translated parts, so it goes in as a placeholder value.
        super().__init__('{reasons}', field='files', reasons=message)
        self.files = files


def _rejected_files(rejections: list[_Rejection]) -> list[tuple[str, str]]:
    """Return (file name, reason) per rejection, at most MAX_REJECTED_FILES_LISTED of them; reasons are Messages."""
    listed: list[tuple[str, str]] = [
        (rejection.name, Message(N_('Not a DICOM file.')) if rejection.not_dicom else rejection.message)
        for rejection in rejections[:MAX_REJECTED_FILES_LISTED]]
    if len(rejections) > MAX_REJECTED_FILES_LISTED:
        listed.append(('', Message(N_('{count} more files were rejected.'),
                                   count=len(rejections) - MAX_REJECTED_FILES_LISTED)))
    return listed


def _not_dicom_message(name: str) -> Message:
    return JoinedMessage([Message(N_('{name} is not a DICOM file.'), name=name), Message(NOT_DICOM_REMEDY)])


def _rejection_message(rejections: list[_Rejection]) -> JoinedMessage:
    """Compose one message: the files that are not DICOM in one sentence, every other rejection in its own.

    Each sentence is a Message, so the whole is translated where it is shown.
    """
    parts: list[str] = []
    not_dicom = [rejection.name for rejection in rejections if rejection.not_dicom]
    if len(not_dicom) == 1:
        parts.append(_not_dicom_message(not_dicom[0]))
    elif not_dicom:
        parts.append(Message(N_('{count} files are not DICOM files: {names}.'), count=len(not_dicom),
                             names=name_list(not_dicom)))
        parts.append(Message(NOT_DICOM_REMEDY))
    parts.extend(rejection.message for rejection in rejections if not rejection.not_dicom)
    parts.append(Message(N_('Nothing from this upload was saved.')))
    return JoinedMessage(parts)


def name_list(names: list[str]) -> str:
    listed = ', '.join(names[:MAX_NAMES_IN_MESSAGE])
    if len(names) > MAX_NAMES_IN_MESSAGE:
        return Message(N_('{names} and {count} more'), names=listed, count=len(names) - MAX_NAMES_IN_MESSAGE)
    return listed


# --- Prior report files and removal -----------------------------------------------------------------------------


def add_prior_report_file(*, actor: Actor, examination_id: str, filename: str, path: Path) -> None:
    """Store the first radiologist's report (PDF, PNG or JPEG, recognized by its magic bytes) in a draft."""
    name = _display_name(filename)
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValidationError(N_('{name} is empty. Choose the report file again.'), field='prior_report', name=name)
    if size > MAX_PRIOR_REPORT_BYTES:
        raise ValidationError(N_('{name} is {size}, more than the limit of {limit} for a report. Upload a smaller '
                                 'PDF or photo.'), field='prior_report', name=name, size=format_bytes(size),
                              limit=format_bytes(MAX_PRIOR_REPORT_BYTES))
    with path.open('rb') as file:
        magic = file.read(8)
    detected = next(((content_type, extension) for prefix, content_type, extension in PRIOR_REPORT_TYPES
                     if magic.startswith(prefix)), None)
    if detected is None:
        raise ValidationError(N_('{name} is not a PDF, PNG or JPEG file. Upload the first report as a PDF, '
                                 'or a photo of it as PNG or JPEG.'), field='prior_report', name=name)
    content_type, extension = detected

    with session_scope() as session:
        access.get_own_draft(session, actor, examination_id)
        _check_prior_report_count(session, examination_id)

    storage = get_storage()
    key = f'exams/{examination_id}/prior-reports/{uuid.uuid4().hex}{extension}'
    digest = hashlib.sha256()
    try:
        stored_size = storage.save(key, _hashing(iter_file_chunks(path), digest))
        with session_scope() as session:
            access.get_own_draft(session, actor, examination_id)
            _check_prior_report_count(session, examination_id)
            row = StudyFile(examination_id=examination_id, series_id=None, kind=PRIOR_REPORT_KIND,
                            original_name=_fit_name(name), storage_key=key, content_type=content_type,
                            size_bytes=stored_size, sha256=digest.hexdigest())
            session.add(row)
            session.flush()
            audit.record(session, actor, 'prior_report.uploaded', 'examination', examination_id, file_id=row.id)
            file_id = row.id
    except BaseException:
        _delete_blobs(storage, [key], examination_id)
        raise
    logger.info('examination %s: prior report file %s stored by user %s', examination_id, file_id, actor.user_id)


def _check_prior_report_count(session: Session, examination_id: str) -> None:
    count = session.scalar(select(func.count()).select_from(StudyFile).where(
        StudyFile.examination_id == examination_id, StudyFile.kind == PRIOR_REPORT_KIND))
    if count >= MAX_PRIOR_REPORT_FILES:
        raise ValidationError(N_('An examination can have at most {maximum} report files. Remove one before '
                                 'adding another.'), field='prior_report', maximum=MAX_PRIOR_REPORT_FILES)


def remove_file(*, actor: Actor, examination_id: str, file_id: int) -> None:
    """Remove a prior report file from a draft. DICOM images are removed all together with clear_images."""
    with session_scope() as session:
        access.get_own_draft(session, actor, examination_id)
        row = session.scalar(select(StudyFile).where(StudyFile.id == file_id,
                                                     StudyFile.examination_id == examination_id,
                                                     StudyFile.kind == PRIOR_REPORT_KIND))
        if row is None:
            raise NotFoundError(N_('File'))
        key = row.storage_key
        session.delete(row)
        audit.record(session, actor, 'prior_report.removed', 'examination', examination_id, file_id=file_id)
    _delete_blobs(get_storage(), [key], examination_id)
    logger.info('examination %s: prior report file %s removed by user %s', examination_id, file_id, actor.user_id)


def clear_images(*, actor: Actor, examination_id: str) -> None:
    """Delete every DICOM file, series and study of a draft: the rows first, then the blobs as far as possible."""
    with session_scope() as session:
        access.get_own_draft(session, actor, examination_id)
        file_keys = list(session.scalars(select(StudyFile.storage_key).where(
            StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND)))
        study_ids = select(Study.id).where(Study.examination_id == examination_id)
        thumbnail_keys = list(session.scalars(select(Series.thumbnail_key).where(
            Series.study_id.in_(study_ids), Series.thumbnail_key.is_not(None))))
        session.execute(delete(StudyFile).where(StudyFile.examination_id == examination_id,
                                                StudyFile.kind == DICOM_KIND))
        session.execute(delete(Series).where(Series.study_id.in_(study_ids)))
        session.execute(delete(Study).where(Study.examination_id == examination_id))
        audit.record(session, actor, 'images.cleared', 'examination', examination_id, files=len(file_keys))
    _delete_blobs(get_storage(), file_keys + thumbnail_keys, examination_id)
    logger.info('examination %s: %d images cleared by user %s', examination_id, len(file_keys), actor.user_id)


def _delete_blobs(storage: BlobStorage, keys: list[str], examination_id: str) -> None:
    """Delete blobs one by one. A failure is logged, and the remaining blobs are still deleted."""
    failures = 0
    for key in keys:
        try:
            storage.delete(key)
        except OSError as error:
            failures += 1
            logger.warning('examination %s: blob %s could not be deleted: %s', examination_id, key, error)
    if failures:
        logger.error('examination %s: %d of %d blobs could not be deleted and remain in storage',
                     examination_id, failures, len(keys))


# --- Reading: summary, thumbnails, prior reports ----------------------------------------------------------------


def get_study_summary(*, actor: Actor, examination_id: str) -> ExamImages:
    """Return the studies, series and prior report files of an examination the actor may see."""
    with session_scope() as session:
        exam = access.get_visible_exam(session, actor, examination_id)
        deidentified = review_policy.applies(session, actor, exam)
        counts = {series_id: (count, total) for series_id, count, total in session.execute(
            select(StudyFile.series_id, func.count(), func.coalesce(func.sum(StudyFile.size_bytes), 0))
            .where(StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND)
            .group_by(StudyFile.series_id))}
        studies = list(session.scalars(select(Study).where(Study.examination_id == examination_id)))
        burned_in = _burned_in_series(session, examination_id) if deidentified else {}
        study_summaries = [_summarize_study(study, counts, hide_name=deidentified, burned_in=burned_in)
                           for study in studies]
        reports = session.scalars(select(StudyFile).where(
            StudyFile.examination_id == examination_id, StudyFile.kind == PRIOR_REPORT_KIND).order_by(StudyFile.id))
        prior_reports = [PriorReportFile(id=row.id, name=row.original_name, content_type=row.content_type,
                                         size=row.size_bytes) for row in reports]
    withheld = len(prior_reports) if deidentified else 0
    if deidentified:
        prior_reports = []

    study_summaries.sort(key=lambda study: (study.date is None, study.date or dt.date.min, study.uid))
    return ExamImages(
        studies=study_summaries,
        study_count=len(study_summaries),
        series_count=sum(len(study.series) for study in study_summaries),
        image_count=sum(count for count, _ in counts.values()),
        total_bytes=sum(total for _, total in counts.values()),
        prior_reports=prior_reports,
        deidentified=deidentified,
        prior_reports_withheld=withheld,
    )


def _summarize_study(study: Study, counts: dict[int | None, tuple[int, int]], *, hide_name: bool,
                     burned_in: dict[int, str]) -> StudySummary:
    series = [SeriesSummary(id=row.id, number=row.number, modality=row.modality, description=row.description,
                            image_count=counts.get(row.id, (0, 0))[0], has_thumbnail=row.thumbnail_key is not None,
                            body_part=row.body_part, burned_in_text=burned_in.get(row.id, ''))
              for row in study.series]
    series.sort(key=lambda item: (item.number is None, item.number or 0, item.id))
    return StudySummary(uid=study.study_instance_uid, date=_parse_date(study.study_date),
                        description=study.description, modality=study.modality, series=series,
                        patient_name='' if hide_name else study.patient_name, patient_sex=study.patient_sex,
                        patient_age=format_age(study.patient_age))


def _burned_in_series(session: Session, examination_id: str) -> dict[int, str]:
    """Return, per series id, why its pixels may show identifying text; series without a reason are left out.

    Reads the header of the first file of each series, so a page costs one small read per series.
    """
    # NOTE: a series whose first file is clean but a later one has BurnedInAnnotation YES is not
    # flagged here. The zip download checks every file and flags that one by name.
    first_files = session.execute(
        select(StudyFile.series_id, func.min(StudyFile.id)).where(
            StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND,
            StudyFile.series_id.is_not(None)).group_by(StudyFile.series_id)).all()
    keys = dict(session.execute(select(StudyFile.id, StudyFile.storage_key)
                                .where(StudyFile.id.in_([file_id for _series_id, file_id in first_files]))).all())
    storage = get_storage()
    reasons = {}
    for series_id, file_id in first_files:
        try:
            with storage.open(keys[file_id]) as file:
                header = pydicom.dcmread(file, stop_before_pixels=True, force=True,
                                         specific_tags=['BurnedInAnnotation', 'Modality', 'SOPClassUID'])
        except (FileNotFoundError, pydicom.errors.InvalidDicomError) as error:
            logger.error('examination %s: header of file %s of series %s could not be read (%s), so the series '
                         'is flagged for burned-in text', examination_id, file_id, series_id, error)
            reasons[series_id] = 'its header could not be read'
            continue
        reason = burned_in_text_reason(header)
        if reason:
            reasons[series_id] = reason
    return reasons


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, '%Y%m%d').date()
    except ValueError:
        return None


def _require_image_access(session: Session, actor: Actor, examination_id: str) -> None:
    """Raise NotFoundError unless the actor may see this examination's image data."""
    exam = access.get_visible_exam(session, actor, examination_id)
    if not access.can_view_images(actor, exam):
        raise NotFoundError(N_('Examination'))


def get_thumbnail(*, actor: Actor, examination_id: str, series_id: int) -> bytes:
    """Return the PNG thumbnail of a series of the examination.

    No audit row: thumbnails are part of the page that shows them, whose opening is recorded once
    (`examination.viewed`). A refusal is still recorded by the access check.
    """
    with session_scope() as session:
        _require_image_access(session, actor, examination_id)
        key = session.scalar(select(Series.thumbnail_key).join(Study, Series.study_id == Study.id).where(
            Series.id == series_id, Study.examination_id == examination_id))
    if key is None:
        raise NotFoundError(N_('Thumbnail'))
    try:
        return b''.join(get_storage().iter_chunks(key))
    except FileNotFoundError:
        logger.error('examination %s: thumbnail blob %s of series %s is missing', examination_id, key, series_id)
        raise NotFoundError(N_('Thumbnail')) from None


def open_prior_report(*, actor: Actor, examination_id: str, file_id: int) -> tuple[str, str, Iterator[bytes]]:
    """Return the name, content type and content chunks of a prior report file of the examination.

    A doctor in de-identified review gets NotFoundError: the files are served as uploaded, with the patient's name.
    """
    storage = get_storage()
    with session_scope() as session:
        exam = access.get_visible_exam(session, actor, examination_id)
        if not access.can_view_images(actor, exam):
            raise NotFoundError('Examination')
        if review_policy.applies(session, actor, exam):
            raise access.deny(session, actor, exam, 'prior report files are withheld in de-identified review')
        row = session.scalar(select(StudyFile).where(StudyFile.id == file_id,
                                                     StudyFile.examination_id == examination_id,
                                                     StudyFile.kind == PRIOR_REPORT_KIND))
        if row is None:
            raise NotFoundError(N_('File'))
        name, content_type, key = row.original_name, row.content_type, row.storage_key
        if not storage.exists(key):
            logger.error('examination %s: blob %s of prior report file %s is missing', examination_id, key, file_id)
            raise NotFoundError(N_('File'))
        audit.record(session, actor, 'prior_report.downloaded', 'examination', examination_id, file_id=file_id)
    return name, content_type, storage.iter_chunks(key)


# --- Zip download -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArchiveEntry:
    name: str
    key: str
    size: int
    sha256: str


class StoredFileCorruptError(Exception):
    """A stored file no longer matches the SHA-256 recorded at upload."""


def stream_images_zip(*, actor: Actor, examination_id: str) -> tuple[str, Iterator[bytes]]:
    """Return the download file name and a generator of a zip with every DICOM file of the examination.

    Access is checked and the audit event written before the first byte. The generator reads one
    blob chunk at a time, so memory use does not grow with the study size. When the examination is
    reviewed de-identified (see review_policy), a doctor gets de-identified copies instead, each
    built in memory one file at a time.
    """
    with session_scope() as session:
        exam = access.get_visible_exam(session, actor, examination_id)
        if not access.can_view_images(actor, exam):
            raise NotFoundError(N_('Examination'))
        map_uid = review_policy.exam_uid_mapper(exam.id) if review_policy.applies(session, actor, exam) else None
        rows = session.execute(
            select(Study.id, Study.study_date, Study.description, Series.id, Series.number, Series.description,
                   StudyFile.id, StudyFile.instance_number, StudyFile.storage_key, StudyFile.size_bytes,
                   StudyFile.sha256)
            .join(Series, StudyFile.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND)).all()
        if not rows:
            raise NotFoundError(N_('Images'))
        entries = _archive_entries(rows)
        audit.record(session, actor, 'images.downloaded', 'examination', examination_id, files=len(entries),
                     deidentified=map_uid is not None)
    logger.info('examination %s: zip of %d images requested by user %s (de-identified: %s)', examination_id,
                len(entries), actor.user_id, map_uid is not None)
    return (f'examination-{examination_id[:8]}-images.zip',
            _generate_zip(get_storage(), examination_id, entries, map_uid=map_uid))


def _archive_entries(rows: list) -> list[_ArchiveEntry]:
    """Name each file `<date>_<study>/<series number>_<series>/<instance number>.dcm`, unique and portable."""
    rows = sorted(rows, key=lambda row: (row[1] or '', row[0], row[4] is None, row[4] or 0, row[3],
                                         row[7] is None, row[7] or 0, row[6]))
    study_folders: dict[int, str] = {}
    series_folders: dict[int, str] = {}
    used: set[str] = set()
    entries = []
    index_in_series: Counter[int] = Counter()
    for study_id, study_date, study_description, series_id, number, series_description, _file_id, \
            instance_number, key, size, sha256 in rows:
        if study_id not in study_folders:
            label = f'{study_date or "undated"}_{_safe_name(study_description) or "study"}'
            study_folders[study_id] = _unique_name(label, used)
        if series_id not in series_folders:
            number_label = f'{number:03d}' if number is not None else 'series'
            label = f'{study_folders[study_id]}/{number_label}_{_safe_name(series_description) or "images"}'
            series_folders[series_id] = _unique_name(label, used)
        index_in_series[series_id] += 1
        stem = f'{instance_number:04d}' if instance_number is not None else f'{index_in_series[series_id]:04d}'
        name = _unique_name(f'{series_folders[series_id]}/{stem}', used, suffix='.dcm')
        entries.append(_ArchiveEntry(name=name, key=key, size=size, sha256=sha256))
    return entries


def _safe_name(text: str) -> str:
    """Turn free text into a short name made of ASCII letters, digits, ".", "_" and "-"."""
    ascii_text = unicodedata.normalize('NFKD', text or '').encode('ascii', 'ignore').decode('ascii')
    cleaned = re.sub(r'[^A-Za-z0-9._-]+', '_', ascii_text).strip('._-')
    return cleaned[:60].rstrip('._-')


def _unique_name(name: str, used: set[str], suffix: str = '') -> str:
    """Return name + suffix, with `_2`, `_3`… before the suffix when taken.

    Names compare case-insensitively, because Windows folders do.
    """
    candidate = name + suffix
    counter = 1
    while candidate.lower() in used:
        counter += 1
        candidate = f'{name}_{counter}{suffix}'
    used.add(candidate.lower())
    return candidate


class _ZipSink:
    """A write-only file for zipfile that keeps written bytes until the generator takes them."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def drain(self) -> list[bytes]:
        """Return the bytes written since the last call as one chunk, or no chunk when nothing was written."""
        if not self._chunks:
            return []
        data = b''.join(self._chunks)
        self._chunks.clear()
        return [data]


def _generate_zip(storage: BlobStorage, examination_id: str, entries: list[_ArchiveEntry], *,
                  map_uid: UidMapper | None = None) -> Iterator[bytes]:
    """Yield the zip of the entries; with `map_uid`, each file is a de-identified copy made with it."""
    sink = _ZipSink()
    # The sink cannot seek, so zipfile writes sizes and CRC after each entry in a data descriptor.
    archive = zipfile.ZipFile(sink, mode='w', compression=zipfile.ZIP_STORED, allowZip64=True)  # type: ignore[arg-type]
    flagged: list[tuple[str, str]] = []  # (entry name, reason) of de-identified files with burned-in text
    with archive:
        for entry in entries:
            digest = hashlib.sha256()
            try:
                if map_uid is None:
                    with archive.open(_zip_info(entry.name, entry.size), mode='w') as target:
                        for chunk in storage.iter_chunks(entry.key):
                            digest.update(chunk)
                            target.write(chunk)
                            yield from sink.drain()
                else:
                    original = io.BytesIO()
                    for chunk in storage.iter_chunks(entry.key):
                        digest.update(chunk)
                        original.write(chunk)
                    original.seek(0)
                    data, reason = deidentify_file_flagged(original, map_uid)
                    name = entry.name
                    if reason:
                        # The flag is in the file name, so it shows wherever the file goes after unzipping.
                        name = entry.name.removesuffix('.dcm') + BURNED_IN_SUFFIX
                        flagged.append((name, reason))
                    with archive.open(_zip_info(name, len(data)), mode='w') as target:
                        target.write(data)
                    yield from sink.drain()
            except FileNotFoundError:
                logger.error('examination %s: blob %s is missing, so the zip download stops', examination_id,
                             entry.key)
                raise
            # The check can only end the stream after the entry was sent. The client then gets an
            # incomplete zip, which browsers report as a failed download, instead of a corrupt image.
            if digest.hexdigest() != entry.sha256:
                logger.error('examination %s: blob %s does not match its SHA-256 from upload, so the zip '
                             'download stops', examination_id, entry.key)
                raise StoredFileCorruptError(f'Stored file {entry.name} is damaged.')
            yield from sink.drain()
        if flagged:
            archive.writestr(_zip_info(BURNED_IN_LIST_NAME, 0), _burned_in_list(flagged))
            logger.info('examination %s: %d de-identified images flagged for burned-in text', examination_id,
                        len(flagged))
    yield from sink.drain()
    logger.info('examination %s: zip of %d images sent', examination_id, len(entries))


# De-identified files whose pixels may show the patient's name get this file name ending, and the zip
# lists them in a text file, because header de-identification leaves such text in place.
BURNED_IN_SUFFIX = '_BURNED-IN-TEXT.dcm'
BURNED_IN_LIST_NAME = 'BURNED-IN-TEXT-WARNING.txt'


def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size  # lets zipfile choose Zip64 headers up front for files near or over 2 GiB
    return info


def _burned_in_list(flagged: list[tuple[str, str]]) -> str:
    lines = ['These images were de-identified in their DICOM headers only. Their pixels may still show',
             "text such as the patient's name or the date, which de-identification cannot remove.", '']
    lines += [f'{name}: {reason}' for name, reason in flagged]
    return '\n'.join(lines) + '\n'


# --- Small helpers ----------------------------------------------------------------------------------------------


def dicom_bytes(session: Session, examination_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(StudyFile.size_bytes), 0)).where(
        StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND)) or 0)


def _display_name(name: str) -> str:
    """Clean a browser-sent file name for messages and storage: no control characters or leading slashes."""
    cleaned = ''.join(character for character in (name or '') if character.isprintable())
    cleaned = cleaned.replace('\\', '/').strip().lstrip('/')
    return cleaned or 'unnamed file'


def _fit_name(name: str) -> str:
    """Shorten a name to the column length, keeping its end, which has the file name and extension."""
    return name if len(name) <= MAX_NAME_LENGTH else '…' + name[-(MAX_NAME_LENGTH - 1):]


def format_bytes(size: int) -> str:
    """Format a size with binary units labeled KB, MB and GB, as file managers on Windows show them."""
    for unit, factor in (('GB', 1024 ** 3), ('MB', 1024 ** 2), ('KB', 1024)):
        if size >= factor:
            return f'{size / factor:.1f} {unit}'
    return f'{size} bytes'
