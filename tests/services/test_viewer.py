"""The viewer service against the real database and storage, with pydicom's bundled DICOM files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_windowing
from pydicom.uid import generate_uid

from secondopinion.services import examinations, payments, studies, viewer
from secondopinion.services.errors import NotFoundError, ValidationError
from secondopinion.services.storage import get_storage

from .dicom_files import pydicom_file

QUESTION = 'Is the nodule in the right upper lobe benign?'
MULTIFRAME_FRAMES = 15  # frames in pydicom's rtdose.dcm
# A window from 0 to 3000, which covers the constant frame values 0 to 2900 of the multi-frame series.
MULTIFRAME_WINDOW = {'window_center': 1500.0, 'window_width': 3000.0}


def paid_exam(patient, files: list[Path], modality: str = 'CT') -> str:  # noqa: ANN001
    """Create, upload to, submit and pay an examination, as a patient does through the pages."""
    exam_id = examinations.create_draft(actor=patient)
    studies.add_files(actor=patient, examination_id=exam_id, files=[(path.name, path) for path in files])
    examinations.update_details(actor=patient, examination_id=exam_id, modality=modality, body_part='Chest',
                                clinical_question=QUESTION)
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    return exam_id


def multiframe_instances(folder: Path) -> list[Path]:
    """Write two instances of one series from rtdose.dcm, uploaded in reverse order.

    Every frame is constant: slice i of the series has the value 100 * i, so the instance
    number 1 file contains slices 0-14 and the instance number 2 file contains slices 15-29.
    """
    series_uid = generate_uid()
    paths = []
    for instance_number in (2, 1):
        dataset = pydicom.dcmread(pydicom_file('rtdose.dcm'))
        first_slice = (instance_number - 1) * MULTIFRAME_FRAMES
        frames = np.stack([np.full((dataset.Rows, dataset.Columns), 100 * (first_slice + k), dtype=np.uint32)
                           for k in range(MULTIFRAME_FRAMES)])
        dataset.PixelData = frames.tobytes()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.SeriesInstanceUID = series_uid
        dataset.InstanceNumber = instance_number
        path = folder / f'dose-{instance_number}.dcm'
        dataset.save_as(path)
        paths.append(path)
    return paths


def monochrome1_copy(folder: Path) -> Path:
    """Write MR_small.dcm as MONOCHROME1 in a series of its own, because pydicom bundles no MONOCHROME1 file."""
    dataset = pydicom.dcmread(pydicom_file('MR_small.dcm'))
    dataset.PhotometricInterpretation = 'MONOCHROME1'
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SeriesNumber = 99
    path = folder / 'mr-monochrome1.dcm'
    dataset.save_as(path)
    return path


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image).copy()


def image_mode(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as image:
        return image.mode


def series_by_modality(actor, exam_id: str) -> dict[str, viewer.ViewerSeries]:  # noqa: ANN001
    return {series.modality: series for series in viewer.list_viewer_series(actor=actor, examination_id=exam_id)}


@pytest.fixture
def patient(make_patient):
    return make_patient()


@pytest.fixture
def doctor(make_doctor):
    return make_doctor()


@pytest.fixture
def exam_id(patient, tmp_path) -> str:
    files = [pydicom_file('CT_small.dcm'), pydicom_file('MR_small.dcm'), pydicom_file('examples_rgb_color.dcm'),
             *multiframe_instances(tmp_path), monochrome1_copy(tmp_path)]
    return paid_exam(patient, files)


def test_series_list_counts_frames(doctor, exam_id):
    series = viewer.list_viewer_series(actor=doctor, examination_id=exam_id)
    assert len(series) == 5
    assert [item.frame_count for item in series if item.modality == 'RTDOSE'] == [2 * MULTIFRAME_FRAMES]
    assert sum(1 for item in series if item.modality == 'CT' and item.frame_count == 1) == 1
    assert sum(1 for item in series if item.modality == 'MR' and item.frame_count == 1) == 2
    assert sum(1 for item in series if item.modality == 'US' and item.frame_count == 1) == 1


def test_series_list_sorted_by_number(doctor, exam_id):
    numbers = [item.number for item in viewer.list_viewer_series(actor=doctor, examination_id=exam_id)]
    known = sorted(number for number in numbers if number is not None)
    assert numbers == known + [None] * (len(numbers) - len(known))


def test_render_ct_slice_png(doctor, exam_id):
    ct = series_by_modality(doctor, exam_id)['CT']
    png = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0)
    assert png.startswith(b'\x89PNG\r\n\x1a\n')
    assert image_mode(png) == 'L'
    assert pixels(png).shape == (128, 128)


def test_presets_give_different_pixels(doctor, exam_id):
    ct = series_by_modality(doctor, exam_id)['CT']
    rendered = {preset: pixels(viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id,
                                                   index=0, preset=preset))
                for preset in viewer.PRESETS}
    assert not np.array_equal(rendered['soft_tissue'], rendered['lung'])
    assert not np.array_equal(rendered['soft_tissue'], rendered['bone'])
    assert not np.array_equal(rendered['lung'], rendered['bone'])
    assert not np.array_equal(rendered['brain'], rendered['soft_tissue'])


def test_explicit_window_overrides_preset(doctor, exam_id):
    ct = series_by_modality(doctor, exam_id)['CT']
    soft_tissue = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0,
                                      preset='soft_tissue')
    explicit = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0,
                                   window_center=40, window_width=400, preset='lung')
    assert np.array_equal(pixels(soft_tissue), pixels(explicit))


def test_default_uses_file_window(doctor, exam_id):
    mr = next(item for item in viewer.list_viewer_series(actor=doctor, examination_id=exam_id)
              if item.modality == 'MR' and item.number != 99)
    default = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=mr.id, index=0)
    file_window = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=mr.id, index=0,
                                      window_center=600, window_width=1600)  # MR_small.dcm's WindowCenter/Width
    assert np.array_equal(pixels(default), pixels(file_window))


def test_ct_without_window_uses_min_max(doctor, exam_id):
    ct = series_by_modality(doctor, exam_id)['CT']  # CT_small.dcm has no WindowCenter or WindowWidth
    gray = pixels(viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0))
    assert gray.min() == 0
    assert gray.max() == 255


def test_monochrome1_is_inverted(doctor, exam_id):
    series = viewer.list_viewer_series(actor=doctor, examination_id=exam_id)
    monochrome2 = next(item for item in series if item.modality == 'MR' and item.number != 99)
    monochrome1 = next(item for item in series if item.number == 99)
    normal = pixels(viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=monochrome2.id, index=0))
    inverted = pixels(viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=monochrome1.id, index=0))
    assert np.array_equal(inverted.astype(int), 255 - normal.astype(int))


def test_colour_stays_colour(doctor, exam_id):
    us = series_by_modality(doctor, exam_id)['US']
    png = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=us.id, index=0)
    rgb = pixels(png)
    assert image_mode(png) == 'RGB'
    assert rgb.shape == (240, 320, 3)
    assert not np.array_equal(rgb[..., 0], rgb[..., 1])


def test_multiframe_walks_across_instances(doctor, exam_id):
    dose = series_by_modality(doctor, exam_id)['RTDOSE']
    means = [float(pixels(viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=dose.id,
                                              index=index, **MULTIFRAME_WINDOW)).mean())
             for index in range(2 * MULTIFRAME_FRAMES)]
    assert all(later > earlier for earlier, later in zip(means, means[1:])), means


def test_jpeg_multiframe_colour(doctor, patient):
    exam_id = paid_exam(patient, [pydicom_file('examples_ybr_color.dcm')], modality='US')  # 30 JPEG YBR frames
    series = viewer.list_viewer_series(actor=doctor, examination_id=exam_id)[0]
    last = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=series.id, index=29)
    assert series.frame_count == 30
    assert image_mode(last) == 'RGB'
    assert pixels(last).shape == (240, 320, 3)


def test_max_size_shrinks_image(doctor, exam_id):
    us = series_by_modality(doctor, exam_id)['US']
    png = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=us.id, index=0, max_size=160)
    assert pixels(png).shape == (120, 160, 3)


@pytest.mark.parametrize('index', [1, 100, -1])
def test_index_out_of_range(doctor, exam_id, index):
    ct = series_by_modality(doctor, exam_id)['CT']
    with pytest.raises(viewer.SliceNotFoundError) as raised:
        viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=index)
    assert isinstance(raised.value, NotFoundError)
    assert 'numbered 0 to 0' in str(raised.value)


def test_multiframe_index_past_end(doctor, exam_id):
    dose = series_by_modality(doctor, exam_id)['RTDOSE']
    with pytest.raises(viewer.SliceNotFoundError):
        viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=dose.id, index=2 * MULTIFRAME_FRAMES)


@pytest.mark.parametrize('window', [
    {'window_center': 40.0, 'window_width': 0.0},
    {'window_center': 40.0, 'window_width': -10.0},
    {'window_center': 40.0},
    {'window_width': 400.0},
    {'preset': 'liver'},
])
def test_invalid_window_rejected(doctor, exam_id, window):
    ct = series_by_modality(doctor, exam_id)['CT']
    with pytest.raises(ValidationError):
        viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0, **window)


def test_series_of_other_exam_not_found(doctor, make_patient, exam_id):
    other_exam = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    other_series = viewer.list_viewer_series(actor=doctor, examination_id=other_exam)[0]
    with pytest.raises(NotFoundError):
        viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=other_series.id, index=0)


def test_undecodable_pixels_raise_preview_unavailable(doctor, patient):
    exam_id = paid_exam(patient, [pydicom_file('MR_truncated.dcm')], modality='MR')
    series = viewer.list_viewer_series(actor=doctor, examination_id=exam_id)[0]
    with pytest.raises(viewer.PreviewUnavailableError, match='Preview not available'):
        viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=series.id, index=0)


@pytest.mark.parametrize('read_bytes', [200, 2000])
def test_header_past_read_buffer_renders_same(doctor, exam_id, monkeypatch, read_bytes):
    # With a buffer smaller than the headers, every header is parsed again from the file.
    expected = {}
    for cold_read_bytes in (viewer.HEADER_READ_BYTES, read_bytes):
        monkeypatch.setattr(viewer, 'HEADER_READ_BYTES', cold_read_bytes)
        viewer.clear_caches()
        for series in viewer.list_viewer_series(actor=doctor, examination_id=exam_id):
            for index in (0, series.frame_count - 1):
                viewer.clear_caches()
                image = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=series.id, index=index,
                                            **MULTIFRAME_WINDOW)
                expected.setdefault((series.id, index), image)
                assert image == expected[(series.id, index)], f'series {series.modality}, slice {index}'


def test_cached_slice_needs_no_blob(doctor, exam_id):
    ct = series_by_modality(doctor, exam_id)['CT']
    first = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0)
    storage = get_storage()
    for path in storage.root.rglob('*.dcm'):
        path.unlink()
    again = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0)
    lung = viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=ct.id, index=0, preset='lung')
    assert again == first
    assert lung != first


def test_window_table_matches_pydicom():
    ct = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
    frame = viewer._prepare(ct.pixel_array, ct)
    expected_values = apply_modality_lut(ct.pixel_array, ct)
    # pydicom's LINEAR window maps to 0..255 when the output is 8 bits.
    header = pydicom.Dataset()
    header.update({'WindowCenter': 40, 'WindowWidth': 400, 'BitsStored': 8, 'PixelRepresentation': 0,
                   'PhotometricInterpretation': 'MONOCHROME2'})
    expected = apply_windowing(expected_values, header).round().astype(np.uint8)

    rendered = np.asarray(viewer._to_image(frame, (40.0, 400.0)))
    assert frame.levels is not None
    assert frame.values.dtype == np.uint16
    assert frame.nbytes < expected_values.astype(np.float32).nbytes
    assert np.abs(rendered.astype(int) - expected).max() <= 1


def test_min_max_ignores_unused_levels():
    header = pydicom.Dataset()
    header.PhotometricInterpretation = 'MONOCHROME2'
    pixels = np.array([[10, 12], [12, 10]], dtype=np.uint16)
    frame = viewer._DecodedFrame(pixels - 10, header, is_color=False,
                                 levels=np.array([0.0, 5000.0, 100.0], dtype=np.float32))
    assert viewer._value_range(frame) == (0.0, 100.0)
    assert np.asarray(viewer._to_image(frame, None)).tolist() == [[0, 255], [255, 0]]


def test_frame_cache_evicts_oldest_by_bytes():
    cache = viewer._FrameCache(max_bytes=3000)
    frames = {name: viewer._DecodedFrame(np.zeros(1000, dtype=np.uint8), pydicom.Dataset(), is_color=False)
              for name in ('a', 'b', 'c', 'd')}
    for name in ('a', 'b', 'c'):
        cache.put((name, 0), frames[name])
    assert cache.get(('a', 0)) is frames['a']  # now the most recently used
    cache.put(('d', 0), frames['d'])
    assert cache.get(('b', 0)) is None
    assert cache.get(('a', 0)) is frames['a']
    assert cache.total_bytes == 3000


def test_frame_cache_skips_oversized_frame():
    cache = viewer._FrameCache(max_bytes=100)
    cache.put(('big', 0), viewer._DecodedFrame(np.zeros(1000, dtype=np.uint8), pydicom.Dataset(), is_color=False))
    assert cache.get(('big', 0)) is None
    assert cache.total_bytes == 0


# --- Access ------------------------------------------------------------------------------------------------------


def first_ct(actor, exam_id: str) -> int:  # noqa: ANN001
    return series_by_modality(actor, exam_id)['CT'].id


def test_owner_and_admin_see_images(patient, admin, exam_id):
    for actor in (patient, admin):
        series_id = first_ct(actor, exam_id)
        png = viewer.render_slice(actor=actor, examination_id=exam_id, series_id=series_id, index=0)
        assert png.startswith(b'\x89PNG')


def test_any_doctor_sees_pending_images(make_doctor, exam_id):
    for doctor in (make_doctor(), make_doctor()):
        series_id = first_ct(doctor, exam_id)
        assert viewer.render_slice(actor=doctor, examination_id=exam_id, series_id=series_id, index=0)


def test_other_patient_gets_not_found(make_patient, doctor, exam_id):
    series_id = first_ct(doctor, exam_id)
    stranger = make_patient('Mallory Other')
    with pytest.raises(NotFoundError):
        viewer.list_viewer_series(actor=stranger, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        viewer.render_slice(actor=stranger, examination_id=exam_id, series_id=series_id, index=0)


def test_other_doctor_after_acceptance_not_found(make_doctor, exam_id):
    accepting, other = make_doctor(), make_doctor()
    series_id = first_ct(other, exam_id)
    examinations.accept(actor=accepting, examination_id=exam_id)

    assert viewer.render_slice(actor=accepting, examination_id=exam_id, series_id=series_id, index=0)
    with pytest.raises(NotFoundError):
        viewer.list_viewer_series(actor=other, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        viewer.render_slice(actor=other, examination_id=exam_id, series_id=series_id, index=0)


def test_missing_exam_not_found(doctor):
    with pytest.raises(NotFoundError):
        viewer.list_viewer_series(actor=doctor, examination_id='no-such-exam')
