"""DICOM parsing helpers: read the identifying metadata of a file and render a thumbnail. No database access."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from . import dicom_patient

logger = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY_UID = '1.2.840.10008.1.3.10'  # the SOP class of a DICOMDIR
MAX_UID_LENGTH = 64  # the maximum length of the DICOM UI value representation
# Values larger than this are left unread while parsing metadata, so a large file that is not DICOM
# cannot make the forced read load a huge bogus element into memory.
DEFER_SIZE = 1024 * 1024
# The maximum number of bytes and of read calls that reading the metadata of one file may use. Values
# skipped with DEFER_SIZE do not count as bytes. pydicom makes two or three reads per element, so the
# read count bounds the elements, which cost time and memory even when tiny. Measured with pydicom 3.0.2
# on a 2-core AMD EPYC VM: 100,000 elements of 10 bytes parse in 1.4 s, and 32 MiB of them would take
# about 40 s and 1.3 GB without the read count limit.
# NOTE: both are chosen limits, far above ordinary CT and MR headers (a few KB, up to a few MB and
# tens of thousands of elements with per-frame functional groups), but not checked on every vendor.
MAX_HEADER_BYTES = 32 * 1024 * 1024
MAX_HEADER_READS = 500_000
# The maximum size that a deflated dataset (pixel data included) may inflate to while its metadata is read.
MAX_INFLATED_BYTES = 256 * 1024 * 1024
INFLATE_CHUNK_BYTES = 1024 * 1024
# Bytes of a file read into memory to parse its header from (see _read_header_in_memory). A CT header has
# a few KB. A larger header is parsed from the file, which is slower only because pydicom then makes
# a system call per read.
HEADER_READ_BYTES = 64 * 1024
# (group, element) of Float Pixel Data, Double Float Pixel Data and Pixel Data.
PIXEL_DATA_TAGS = {(0x7FE0, 0x0008), (0x7FE0, 0x0009), (0x7FE0, 0x0010)}

T = TypeVar('T')


@dataclass(frozen=True)
class DicomInfo:
    """Identifying metadata of one DICOM file. For a DICOMDIR only `is_dicomdir` and `transfer_syntax_uid` are set.

    The patient attributes and the body part are '' when missing or unreadable, and never make a file unreadable.
    """

    sop_instance_uid: str = ''
    study_instance_uid: str = ''
    series_instance_uid: str = ''
    sop_class_uid: str = ''
    modality: str = ''
    study_date: str = ''  # YYYYMMDD, or '' when missing or unreadable
    study_description: str = ''
    series_description: str = ''
    series_number: int | None = None
    instance_number: int | None = None
    transfer_syntax_uid: str = ''
    is_dicomdir: bool = False
    body_part: str = ''  # Body Part Examined as written, such as CHEST
    patient_name: str = ''  # decoded for display, see dicom_patient.patient_name
    patient_sex: str = ''  # M, F or O
    patient_age: str = ''  # an Age String such as 045Y, from Patient's Age or computed from the birth date
    character_sets: tuple[str, ...] = ()  # the Specific Character Set values as written, '' for the default


class HeaderTooLargeError(Exception):
    """Reading a file up to its pixel data needs more bytes or read calls than MAX_HEADER_BYTES or MAX_HEADER_READS."""


def parse_dicom(path: Path) -> DicomInfo | None:
    """Read a file's DICOM metadata without its pixel data, or return None when it cannot be read.

    This is read_dicom_info for callers that treat a header over the read limit like a file that is not DICOM.
    """
    try:
        return read_dicom_info(path)
    except HeaderTooLargeError:
        return None


def read_dicom_info(path: Path) -> DicomInfo | None:
    """Read a file's DICOM metadata without its pixel data.

    Returns None when the file is not DICOM. A file without the 128-byte preamble is read with
    `force=True`, and accepted only when it has SOP, study and series instance UIDs, because a forced
    read of arbitrary bytes (a JPEG renamed to .dcm) often returns a few bogus elements. Raises
    HeaderTooLargeError when reading the header needs more than MAX_HEADER_BYTES or MAX_HEADER_READS.
    """
    try:
        file = path.open('rb')
    except OSError as error:
        logger.info('file %s could not be opened: %s', path, error)
        return None
    with file:
        dataset = _read_header_in_memory(file.read(HEADER_READ_BYTES))
        if dataset is not None:
            return _dataset_info(dataset, path)
        file.seek(0)
        # The reader stays open while values are read, because pydicom reads deferred values from it later.
        reader = _LimitedReader(file, MAX_HEADER_BYTES, MAX_HEADER_READS)
        dataset = _read_header(reader, path)
        if dataset is None:
            return None
        return _dataset_info(dataset, path)


def _read_header_in_memory(data: bytes) -> Dataset | None:
    """Read a DICOM file's header from its first bytes, or return None when they are not enough or not DICOM.

    Only a standard DICOM file (with preamble) whose pixel data element starts within `data` counts:
    its header is then the one that reading the file gives, because pydicom read the same bytes.
    The caller reads every other file from the file itself.
    """
    buffer = io.BytesIO(data)
    try:
        dataset = pydicom.dcmread(buffer, stop_before_pixels=True, defer_size=DEFER_SIZE)
    except Exception:  # noqa: BLE001 - a header cut off at the end of data fails in many ways; the file decides
        return None
    if _transfer_syntax(dataset) == DeflatedExplicitVRLittleEndian:
        return None  # the position is in the inflated dataset, not in data
    if not starts_pixel_data(data, buffer.tell(), little_endian=dataset.original_encoding[1]):
        return None
    return dataset


def starts_pixel_data(data: bytes, offset: int, *, little_endian: bool) -> bool:
    """Tell whether the tag of a pixel data element (any of PIXEL_DATA_TAGS) starts at data[offset]."""
    tag = data[offset:offset + 4]
    if len(tag) != 4:
        return False
    return struct.unpack('<HH' if little_endian else '>HH', tag) in PIXEL_DATA_TAGS


def _dataset_info(dataset: Dataset, path: Path) -> DicomInfo | None:
    try:
        if _is_dicomdir(dataset):
            return DicomInfo(is_dicomdir=True, transfer_syntax_uid=_transfer_syntax(dataset))
        sop_instance_uid = _uid(dataset, 'SOPInstanceUID')
        study_instance_uid = _uid(dataset, 'StudyInstanceUID')
        series_instance_uid = _uid(dataset, 'SeriesInstanceUID')
        if not (sop_instance_uid and study_instance_uid and series_instance_uid):
            logger.info('file %s has DICOM structure but no SOP, study or series instance UID', path)
            return None
        study_date = _date(dataset, 'StudyDate')
        return DicomInfo(
            sop_instance_uid=sop_instance_uid,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_class_uid=_uid(dataset, 'SOPClassUID'),
            modality=_text(dataset, 'Modality'),
            study_date=study_date,
            study_description=_text(dataset, 'StudyDescription'),
            series_description=_text(dataset, 'SeriesDescription'),
            series_number=_integer(dataset, 'SeriesNumber'),
            instance_number=_integer(dataset, 'InstanceNumber'),
            transfer_syntax_uid=_transfer_syntax(dataset),
            body_part=_optional(path, 'BodyPartExamined', lambda: _text(dataset, 'BodyPartExamined'), ''),
            patient_name=_optional(path, 'PatientName', lambda: dicom_patient.patient_name(dataset), ''),
            patient_sex=_optional(path, 'PatientSex', lambda: dicom_patient.patient_sex(dataset), ''),
            patient_age=_optional(path, 'PatientAge', lambda: dicom_patient.patient_age(dataset, study_date), ''),
            character_sets=_optional(path, 'SpecificCharacterSet', lambda: _character_sets(dataset), ()),
        )
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        # pydicom converts raw values on first access, so a corrupt element can fail here instead of in dcmread.
        logger.info('file %s has unreadable DICOM metadata: %s', path, error)
        return None


def _optional(path: Path, keyword: str, read: Callable[[], T], empty: T) -> T:
    """Return read(), or `empty` when the value cannot be read. The error is logged without the value."""
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - decoding a damaged value fails in codec, value, struct or read errors
        logger.info('file %s: %s is invalid and left empty (%s)', path, keyword, type(error).__name__)
        return empty


def _character_sets(dataset: Dataset) -> tuple[str, ...]:
    value = dataset.get('SpecificCharacterSet')
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in values)


def _read_header(reader: _LimitedReader, path: Path) -> Dataset | None:
    """Read the dataset up to the pixel data, first as a standard DICOM file and then forced."""
    try:
        return pydicom.dcmread(reader, stop_before_pixels=True, defer_size=DEFER_SIZE)
    except InvalidDicomError:
        pass  # no preamble and "DICM" prefix, so try reading it as a bare dataset below
    except Exception as error:  # noqa: BLE001 - a damaged file can fail in struct, EOF, value or index errors
        _raise_if_over_limit(reader, path, error)
        logger.info('file %s could not be read as DICOM: %s', path, error)
        return None

    try:
        reader.seek(0)
        dataset = pydicom.dcmread(reader, stop_before_pixels=True, force=True, defer_size=DEFER_SIZE)
    except Exception as error:  # noqa: BLE001 - a forced read of non-DICOM bytes fails in many ways
        _raise_if_over_limit(reader, path, error)
        logger.info('file %s is not DICOM: %s', path, error)
        return None
    required = ('SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID')
    if not all(keyword in dataset for keyword in required):
        return None
    return dataset


def _raise_if_over_limit(reader: _LimitedReader, path: Path, error: Exception) -> None:
    """Raise HeaderTooLargeError when the reader rejected a read, even if pydicom wrapped that error in another one."""
    if not reader.limit_exceeded:
        return
    logger.warning('file %s is not read: its DICOM header exceeds the read limit (%s)', path, reader.limit_reason)
    raise HeaderTooLargeError(f'{path} exceeds the read limit: {reader.limit_reason}') from error


class _LimitedReader:
    """A read-only binary file that raises HeaderTooLargeError once reads exceed `limit` bytes or `max_reads` calls.

    It has no `name` attribute on purpose: pydicom would then reopen the file by name for a
    deferred value and read it without the limit. Seeking is free, so values that pydicom skips
    with defer_size do not count.

    An unsized read() returns the rest of the file. pydicom 3.0.2 makes one only for a deflated
    dataset, which it then inflates whole in memory with zlib.decompress. So the rest is first
    inflated here in a streaming pass, and rejected when it would expand to more than MAX_INFLATED_BYTES.
    The rest includes the pixel data, so a deflated file longer than `limit` is rejected whatever its header size.
    """

    def __init__(self, file: BinaryIO, limit: int, max_reads: int) -> None:
        self._file = file
        self.limit = limit
        self.max_reads = max_reads
        self.bytes_read = 0
        self.reads = 0
        self.limit_exceeded = False
        self.limit_reason = ''

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > self.max_reads:
            self._reject(f'more than {self.max_reads} read calls')
        allowed = self.limit - self.bytes_read
        if size is None or size < 0 or size > allowed:
            data = self._file.read(allowed + 1)
            if len(data) > allowed:
                self._reject(f'more than {self.limit} bytes')
            if size is None or size < 0:
                self._check_inflated_size(data)
        else:
            data = self._file.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def _check_inflated_size(self, data: bytes) -> None:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        inflated = 0
        pending = data
        try:
            while pending and not inflater.eof:
                inflated += len(inflater.decompress(pending, INFLATE_CHUNK_BYTES))
                if inflated > MAX_INFLATED_BYTES:
                    self._reject(f'the deflated dataset expands to more than {MAX_INFLATED_BYTES} bytes')
                pending = inflater.unconsumed_tail
        except zlib.error:
            return  # not a deflated stream, or a damaged one that pydicom reports itself

    def _reject(self, reason: str) -> None:
        self.limit_exceeded = True
        self.limit_reason = reason
        raise HeaderTooLargeError(reason)


def _is_dicomdir(dataset: Dataset) -> bool:
    file_meta = getattr(dataset, 'file_meta', None)
    if file_meta is not None and file_meta.get('MediaStorageSOPClassUID') == MEDIA_STORAGE_DIRECTORY_UID:
        return True
    return 'DirectoryRecordSequence' in dataset


def _uid(dataset: Dataset, keyword: str) -> str:
    """Return the UID without padding. A UID longer than the DICOM maximum raises ValueError."""
    value = str(dataset.get(keyword, '') or '').strip().rstrip('\x00').strip()
    if len(value) > MAX_UID_LENGTH:
        raise ValueError(f'{keyword} has {len(value)} characters, more than the DICOM maximum of {MAX_UID_LENGTH}')
    return value


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword, '')
    if value is None:
        return ''
    return str(value).replace('\x00', '').strip()


def _date(dataset: Dataset, keyword: str) -> str:
    """Return a DA value as YYYYMMDD. Old files write dates as YYYY.MM.DD, which is accepted too."""
    digits = ''.join(character for character in _text(dataset, keyword) if character.isdigit())
    return digits[:8] if len(digits) >= 8 else ''


def _integer(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword)
    if value is None or value == '':
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _transfer_syntax(dataset: Dataset) -> str:
    """Return the transfer syntax UID from the file meta, or infer it from how a forced read decoded the file."""
    file_meta = getattr(dataset, 'file_meta', None)
    if file_meta is not None and file_meta.get('TransferSyntaxUID'):
        return str(file_meta.TransferSyntaxUID)
    is_implicit_vr, is_little_endian = dataset.original_encoding
    if is_implicit_vr:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if is_little_endian else ExplicitVRBigEndian)


def render_thumbnail(path: Path, max_size: int = 256) -> bytes | None:
    """Render the image (its first frame when multi-frame) as PNG bytes at most max_size pixels wide and high.

    Grayscale images are windowed with the file's first WindowCenter/WindowWidth, or the pixel
    min/max when those are missing, and MONOCHROME1 is inverted. Returns None and logs a warning
    when the file has no pixel data or it cannot be decoded.
    """
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True, defer_size=DEFER_SIZE)
        frame = _first_frame(path, header)
        image = _to_image(_subsample(frame, max_size), header)
    except Exception as error:  # noqa: BLE001 - decoders raise many types: missing plugin, truncated or corrupt data
        logger.warning('no thumbnail for %s: pixel data could not be decoded (%s: %s)',
                       path, type(error).__name__, error)
        return None

    image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format='PNG', optimize=True)
    return buffer.getvalue()


# Files up to this size may be read whole when the frame-wise decoder fails on them.
WHOLE_FILE_DECODE_LIMIT = 64 * 1024 * 1024


def _first_frame(path: Path, header: Dataset) -> np.ndarray:
    """Decode the first frame, reading the whole dataset only when the frame-wise decoder fails.

    pixel_array with a path and an index decodes one frame without loading the whole file. In
    pydicom 3.0.2 it fails on deflated datasets and on files whose meta header names another VR
    encoding than the dataset uses. Dataset.pixel_array handles both but reads the whole file, so
    it is tried only for files up to WHOLE_FILE_DECODE_LIMIT.
    """
    try:
        return pixel_array(path, index=0, transfer_syntax_uid=_transfer_syntax(header))
    except Exception:
        if path.stat().st_size > WHOLE_FILE_DECODE_LIMIT:
            raise
        frames = pydicom.dcmread(path, force=True).pixel_array
        if int(header.get('NumberOfFrames') or 1) > 1:
            return frames[0]
        return frames


def _subsample(frame: np.ndarray, max_size: int) -> np.ndarray:
    """Keep every n-th row and column so the frame is still at least twice max_size.

    This runs before the float copies of windowing, so a 4096 x 4096 mammogram does not need several
    128 MB arrays. The final resize to max_size smooths the result.
    """
    step = max(1, max(frame.shape[0], frame.shape[1]) // (2 * max_size))
    return frame[::step, ::step] if step > 1 else frame


def _to_image(frame: np.ndarray, header: Dataset) -> Image.Image:
    photometric = str(header.get('PhotometricInterpretation', 'MONOCHROME2')).strip().upper()

    if photometric == 'PALETTE COLOR':
        rgb = apply_color_lut(frame, header)
        bits = int(header.RedPaletteColorLookupTableDescriptor[2])
        return Image.fromarray(scale_to_uint8(rgb, 0, 2 ** bits - 1))

    if frame.ndim == 3:
        # pixel_array converts YBR color spaces to RGB, so a three-sample frame is RGB here.
        rgb = frame[..., :3]
        if rgb.dtype != np.uint8:
            rgb = scale_to_uint8(rgb, float(rgb.min()), float(rgb.max()))
        return Image.fromarray(np.ascontiguousarray(rgb))

    values = apply_modality_lut(frame, header).astype(np.float64)
    low, high = _window(values, header)
    gray = scale_to_uint8(values, low, high)
    if photometric == 'MONOCHROME1':
        gray = 255 - gray
    return Image.fromarray(gray)


def _window(values: np.ndarray, header: Dataset) -> tuple[float, float]:
    """Return the value range shown from black to white: the file's first window, else the pixel min/max."""
    center = first_number(header.get('WindowCenter'))
    width = first_number(header.get('WindowWidth'))
    if center is not None and width is not None and width > 0:
        return center - width / 2, center + width / 2
    return float(values.min()), float(values.max())


def first_number(value: object) -> float | None:
    """Return the first value of a DICOM number element (single or multi-valued) as float, or None."""
    if value is None or value == '':
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def scale_to_uint8(values: np.ndarray, low: float, high: float, dtype: type = np.float64) -> np.ndarray:
    """Map low..high linearly to 0..255, clipping outside; `dtype` is the precision of the arithmetic."""
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(dtype) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)
