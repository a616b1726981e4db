"""The doctor's image viewer page and its slice route."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from secondopinion.services import examinations, viewer
from tests.services.dicom_files import pydicom_file
from tests.services.test_viewer import MULTIFRAME_FRAMES, multiframe_instances, paid_exam

from .helpers import open_page, set_value, sign_in


def exam_with_images(patient, folder) -> str:  # noqa: ANN001
    return paid_exam(patient, [pydicom_file('CT_small.dcm'), *multiframe_instances(folder)])


def multiframe_series_id(actor, exam_id: str) -> int:  # noqa: ANN001
    return next(series.id for series in viewer.list_viewer_series(actor=actor, examination_id=exam_id)
                if series.frame_count == 2 * MULTIFRAME_FRAMES)


def image_source(user: User) -> str:
    image = user.find(marker='slice-image').elements.pop()
    assert isinstance(image, ui.image)
    return image.source


async def open_viewer(user: User, exam_id: str) -> None:
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see(marker='slice-image')


async def test_viewer_opens_for_accepting_doctor(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    await user.should_see(marker='series-list')
    await user.should_see('Slice 1 of 1')
    assert image_source(user).startswith(f'/api/exams/{exam_id}/series/')
    assert image_source(user).endswith('/slices/0.png')


async def test_review_page_opens_viewer(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    user.find(marker='open-viewer').click()
    await user.should_see(marker='slice-image')


async def test_viewer_not_found_for_other_doctor(user: User, make_patient, make_doctor, tmp_path):
    accepting = make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=accepting, examination_id=exam_id)
    await sign_in(user, 'second@example.org')
    assert (await open_page(user, f'/doctor/cases/{exam_id}/viewer')).status == 404
    await user.should_see(marker='not-found')
    await user.should_not_see(marker='slice-image')


async def test_viewer_for_pending_case(user: User, make_patient, make_doctor, tmp_path):
    make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)


async def test_slider_changes_image_url(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    series_id = multiframe_series_id(doctor, exam_id)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    user.find(marker=f'series-{series_id}').click()
    await user.should_see(f'Slice 1 of {2 * MULTIFRAME_FRAMES}')
    set_value(user, 'slice-slider', 17)
    await user.should_see(f'Slice 18 of {2 * MULTIFRAME_FRAMES}')
    assert image_source(user) == f'/api/exams/{exam_id}/series/{series_id}/slices/17.png'


async def test_preset_and_window_in_url(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    user.find(marker='preset-lung').click()
    assert image_source(user).endswith('/slices/0.png?preset=lung')
    set_value(user, 'window-center', 50)
    set_value(user, 'window-width', 350)
    assert image_source(user).endswith('/slices/0.png?wc=50&ww=350')
    user.find(marker='preset-default').click()
    assert image_source(user).endswith('/slices/0.png')


async def test_slice_route_serves_png(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    series_id = multiframe_series_id(doctor, exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.should_see(marker='sign-out')
    base = f'/api/exams/{exam_id}/series/{series_id}/slices'

    response = await user.http_client.get(f'{base}/3.png', params={'wc': 1500, 'ww': 3000})
    assert response.status_code == 200
    assert response.headers['content-type'] == 'image/png'
    assert response.headers['cache-control'] == 'private, no-store'
    assert response.content.startswith(b'\x89PNG')
    assert (await user.http_client.get(f'{base}/{2 * MULTIFRAME_FRAMES}.png')).status_code == 404
    assert (await user.http_client.get(f'{base}/0.png', params={'preset': 'liver'})).status_code == 400


async def test_slice_route_not_found_for_other_doctor(user: User, make_patient, make_doctor, tmp_path):
    accepting = make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    series_id = multiframe_series_id(accepting, exam_id)
    examinations.accept(actor=accepting, examination_id=exam_id)
    await sign_in(user, 'second@example.org')
    await user.should_see(marker='sign-out')

    for query in ('', '?preset=liver', '?wc=40'):
        response = await user.http_client.get(f'/api/exams/{exam_id}/series/{series_id}/slices/0.png{query}')
        assert response.status_code == 404, query


async def test_zoom_buttons_change_size(user: User, make_patient, make_doctor, tmp_path):
    make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    user.find(marker='zoom-in').click()
    await user.should_see('150%')
    image = user.find(marker='slice-image').elements.pop()
    assert image.style['width'] == '150%'
    user.find(marker='zoom-out').click()
    user.find(marker='zoom-out').click()
    await user.should_see('75%')


async def test_other_modality_resets_window(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    dose_series = multiframe_series_id(doctor, exam_id)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    user.find(marker='preset-lung').click()
    assert image_source(user).endswith('/slices/0.png?preset=lung')
    # The lung window is in Hounsfield units, which the dose series does not have.
    user.find(marker=f'series-{dose_series}').click()
    await user.should_see(f'Slice 1 of {2 * MULTIFRAME_FRAMES}')
    assert image_source(user) == f'/api/exams/{exam_id}/series/{dose_series}/slices/0.png'
