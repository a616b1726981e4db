"""Test helpers: pydicom's bundled test files, zip archives built from them, and views of the stored state."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.config import get_settings
from secondopinion.models import Examination, Series, Study, StudyFile
from secondopinion.services import examinations
from secondopinion.services.actors import Actor


def pydicom_file(name: str) -> Path:
    """Return the path of a file in pydicom's bundled test_files folder. Other names make pydicom try a download."""
    path = get_testdata_file(name)
    assert path is not None, f'pydicom test file {name} is missing'
    return Path(path)


def dicomdir_folder() -> Path:
    """The folder of a real CD layout with DICOMDIR files, bundled with pydicom."""
    return pydicom_file('CT_small.dcm').parent / 'dicomdirtests'


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip every file under the folder with paths relative to it, as a patient zips a CD."""
    with zipfile.ZipFile(target, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob('*')):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def make_zip(target: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(target, 'w', compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def mark_first_entry_encrypted(path: Path) -> None:
    """Set the "encrypted" flag of the first entry in its local and central headers, as password tools write it."""
    data = bytearray(path.read_bytes())
    local = data.index(b'PK\x03\x04')
    data[local + 6] |= 0x01
    central = data.index(b'PK\x01\x02')
    data[central + 8] |= 0x01
    path.write_bytes(bytes(data))


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new('RGB', (32, 32), (200, 30, 30)).save(buffer, format='JPEG')
    return buffer.getvalue()


def stored_blobs() -> list[Path]:
    """Every file in the blob folder, including leftover temporary files."""
    root = get_settings().blob_dir
    if not root.exists():
        return []
    return sorted(path for path in root.rglob('*') if path.is_file())


def row_counts(examination_id: str) -> dict[str, int]:
    with db.session_scope() as session:
        return {
            'studies': session.scalar(select(func.count()).select_from(Study)
                                      .where(Study.examination_id == examination_id)),
            'series': session.scalar(select(func.count()).select_from(Series).join(Study)
                                     .where(Study.examination_id == examination_id)),
            'files': session.scalar(select(func.count()).select_from(StudyFile)
                                    .where(StudyFile.examination_id == examination_id)),
        }


def create_draft(patient: Actor) -> str:
    return examinations.create_draft(actor=patient)


def set_status(examination_id: str, status: str) -> None:
    """Move an examination to a state directly, for tests of who may read it in that state."""
    with db.session_scope() as session:
        session.get(Examination, examination_id).status = status


def write_variant(target: Path, source: str = 'CT_small.dcm', **attributes: object) -> Path:
    """Copy a pydicom test file with new UIDs and the given attributes. A value of None deletes the attribute.

    Value validation is off while writing, so tests can store the malformed values that real files contain.
    """
    dataset = pydicom.dcmread(pydicom_file(source))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    with pydicom.config.disable_value_validation():
        for keyword, value in attributes.items():
            if value is None:
                if keyword in dataset:
                    delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        dataset.save_as(target)
    return target
