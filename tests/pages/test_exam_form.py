"""The new-examination stepper: steps keep their values, reopen where the patient was, validate and review."""

from __future__ import annotations

from pathlib import Path

from nicegui import ui
from nicegui.testing import User
from pydicom.data import get_testdata_file

from secondopinion.services import examinations
from tests.services.flow import draft_with_link

from .helpers import set_value, sign_in, upload


def _stepper(user: User) -> ui.stepper:
    return user.find(marker='exam-stepper').elements.pop()


def _field(user: User, marker: str) -> ui.element:
    return user.find(marker=marker).elements.pop()


async def _open_new_draft(user: User, make_patient) -> tuple[object, str]:  # noqa: ANN001
    patient = make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    exam_id = examinations.create_draft(actor=patient)
    await user.open(f'/exams/{exam_id}/edit')
    await user.should_see(marker='exam-stepper')
    return patient, exam_id


async def test_empty_list_offers_start(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see(marker='exams-empty')
    await user.should_see('Start a new examination')
    assert len(user.find(marker='new-exam').elements) == 1
    user.find(marker='new-exam').click()
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'images'


async def test_going_back_keeps_details(user: User, make_patient):
    patient, exam_id = await _open_new_draft(user, make_patient)
    _stepper(user).value = 'details'  # as a click on the step's header does
    set_value(user, 'modality', 'MR')
    user.find(marker='body_part').type('Left knee')
    user.find(marker='clinical_question').type('Is the meniscus torn?')
    user.find(marker='history').type('Twisted it skiing')
    user.find(marker='details-back').click()
    assert _stepper(user).value == 'images'

    saved = examinations.get_exam(actor=patient, examination_id=exam_id)
    assert saved.modality == 'MR'
    assert saved.body_part == 'Left knee'
    assert saved.clinical_question == 'Is the meniscus torn?'
    assert saved.history == 'Twisted it skiing'
    assert _field(user, 'body_part').value == 'Left knee'

    # Opened again, the form shows the saved values.
    await user.open(f'/exams/{exam_id}/edit?step=details')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'details'
    assert _field(user, 'modality').value == 'MR'
    assert _field(user, 'clinical_question').value == 'Is the meniscus torn?'
    assert _field(user, 'history').value == 'Twisted it skiing'


async def test_reopen_goes_to_first_gap(user: User, make_patient):
    patient, exam_id = await _open_new_draft(user, make_patient)
    assert _stepper(user).value == 'images'

    examinations.add_link(actor=patient, examination_id=exam_id, url='https://pacs.example.org/share/abc')
    await user.open(f'/exams/{exam_id}/edit')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'details'

    complete = draft_with_link(patient)
    await user.open(f'/exams/{complete}/edit')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'review'

    await user.open(f'/exams/{complete}/edit?step=payment')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'payment'

    await user.open(f'/exams/{complete}/edit?step=nonsense')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'review'


async def test_images_step_needs_images(user: User, make_patient):
    await _open_new_draft(user, make_patient)
    user.find(marker='images-next').click()
    await user.should_see('Upload the DICOM files of your study or add a link to the images.')
    assert _stepper(user).value == 'images'

    user.find(marker='link-url').type('https://pacs.example.org/share/abc')
    user.find(marker='add-link').click()
    await user.should_see(marker='image-link')
    user.find(marker='images-next').click()
    assert _stepper(user).value == 'details'


async def test_details_errors_on_fields(user: User, make_patient):
    await _open_new_draft(user, make_patient)
    _stepper(user).value = 'details'
    user.find(marker='details-next').click()
    assert _stepper(user).value == 'details'
    expected = {
        'modality': 'Choose the type of examination.',
        'body_part': 'Enter the body part that was examined, such as chest or left knee.',
        'clinical_question': 'Write the question that the radiologist should answer.',
    }
    for marker, message in expected.items():
        field = _field(user, marker)
        assert field.props.get('error') is True, marker
        assert field.props.get('error-message') == message
    assert not _field(user, 'history').props.get('error')

    # Typing a value clears that field's message only.
    user.find(marker='body_part').type('Chest')
    assert not _field(user, 'body_part').props.get('error')
    assert _field(user, 'clinical_question').props.get('error') is True


async def test_too_long_body_part_on_field(user: User, make_patient):
    patient, exam_id = await _open_new_draft(user, make_patient)
    _stepper(user).value = 'details'
    user.find(marker='body_part').type('x' * 121)
    user.find(marker='details-next').click()
    await user.should_see('Body part must have at most 120 characters.')
    assert _field(user, 'body_part').props.get('error-message') == 'Body part must have at most 120 characters.'
    assert _stepper(user).value == 'details'
    assert examinations.get_exam(actor=patient, examination_id=exam_id).body_part == ''


async def test_review_shows_entries_and_price(user: User, make_patient):
    patient = make_patient(email='carol@example.org')
    exam_id = draft_with_link(patient, modality='CT', urgency='urgent')
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is the nodule benign?', history='Smoker', urgency='urgent',
                                prior_report_text='A 6 mm nodule.')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}/edit')
    await user.should_see(marker='exam-stepper')
    assert _stepper(user).value == 'review'
    for text in ('CT (computed tomography)', 'Is the nodule benign?', 'Smoker', 'A 6 mm nodule.',
                 'https://pacs.example.org/share/abc', 'Urgent (reviewed first, costs more)'):
        await user.should_see(text)
    # CT costs 150.00 EUR, and an urgent review adds 50 %.
    await user.should_see('Price: 225.00 EUR')
    await user.should_see('150.00 EUR plus 50 % for an urgent review.')
    await user.should_not_see(marker='review-missing')

    # Switching to routine in the details changes the price on the review.
    user.find(marker='edit-details').click()
    assert _stepper(user).value == 'details'
    set_value(user, 'urgency', 'routine')
    user.find(marker='details-next').click()
    assert _stepper(user).value == 'review'
    await user.should_see('Price: 150.00 EUR')
    await user.should_not_see('Price: 225.00 EUR')


async def test_edit_buttons_jump_back(user: User, make_patient):
    patient = make_patient(email='carol@example.org')
    exam_id = draft_with_link(patient)
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}/edit?step=review')
    await user.should_see(marker='exam-stepper')
    user.find(marker='edit-images').click()
    assert _stepper(user).value == 'images'
    _stepper(user).value = 'review'
    user.find(marker='edit-details').click()
    assert _stepper(user).value == 'details'
    user.find(marker='details-next').click()
    user.find(marker='review-next').click()
    assert _stepper(user).value == 'payment'
    user.find(marker='payment-back').click()
    assert _stepper(user).value == 'review'


async def test_review_sends_back_to_gap(user: User, make_patient):
    await _open_new_draft(user, make_patient)
    _stepper(user).value = 'review'
    await user.should_see(marker='review-missing')
    await user.should_see('• Write the question that the radiologist should answer.')
    user.find(marker='review-next').click()
    # The images are missing too, and they come first in the form.
    assert _stepper(user).value == 'images'
    await user.should_see('Upload the DICOM files of your study or add a link to the images.')
    assert _field(user, 'clinical_question').props.get('error') is True


async def test_upload_shows_recognized_summary(user: User, make_patient, tmp_path: Path):
    from tests.services.dicom_files import write_variant

    await _open_new_draft(user, make_patient)
    scan = write_variant(tmp_path / 'scan.dcm', BodyPartExamined='CHEST', StudyDate='20240317')
    await upload(user, 'image-upload', [scan, Path(get_testdata_file('MR_small.dcm'))])
    await user.should_see('2 DICOM images added.', retries=100)
    await user.should_see(marker='recognized')
    await user.should_see('CT · Chest · 2024-03-17 · 1 series · 1 image')
    await user.should_see('MR · body part not stated · 2004-08-26 · 1 series · 1 image')
    # The images filled in the empty type and body part of the details, from the oldest study that has them.
    assert _field(user, 'modality').value == 'MR'
    assert _field(user, 'body_part').value == 'Chest'


async def test_rejected_files_listed_each(user: User, make_patient, tmp_path: Path):
    await _open_new_draft(user, make_patient)
    notes, scan = tmp_path / 'notes.txt', tmp_path / 'scan.jpg'
    notes.write_text('not an image')
    scan.write_bytes(b'\xff\xd8\xff\xe0 not a DICOM file')
    await upload(user, 'image-upload', [Path(get_testdata_file('CT_small.dcm')), notes, scan])
    await user.should_see(marker='rejected-file')
    rows = user.find(marker='rejected-file').elements
    assert len(rows) == 2
    texts = [[label.text for label in row.descendants() if isinstance(label, ui.label)] for row in rows]
    assert ['notes.txt', 'Not a DICOM file.'] in texts
    assert ['scan.jpg', 'Not a DICOM file.'] in texts
    await user.should_see(marker='no-images')

    # A good upload afterwards clears the list.
    await upload(user, 'image-upload', [Path(get_testdata_file('CT_small.dcm'))])
    await user.should_see('1 DICOM image added.')
    await user.should_not_see(marker='rejected-file')


def _ticked_steps(user: User) -> list[str]:
    """Return the steps whose header shows the done tick, set as a plain prop or as NiceGUI's bound `:done`."""
    ticked = []
    for name in ('images', 'details', 'review', 'payment'):
        props = user.find(marker=f'step-{name}').elements.pop().props
        if props.get('done') is True or str(props.get(':done')).lower() == 'true':
            ticked.append(name)
    return ticked


async def test_ticks_only_complete_steps(user: User, make_patient):
    patient, exam_id = await _open_new_draft(user, make_patient)
    assert _ticked_steps(user) == []

    # Passing through the images step without images leaves it unticked.
    _stepper(user).value = 'details'
    _stepper(user).value = 'review'
    assert _ticked_steps(user) == []

    _stepper(user).value = 'details'
    set_value(user, 'modality', 'MR')
    user.find(marker='body_part').type('Left knee')
    user.find(marker='clinical_question').type('Is the meniscus torn?')
    user.find(marker='details-next').click()
    assert _ticked_steps(user) == ['details']

    examinations.add_link(actor=patient, examination_id=exam_id, url='https://pacs.example.org/share/abc')
    _stepper(user).value = 'images'
    assert _ticked_steps(user) == ['images', 'details', 'review']

    # Emptying a required field takes the tick away again.
    _stepper(user).value = 'details'
    _field(user, 'body_part').value = ''
    _stepper(user).value = 'review'
    assert _ticked_steps(user) == ['images']
