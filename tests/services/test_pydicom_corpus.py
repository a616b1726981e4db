"""Check that parse_dicom, render_thumbnail and add_files handle every pydicom test file without an unexpected error.

The files come from pydicom's test_files folder, except its dicomdirtests folder, which
test_studies.py uploads as a CD. Which files render is checked against their transfer syntax, so
the test fails when a decoder plugin goes missing or decoding regresses.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
import pytest
from PIL import Image
from pydicom import uid

from secondopinion.services import studies
from secondopinion.services.dicom import parse_dicom, render_thumbnail
from secondopinion.services.errors import ValidationError

from .dicom_files import create_draft, pydicom_file, row_counts, stored_blobs

TEST_FILES = pydicom_file('CT_small.dcm').parent
CORPUS = sorted(
    path for path in TEST_FILES.rglob('*')
    if path.is_file() and 'dicomdirtests' not in path.relative_to(TEST_FILES).parts
)
THUMBNAIL_SIZE = 256  # the default max_size of render_thumbnail

# Transfer syntaxes that pydicom 3 decodes with numpy alone or with the installed pylibjpeg-libjpeg
# and pylibjpeg-openjpeg plugins.
DECODABLE_TRANSFER_SYNTAXES = {
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.RLELossless,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
}

# Files with a decodable transfer syntax whose pixel data or image attributes are invalid, so they
# get no thumbnail. pydicom's Dataset.pixel_array fails on each of them too.
DAMAGED_PIXEL_DATA = {
    'JPEG-lossy.dcm': 'the 12-bit JPEG stream has invalid scan parameters, so libjpeg rejects it',
    'JPEG2000-embedded-sequence-delimiter.dcm': 'four bytes of the JPEG 2000 stream are overwritten with a delimiter',
    'MR_truncated.dcm': 'the pixel data is shorter than Rows x Columns',
    'badVR.dcm': "Number of Frames is the invalid IS value '1A'",
}

# Files that Dataset.pixel_array decodes but render_thumbnail does not. Empty since render_thumbnail
# falls back to Dataset.pixel_array for deflated files (image_dfl.dcm) and for files whose meta header
# names the wrong VR encoding (SC_rgb_jpeg.dcm).
RENDER_GAPS: dict[str, str] = {}


def corpus_id(path: Path) -> str:
    return path.relative_to(TEST_FILES).as_posix()


def has_pixel_data(path: Path) -> bool:
    dataset = pydicom.dcmread(path, force=True, stop_before_pixels=False, defer_size=1024)
    return any(keyword in dataset for keyword in ('PixelData', 'FloatPixelData', 'DoubleFloatPixelData'))


def expects_thumbnail(path: Path, transfer_syntax_uid: str) -> bool:
    if transfer_syntax_uid not in DECODABLE_TRANSFER_SYNTAXES:
        return False
    if path.name in DAMAGED_PIXEL_DATA:
        return False
    return has_pixel_data(path)


@pytest.mark.parametrize('path', CORPUS, ids=corpus_id)
def test_corpus_file_parses_and_renders(path: Path) -> None:
    info = parse_dicom(path)

    if info is None or info.is_dicomdir:
        return
    png = render_thumbnail(path)

    if png is not None:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            assert image.format == 'PNG'
            assert max(image.size) <= THUMBNAIL_SIZE
            assert min(image.size) >= 1

    expected = expects_thumbnail(path, info.transfer_syntax_uid)
    if path.name in RENDER_GAPS:
        assert expected, f'{path.name} is listed in RENDER_GAPS but is not expected to render'
        if png is not None:
            pytest.fail(f'{path.name} now renders, so remove it from RENDER_GAPS')
        pytest.xfail(RENDER_GAPS[path.name])
    if expected:
        assert png is not None, f'{path.name} with transfer syntax {info.transfer_syntax_uid} did not render'
    else:
        assert png is None, (f'{path.name} with transfer syntax {info.transfer_syntax_uid} rendered, '
                             f'so add its transfer syntax to DECODABLE_TRANSFER_SYNTAXES')


@pytest.mark.parametrize('path', CORPUS, ids=corpus_id)
def test_corpus_file_upload(path: Path, tmp_path: Path, make_patient) -> None:
    patient = make_patient()
    exam_id = create_draft(patient)
    upload = tmp_path / 'upload' / path.name
    upload.parent.mkdir()
    shutil.copyfile(path, upload)
    info = parse_dicom(path)

    try:
        summary = studies.add_files(actor=patient, examination_id=exam_id, files=[(path.name, upload)])
    except ValidationError as error:
        assert path.name in str(error)
        assert stored_blobs() == []
        assert row_counts(exam_id) == {'studies': 0, 'series': 0, 'files': 0}
        assert info is None, f'parse_dicom accepts {path.name}, but add_files rejected it: {error}'
        return

    assert info is not None, f'parse_dicom rejects {path.name}, but add_files accepted it'
    assert summary.accepted == 1
    assert row_counts(exam_id) == {'studies': 1, 'series': 1, 'files': 1}
    blob_suffixes = sorted(blob.suffix for blob in stored_blobs())
    thumbnail_count = 0 if render_thumbnail(path) is None else 1
    assert blob_suffixes == ['.dcm'] + ['.png'] * thumbnail_count
