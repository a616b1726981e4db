"""Key images on the pages: added in the viewer, listed and removed in the editor, shown in the final report."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.services import examinations, key_images, reports
from tests.services.flow import REPORT

from .helpers import set_value, sign_in
from .test_viewer_page import exam_with_images, multiframe_series_id, open_viewer


async def test_viewer_adds_key_image(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    series_id = multiframe_series_id(doctor, exam_id)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)

    user.find(marker=f'series-{series_id}').click()
    set_value(user, 'slice-slider', 4)
    await user.should_see('Slice 5 of')
    user.find(marker='preset-soft_tissue').click()
    user.find(marker='add-key-image').click()
    user.find(marker='key-image-caption').type('Hot spot')
    user.find(marker='confirm-key-image').click()
    await user.should_see('Slice 5 added to the report as a key image.')

    [item] = key_images.list_key_images(actor=doctor, examination_id=exam_id)
    assert (item.series_id, item.slice_index) == (series_id, 4)
    assert (item.window_center, item.window_width) == (40, 400)
    assert item.caption == 'Hot spot'


async def test_viewer_without_add_for_pending_case(user: User, make_patient, make_doctor, tmp_path):
    make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    await sign_in(user, 'doctor@example.org')
    await open_viewer(user, exam_id)
    await user.should_not_see(marker='add-key-image')


async def test_editor_lists_and_removes(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    series_id = multiframe_series_id(doctor, exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see(marker='key-images-empty')

    item = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series_id, slice_index=2,
                                    caption='Dose peak')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see('Dose peak')
    await user.should_see(marker=f'key-image-{item}')
    user.find(marker=f'remove-key-image-{item}').click()
    await user.should_see('Key image removed from the report.')
    await user.should_see(marker='key-images-empty')
    assert key_images.list_key_images(actor=doctor, examination_id=exam_id) == []


async def test_patient_sees_key_images_in_report(user: User, make_patient, make_doctor, tmp_path):
    patient = make_patient(email='patient@example.org')
    doctor = make_doctor()
    exam_id = exam_with_images(patient, tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    series_id = multiframe_series_id(doctor, exam_id)
    item = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series_id, slice_index=2,
                                    window_center=1500, window_width=3000, caption='Dose peak')
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Dose peak')
    await user.should_see(marker=f'key-image-{item}')
    await user.should_not_see(marker=f'remove-key-image-{item}')
