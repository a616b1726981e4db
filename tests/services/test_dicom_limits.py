"""Read limits of the DICOM header parser: headers too large or with too many elements are rejected quickly."""

import struct
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from secondopinion.services import dicom, studies
from secondopinion.services.dicom import HeaderTooLargeError, parse_dicom, read_dicom_info
from secondopinion.services.errors import ValidationError

from .dicom_files import create_draft, pydicom_file, row_counts, stored_blobs, write_variant


def private_elements(count: int, value: bytes = b'ab') -> bytes:
    """Encode `count` explicit VR little endian LO elements in ascending private groups from 0x0029."""
    parts = []
    for index in range(count):
        group = 0x0029 + 2 * (index // 0xF000)
        parts.append(struct.pack('<HH2sH', group, 0x1000 + index % 0xF000, b'LO', len(value)) + value)
    return b''.join(parts)


def large_values(count: int, size: int) -> bytes:
    """Encode `count` UN elements of `size` bytes each in private group 0x0031."""
    return b''.join(struct.pack('<HH2sHI', 0x0031, 0x1000 + index, b'UN', 0, size) + b'y' * size
                    for index in range(count))


def header_followed_by(tmp_path: Path, name: str, extra: bytes) -> Path:
    """Write CT_small.dcm without its pixel data, followed by the extra encoded elements."""
    source = write_variant(tmp_path / f'base-{name}', PixelData=None)
    path = tmp_path / name
    path.write_bytes(source.read_bytes() + extra)
    return path


def test_header_over_byte_limit_rejected(tmp_path):
    # Values just under DEFER_SIZE are read, not skipped, so 40 of them exceed MAX_HEADER_BYTES.
    path = header_followed_by(tmp_path, 'large.dcm', large_values(40, dicom.DEFER_SIZE - 16))
    assert path.stat().st_size > dicom.MAX_HEADER_BYTES

    started = time.perf_counter()
    with pytest.raises(HeaderTooLargeError):
        read_dicom_info(path)
    elapsed = time.perf_counter() - started

    assert elapsed < 2
    assert parse_dicom(path) is None
    assert parse_dicom(pydicom_file('CT_small.dcm')) is not None


def test_header_over_read_limit_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom, 'MAX_HEADER_READS', 20_000)
    path = header_followed_by(tmp_path, 'many.dcm', private_elements(20_000))

    with pytest.raises(HeaderTooLargeError):
        read_dicom_info(path)

    assert parse_dicom(pydicom_file('CT_small.dcm')) is not None
    monkeypatch.undo()
    assert parse_dicom(path) is not None


def test_header_under_limits_accepted(tmp_path):
    path = header_followed_by(tmp_path, 'some.dcm', private_elements(1_000) + large_values(3, 1000))

    assert parse_dicom(path) is not None


def test_deflate_bomb_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom, 'MAX_INFLATED_BYTES', 4 * 1024 * 1024)
    path = write_variant(tmp_path / 'deflated.dcm')
    dataset = pydicom.dcmread(path)
    dataset.add_new(0x00291010, 'OB', bytes(8 * 1024 * 1024))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset.save_as(path)
    assert path.stat().st_size < 1024 * 1024, 'the zeros should compress well'

    with pytest.raises(HeaderTooLargeError):
        read_dicom_info(path)


def test_deflated_dataset_under_limit_accepted():
    assert parse_dicom(pydicom_file('image_dfl.dcm')) is not None


def test_upload_names_file_over_limit(make_patient, tmp_path):
    patient = make_patient()
    exam_id = create_draft(patient)
    path = header_followed_by(tmp_path, 'large.dcm', large_values(40, dicom.DEFER_SIZE - 16))
    good = write_variant(tmp_path / 'good.dcm')

    with pytest.raises(ValidationError) as error:
        studies.add_files(actor=patient, examination_id=exam_id, files=[('large.dcm', path), ('good.dcm', good)])

    assert 'large.dcm could not be read, because its DICOM header is larger' in str(error.value)
    assert 'good.dcm' not in str(error.value)
    assert row_counts(exam_id) == {'studies': 0, 'series': 0, 'files': 0}
    assert stored_blobs() == []
