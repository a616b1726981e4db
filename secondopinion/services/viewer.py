"""The image viewer: the series of an examination and one rendered slice at a time as PNG.

A slice is one frame of one instance. The slices of a series are the frames of its instances in
instance-number order, so a series of single-frame CT files and a multi-frame file both scroll
by index. Decoded frames are cached so that scrolling back and changing the window does not read
and decode the blob again.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, as_pixel_options, get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import session_scope
from ..i18n import N_
from ..models import Examination, Series, Study, StudyFile
from . import access, audit, review_policy
from .actors import Actor
from .deidentify import deidentify_dataset
from .dicom import HEADER_READ_BYTES, first_number, scale_to_uint8, starts_pixel_data
from .errors import DomainError, NotFoundError, ValidationError
from .storage import get_storage

logger = logging.getLogger(__name__)

DICOM_KIND = 'dicom'

# Window presets as (center, width) in Hounsfield units, the usual values for CT reading.
PRESETS: dict[str, tuple[float, float]] = {
    'soft_tissue': (40.0, 400.0),
    'lung': (-600.0, 1500.0),
    'bone': (400.0, 1800.0),
    'brain': (40.0, 80.0),
}
# Window preset -> button label, translated where the viewer shows it.
PRESET_LABELS = {'soft_tissue': N_('Soft tissue'), 'lung': N_('Lung'), 'bone': N_('Bone'), 'brain': N_('Brain')}

# Bound of the decoded-frame cache in bytes of arrays, so the cache uses at most about 256 MB per
# server process. A frame larger than the bound is rendered but not cached.
CACHE_MAX_BYTES = 256 * 1024 * 1024
# Frame counts per stored file (blob keys never change content), at most this many entries.
FRAME_COUNT_CACHE_ENTRIES = 100_000
MAX_RENDER_SIZE = 4096
# Grayscale frames of integers whose stored values span fewer than this many values are cached as
# indices into a table of modality values (see _DecodedFrame), which a render windows instead of
# every pixel. The table then has at most 256 KiB of float32.
MAX_LEVELS = 65_536
# Image formats render_slice encodes, with the Pillow options of each. PNG uses zlib level 1: on a
# 512 x 512 CT slice (bench/preview.py, 2-core VM) Pillow's default level 6 took 25 ms and level 1
# took 5 ms, for a file 14 % larger (87 KB instead of 76 KB). JPEG quality 90 is the default of
# Orthanc's /rendered route (measured with Orthanc 1.10.1), so the preview benchmark compares equal work.
IMAGE_FORMATS: dict[str, dict[str, object]] = {'PNG': {'compress_level': 1}, 'JPEG': {'quality': 90}}
# The header elements that rendering reads: the non-retired group 0028 elements (Image Pixel module,
# rescale, windows, LUTs, palettes) and the extended offset table of encapsulated frames. pydicom 3.0's
# pixel_array reads the same set into its ds_out. Reading only these lets pydicom skip the other values.
HEADER_TAGS = sorted({tag for tag, entry in DicomDictionary.items() if tag >> 16 == 0x0028 and not entry[3]}
                     | {0x7FE00001, 0x7FE00002})
# (group, element) of the pixel data elements -> the keyword that pydicom's decoders expect.
PIXEL_DATA_KEYWORDS = {(0x7FE0, 0x0008): 'FloatPixelData', (0x7FE0, 0x0009): 'DoubleFloatPixelData',
                       (0x7FE0, 0x0010): 'PixelData'}


class PreviewUnavailableError(DomainError):
    """The slice exists but its pixel data cannot be decoded, so no preview can be shown."""


class SliceNotFoundError(NotFoundError):
    """The slice index is outside the series. Pages and routes treat it like any NotFoundError."""

    def __init__(self, index: int, count: int) -> None:
        DomainError.__init__(self, f'Slice {index} not found: the series has {count} slices, '
                                   f'numbered 0 to {count - 1}.')
        self.index = index
        self.count = count


@dataclass(frozen=True)
class ViewerSeries:
    id: int
    number: int | None
    modality: str
    description: str
    frame_count: int  # the sum of the frames of its instances


@dataclass(frozen=True)
class _ImageHeader:
    """The HEADER_TAGS elements of a stored file, where its pixel data element starts, and its frame count."""

    dataset: Dataset
    pixel_offset: int  # byte offset of the pixel data element's tag, or of the end of a file without one
    frame_count: int  # NumberOfFrames, 1 when missing, 0 without Rows (no image)


@dataclass(frozen=True)
class _DecodedFrame:
    """One decoded frame with the header that renders it.

    `values` is RGB for colour. For grayscale with `levels`, `values` contains each pixel's index into
    `levels`, the modality values (float32) of the stored values from the frame's minimum to its
    maximum. For grayscale without `levels`, `values` contains the modality values (float32) themselves.
    """

    values: np.ndarray
    header: Dataset
    is_color: bool
    levels: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes) + (int(self.levels.nbytes) if self.levels is not None else 0)


class _FrameCache:
    """A thread-safe LRU cache of decoded frames, bounded by the total bytes of their arrays."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int], _DecodedFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> _DecodedFrame | None:
        with self._lock:
            frame = self._entries.get(key)
            if frame is not None:
                self._entries.move_to_end(key)
            return frame

    def put(self, key: tuple[str, int], frame: _DecodedFrame) -> None:
        if frame.nbytes > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            self._entries[key] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def total_bytes(self) -> int:
        return self._bytes


_frames = _FrameCache(CACHE_MAX_BYTES)
_frame_counts: OrderedDict[str, int] = OrderedDict()
_frame_counts_lock = threading.Lock()


def clear_caches() -> None:
    """Empty the decoded-frame and frame-count caches, for benchmarks that measure a cold render."""
    _frames.clear()
    with _frame_counts_lock:
        _frame_counts.clear()


# --- Series and slices ------------------------------------------------------------------------------------------


def open_viewer(*, actor: Actor, examination_id: str) -> list[ViewerSeries]:
    """Return the series for a viewer page that opens, and write one `viewer.opened` row for the opening.

    The slices the open viewer then shows are part of this view and write no rows of their own.
    """
    return list_viewer_series(actor=actor, examination_id=examination_id, record_opening=True)


def list_viewer_series(*, actor: Actor, examination_id: str, record_opening: bool = False) -> list[ViewerSeries]:
    """Return the image series of the examination in series-number order, with their frame counts.

    Raises NotFoundError when the examination is missing or the actor may not see its images.
    """
    with session_scope() as session:
        _require_image_access(session, actor, examination_id)
        if record_opening:
            audit.record(session, actor, 'viewer.opened', 'examination', examination_id)
        rows = session.execute(
            select(Series.id, Series.number, Series.modality, Series.description)
            .join(Study, Series.study_id == Study.id)
            .where(Study.examination_id == examination_id)).all()
        keys_by_series = {series_id: _instance_keys(session, examination_id, series_id)
                          for series_id, *_ in rows}

    result = [ViewerSeries(id=series_id, number=number, modality=modality or '', description=description or '',
                           frame_count=sum(_frame_count(key) for key in keys_by_series[series_id]))
              for series_id, number, modality, description in rows]
    result.sort(key=lambda series: (series.number is None, series.number or 0, series.id))
    return result


def render_slice(*, actor: Actor, examination_id: str, series_id: int, index: int,
                 window_center: float | None = None, window_width: float | None = None,
                 preset: str | None = None, max_size: int = 1024, image_format: str = 'PNG') -> bytes:
    """Render one slice of a series as PNG (or JPEG) bytes at most max_size pixels wide and high.

    Grayscale slices are shown with, in order of precedence: the explicit window center and width,
    the preset, the file's VOI LUT or first window, or the pixel min/max. MONOCHROME1 is inverted
    and colour images keep their colours. Raises NotFoundError for a missing or forbidden
    examination or series, SliceNotFoundError for an index outside the series, ValidationError
    for an invalid window, preset, size or image format, and PreviewUnavailableError when the pixel data
    cannot be decoded.
    """
    # No audit row per slice: each slice belongs to a viewer opening already recorded as `viewer.opened`.
    with session_scope() as session:
        _require_image_access(session, actor, examination_id)
        keys = _instance_keys(session, examination_id, series_id)
    if not keys:
        raise NotFoundError('Series')
    window = _requested_window(window_center, window_width, preset)
    if not 1 <= max_size <= MAX_RENDER_SIZE:
        raise ValidationError(f'The image size {max_size} is invalid: choose 1 to {MAX_RENDER_SIZE} pixels.',
                              field='max_size')
    if image_format not in IMAGE_FORMATS:
        raise ValidationError(f'The image format {image_format} is invalid: choose one of {", ".join(IMAGE_FORMATS)}.',
                              field='image_format')

    key, frame_index, header = _locate(keys, index)
    frame = _decoded_frame(key, frame_index, examination_id, header)
    image = _to_image(frame, window)
    if max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **IMAGE_FORMATS[image_format])
    return buffer.getvalue()


# The header attributes of the viewer's information panel, in display order.
# DICOM keyword -> label in the viewer's information panel, translated where the viewer shows it.
HEADER_FIELDS = (('PatientName', N_('Patient')), ('PatientID', N_('Patient ID')),
                 ('PatientBirthDate', N_('Birth date')), ('PatientSex', N_('Sex')), ('PatientAge', N_('Age')),
                 ('InstitutionName', N_('Institution')), ('StudyDate', N_('Study date')),
                 ('StudyDescription', N_('Study')), ('SeriesDescription', N_('Series')),
                 ('Modality', N_('Modality')), ('BodyPartExamined', N_('Body part')),
                 ('SliceThickness', N_('Slice thickness (mm)')), ('Manufacturer', N_('Manufacturer')),
                 ('PatientIdentityRemoved', N_('Identity removed')))


def series_header(*, actor: Actor, examination_id: str, series_id: int) -> list[tuple[str, str]]:
    """Return (label, value) rows from the header of the series' first image, for the viewer's information panel.

    Labels are English msgids; the page translates them.

    A doctor reviewing de-identified gets the rows of the de-identified header, so no name or id
    appears. Empty values are left out.
    """
    with session_scope() as session:
        exam = _require_image_access(session, actor, examination_id)
        deidentified = review_policy.applies(session, actor, exam)
        keys = _instance_keys(session, examination_id, series_id)
    if not keys:
        raise NotFoundError('Series')
    try:
        with get_storage().open(keys[0]) as file:
            # Without defer_size, because de-identification reads every value. Upload limits the header size.
            header = pydicom.dcmread(file, stop_before_pixels=True, force=True)
    except FileNotFoundError:
        logger.error('examination %s: blob %s is missing, so its header cannot be shown', examination_id, keys[0])
        raise NotFoundError('Series') from None
    if deidentified:
        deidentify_dataset(header, review_policy.exam_uid_mapper(examination_id))
    rows = []
    for keyword, label in HEADER_FIELDS:
        value = str(header.get(keyword, '') or '').strip()
        if value:
            rows.append((label, value))
    return rows


def _require_image_access(session: Session, actor: Actor, examination_id: str) -> Examination:
    exam = access.get_visible_exam(session, actor, examination_id)
    if not access.can_view_images(actor, exam):
        raise NotFoundError('Examination')
    return exam


def _instance_keys(session: Session, examination_id: str, series_id: int) -> list[str]:
    """Return the storage keys of the series' DICOM files in instance-number order, files without a number last."""
    return list(session.scalars(
        select(StudyFile.storage_key)
        .join(Series, StudyFile.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .where(Series.id == series_id, Study.examination_id == examination_id,
               StudyFile.examination_id == examination_id, StudyFile.kind == DICOM_KIND)
        .order_by(StudyFile.instance_number.is_(None), StudyFile.instance_number, StudyFile.id)))


def _requested_window(center: float | None, width: float | None, preset: str | None) -> tuple[float, float] | None:
    """Return the explicit window, else the preset's, else None for the file's own."""
    if (center is None) != (width is None):
        raise ValidationError('Give both the window center and the window width, or neither.', field='window')
    if center is not None and width is not None:
        if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
            raise ValidationError(f'The window width must be a positive number, not {width}.', field='window')
        return float(center), float(width)
    if preset:
        if preset not in PRESETS:
            raise ValidationError(f'Unknown window preset "{preset}". Choose one of: {", ".join(PRESETS)}.',
                                  field='preset')
        return PRESETS[preset]
    return None


def _locate(keys: list[str], index: int) -> tuple[str, int, _ImageHeader | None]:
    """Return the storage key and the frame number within that file of the series' slice at index.

    The third item is the file's header when finding the slice had to read it, so that decoding
    does not parse the header a second time, and None when the frame count came from the cache.
    """
    total = 0
    for key in keys:
        count, header = _frame_count_and_header(key)
        if 0 <= index < total + count:
            return key, index - total, header
        total += count
    raise SliceNotFoundError(index, total)


def _frame_count(key: str) -> int:
    """Return the number of frames of a stored file: NumberOfFrames, 1 when missing, 0 without an image."""
    return _frame_count_and_header(key)[0]


def _frame_count_and_header(key: str) -> tuple[int, _ImageHeader | None]:
    """Return the frame count of a stored file, and its header when the count was not cached and had to be read."""
    with _frame_counts_lock:
        if key in _frame_counts:
            _frame_counts.move_to_end(key)
            return _frame_counts[key], None
    header = None
    try:
        with get_storage().open(key) as file:
            header = _read_image_header(file)
        count = header.frame_count
    except FileNotFoundError:
        logger.error('blob %s of a series is missing, so the viewer counts it as no slices', key)
        return 0, None
    except (ValueError, TypeError, OSError) as error:
        # A header that parse_dicom accepted at upload but whose NumberOfFrames is not a number.
        logger.warning('blob %s has an unreadable frame count, so the viewer shows one frame: %s', key, error)
        count = 1
    with _frame_counts_lock:
        _frame_counts[key] = count
        while len(_frame_counts) > FRAME_COUNT_CACHE_ENTRIES:
            _frame_counts.popitem(last=False)
    return count, header


def _read_image_header(file: BinaryIO) -> _ImageHeader:
    """Read the HEADER_TAGS elements of an open DICOM file, up to its pixel data, without the other values.

    The header is parsed from the first HEADER_READ_BYTES held in memory, and from the file itself
    when the pixel data element does not start within them. Raises ValueError or TypeError when
    NumberOfFrames is not a number, and pydicom's errors for a file that is not DICOM.
    """
    start = file.read(HEADER_READ_BYTES)
    try:
        header = _parse_image_header(io.BytesIO(start))
    except Exception:  # noqa: BLE001 - a header cut off at the buffer's end fails in many ways; the file decides
        header = None
    if header is not None and starts_pixel_data(start, header.pixel_offset,
                                                little_endian=header.dataset.original_encoding[1]):
        return header
    file.seek(0)
    return _parse_image_header(file)


def _parse_image_header(file: BinaryIO) -> _ImageHeader:
    parsed = pydicom.dcmread(file, stop_before_pixels=True, force=True, specific_tags=HEADER_TAGS)
    # pydicom stops in front of the pixel data element's tag, so the file position is that element's offset.
    pixel_offset = file.tell()
    # A plain Dataset with the same elements, because the FileDataset keeps a reference to the buffer it
    # was read from, which the decoded-frame cache would keep alive with the header.
    dataset = Dataset()
    dataset.update(parsed)
    dataset.file_meta = parsed.file_meta
    dataset.set_original_encoding(*parsed.original_encoding)
    frame_count = max(1, int(dataset.get('NumberOfFrames') or 1)) if 'Rows' in dataset else 0
    return _ImageHeader(dataset, pixel_offset, frame_count)


# --- Decoding and rendering ------------------------------------------------------------------------------------


def _decoded_frame(key: str, frame_index: int, examination_id: str, header: _ImageHeader | None) -> _DecodedFrame:
    """Return the decoded frame from the cache, or read and decode it from storage.

    `header` is the file's header when the caller has just read it, else None to read it here.
    """
    cached = _frames.get((key, frame_index))
    if cached is not None:
        return cached

    try:
        with get_storage().open(key) as file:
            if header is None:
                header = _read_image_header(file)
            pixels = _decode_frame(file, header, frame_index)
    except FileNotFoundError:
        logger.error('examination %s: blob %s is missing, so its slice cannot be shown', examination_id, key)
        raise NotFoundError('Slice') from None
    except Exception as error:  # noqa: BLE001 - decoders raise many types: missing plugin, truncated or corrupt data
        logger.warning('examination %s: frame %d of blob %s could not be decoded (%s: %s)',
                       examination_id, frame_index, key, type(error).__name__, error)
        raise PreviewUnavailableError('Preview not available: the pixel data of this image could not be decoded. '
                                      'Download the images to view them in a DICOM viewer.') from error

    frame = _prepare(pixels, header.dataset)
    _frames.put((key, frame_index), frame)
    return frame


def _decode_frame(file: BinaryIO, header: _ImageHeader, frame_index: int) -> np.ndarray:
    """Decode one frame from the pixel data element at header.pixel_offset of the open file.

    These are the steps of pydicom 3.0's `pixel_array(file, index=...)` after it has read the
    header, so the arrays are the same, but the header comes from the caller instead of a second parse.
    """
    file_meta = getattr(header.dataset, 'file_meta', None)
    syntax = file_meta.get('TransferSyntaxUID') if file_meta is not None else None
    if not syntax:
        raise AttributeError('the file has no Transfer Syntax UID, so its pixel data cannot be decoded')
    syntax = UID(syntax)
    if syntax == DeflatedExplicitVRLittleEndian:
        # The header offset is a position in the inflated dataset, not in the file.
        raise NotImplementedError('the pixel data of a deflated dataset cannot be decoded frame by frame')
    decoder = get_decoder(syntax)
    options = as_pixel_options(header.dataset, transfer_syntax_uid=syntax)

    file.seek(header.pixel_offset)
    element = file.read(8)
    if len(element) != 8:
        raise AttributeError('the file has no pixel data element')
    byte_order = '<' if syntax.is_little_endian else '>'
    if syntax.is_implicit_VR:
        group, number, _ = struct.unpack(f'{byte_order}HHL', element)
    else:
        # The pixel data VRs (OB, OW, OF, OD) have a 2-byte reserved field and a 4-byte length after the VR.
        group, number, vr, _ = struct.unpack(f'{byte_order}HH2sH', element)
        options['pixel_vr'] = vr.decode('ascii')
        file.read(4)
    keyword = PIXEL_DATA_KEYWORDS.get((group, number))
    if keyword is None:
        raise AttributeError(f'the element at the pixel data offset is ({group:04X},{number:04X}), not pixel data')
    options['pixel_keyword'] = keyword
    pixels, _ = decoder.as_array(file, index=frame_index, validate=True, raw=False, **options)
    return pixels


def _photometric(header: Dataset) -> str:
    return str(header.get('PhotometricInterpretation', 'MONOCHROME2')).strip().upper()


def _prepare(pixels: np.ndarray, header: Dataset) -> _DecodedFrame:
    """Turn decoded pixels into what the cache stores: RGB for colour, modality values for grayscale."""
    photometric = _photometric(header)
    if photometric == 'PALETTE COLOR':
        rgb = apply_color_lut(pixels, header)
        bits = int(header.RedPaletteColorLookupTableDescriptor[2])
        return _DecodedFrame(scale_to_uint8(rgb, 0, 2 ** bits - 1, dtype=np.float32), header, is_color=True)
    if pixels.ndim == 3:
        # pixel_array converts YBR colour spaces to RGB, so a three-sample frame is RGB here.
        rgb = pixels[..., :3]
        if rgb.dtype != np.uint8:
            bits = int(header.get('BitsStored') or 8)
            rgb = scale_to_uint8(rgb, 0, 2 ** bits - 1, dtype=np.float32)
        return _DecodedFrame(np.ascontiguousarray(rgb), header, is_color=True)
    # NOTE: rescale values inside functional group sequences (enhanced multi-frame objects) are not
    # applied, because apply_modality_lut reads only the top-level Rescale and Modality LUT elements.
    if pixels.dtype.kind in 'iu' and pixels.size:
        low, high = int(pixels.min()), int(pixels.max())
        if high - low < MAX_LEVELS:
            stored = np.arange(low, high + 1, dtype=np.int64).astype(pixels.dtype)
            levels = apply_modality_lut(stored, header).astype(np.float32)
            index_type = np.uint8 if high - low < 256 else np.uint16
            indices = np.subtract(pixels, low, dtype=np.int64 if pixels.dtype.itemsize >= 4 else np.int32)
            return _DecodedFrame(indices.astype(index_type), header, is_color=False, levels=levels)
    values = apply_modality_lut(pixels, header).astype(np.float32)
    return _DecodedFrame(values, header, is_color=False)


def _to_image(frame: _DecodedFrame, window: tuple[float, float] | None) -> Image.Image:
    """Window a grayscale frame to 8 bits, or return a colour frame as it is.

    With `levels`, the window maps the levels to a table of 8-bit values, and one lookup per pixel
    applies the table, so the per-pixel work is one indexing pass whatever the window function.
    """
    if frame.is_color:
        return Image.fromarray(frame.values)
    header = frame.header
    values = frame.levels if frame.levels is not None else frame.values
    if window is not None:
        gray = _apply_window(values, *window)
    elif 'VOILUTSequence' in header:
        gray = _apply_file_voi_lut(values, header)
    else:
        file_window = _file_window(header)
        if file_window is not None:
            gray = _apply_window(values, *file_window)
        else:
            low, high = _value_range(frame)
            gray = scale_to_uint8(values, low, high, dtype=np.float32)
    if _photometric(header) == 'MONOCHROME1':
        gray = 255 - gray
    if frame.levels is not None:
        gray = gray[frame.values]
    return Image.fromarray(gray)


def _value_range(frame: _DecodedFrame) -> tuple[float, float]:
    """Return the lowest and highest modality value of the frame's pixels."""
    if frame.levels is None:
        return float(frame.values.min()), float(frame.values.max())
    # A modality LUT need not be monotonic, so only the levels that pixels use count.
    used = np.zeros(len(frame.levels), dtype=bool)
    used[frame.values] = True
    present = frame.levels[used]
    return float(present.min()), float(present.max())


def _apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map values to 0-255 with the DICOM LINEAR window function (PS3.3 C.11.2.1.2.1), as apply_windowing does."""
    if width <= 1:
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def _apply_file_voi_lut(values: np.ndarray, header: Dataset) -> np.ndarray:
    """Apply the file's first VOI LUT and scale its output range, 0 to 2**bits - 1, to 0-255."""
    lut = header.VOILUTSequence[0]
    bits = int(lut.LUTDescriptor[2]) if 'LUTDescriptor' in lut else 16
    output = apply_voi_lut(values, header, index=0, prefer_lut=True)
    return scale_to_uint8(output, 0, 2 ** bits - 1, dtype=np.float32)


def _file_window(header: Dataset) -> tuple[float, float] | None:
    center = first_number(header.get('WindowCenter'))
    width = first_number(header.get('WindowWidth'))
    if center is None or width is None or width <= 0:
        return None
    return center, width


