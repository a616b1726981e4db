"""The whole second opinion as three people do it in their browsers: patient, doctors and admin."""

from __future__ import annotations

import asyncio
import io
import shutil
import zipfile
from pathlib import Path

from nicegui.testing import User
from pydicom.data import get_testdata_file

from secondopinion.services import accounts, notifications
from tests.conftest import PASSWORD

from .helpers import accept_on_board, board_case_ids, emailed_link, set_value, sign_in, upload


def _dicomdir_zip(tmp_path: Path) -> Path:
    source = Path(get_testdata_file('DICOMDIR')).parent
    target = tmp_path / 'cd.zip'
    with zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob('*')):
            if path.is_file():
                archive.write(path, path.relative_to(source.parent).as_posix())
    return target


async def _wait_for(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError('condition not met in time')


async def test_patient_doctor_admin_flow(user: User, create_user, tmp_path: Path) -> None:
    admin_info = accounts.create_admin(full_name='Ada Admin', email='admin@example.org', password=PASSWORD)
    assert admin_info.role == 'admin'

    # The admin creates two doctor accounts from the admin panel.
    admin = create_user()
    await sign_in(admin, 'admin@example.org')
    await admin.should_see('Admin panel')
    for number, name in ((1, 'Dr. Grace Hopper'), (2, 'Dr. Alan Turing')):
        admin.find(marker='doctor-name').type(name)
        admin.find(marker='doctor-email').type(f'doctor{number}@example.org')
        admin.find(marker='doctor-license').type(f'CH-RAD-{number:04d}')
        admin.find(marker='create-doctor-button').click()
        await admin.should_see(marker=f'doctor-doctor{number}@example.org')

    # Each doctor follows the emailed invitation, chooses a password and lands on the board, before anything is paid.
    doctor1, doctor2 = create_user(), create_user()
    for number, doctor in ((1, doctor1), (2, doctor2)):
        await doctor.open(emailed_link(f'doctor{number}@example.org', '/invite'))
        doctor.find(marker='new-password').type(PASSWORD)
        doctor.find(marker='repeat-password').type(PASSWORD)
        doctor.find(marker='save-password').click()
    await doctor1.should_see(marker='board-empty')
    await doctor2.should_see(marker='board-empty')

    # The patient registers and fills in a new examination.
    await user.open('/register')
    user.find(marker='name').type('Şükrü Yılmaz')
    user.find(marker='email').type('sukru@example.org')
    user.find(marker='phone').type('+90 532 123 45 67')
    set_value(user, 'date_of_birth', '1975-03-02')
    user.find(marker='password').type(PASSWORD)
    user.find(marker='register').click()
    await user.should_see('You have no examinations yet.')
    await user.should_see(marker='verify-banner')

    # The patient confirms the email address with the link from the welcome email.
    await user.open(emailed_link('sukru@example.org', '/verify-email'))
    user.find(marker='confirm-email').click()
    await user.should_see(marker='verify-done')
    await user.open('/exams')
    await user.should_not_see(marker='verify-banner')
    user.find(marker='new-exam').click()
    await user.should_see(marker='image-upload')

    ct, mr = Path(get_testdata_file('CT_small.dcm')), Path(get_testdata_file('MR_small.dcm'))
    await upload(user, 'image-upload', [ct, mr])
    await user.should_see('2 DICOM images added', retries=100)
    await upload(user, 'image-upload', [_dicomdir_zip(tmp_path)])
    await user.should_see('81 DICOM images added, 10 other files skipped (not DICOM images)', retries=300)
    await user.should_see(marker='image-totals')

    assert user.find(marker='modality').elements.pop().value == 'CT'
    user.find(marker='body_part').type('Chest')
    user.find(marker='clinical_question').type('Is the nodule benign?')
    user.find(marker='history').type('Smoker')
    user.find(marker='prior_report_text').type('First report: 6 mm nodule, follow-up advised.')
    user.find(marker='submit').click()
    await user.should_see(marker='test-mode')
    await user.should_see('150.00 EUR')
    user.find(marker='pay-test').click()
    await user.should_see('Waiting for a radiologist')

    # The paid case appears on both open boards without a reload.
    await doctor1.should_see('Is the nodule benign?', retries=40)
    await doctor2.should_see('Is the nodule benign?', retries=40)
    exam_id, = board_case_ids(doctor1)
    accept_on_board(doctor1, exam_id)
    await doctor1.should_see('Report', retries=40)
    await doctor1.should_see(marker='series')
    await doctor2.should_see(marker='board-empty', retries=40)
    await doctor2.should_not_see('Is the nodule benign?')

    # Images download as one zip with every uploaded DICOM file.
    response = await doctor1.http_client.get(f'/api/exams/{exam_id}/images.zip')
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
    assert len(names) == 83
    assert all(name.endswith('.dcm') for name in names)

    doctor1.find(marker='findings').type('A 6 mm solid nodule in the right upper lobe.')
    doctor1.find(marker='impression').type('Probably benign.')
    doctor1.find(marker='recommendations').type('Follow-up CT in 12 months.')
    set_value(doctor1, 'comparison', 'agrees')  # the patient gave a first report
    doctor1.find(marker='finalize').click()
    doctor1.find(marker='confirm-finalize').click()
    await doctor1.should_see(marker='finalized', retries=60)

    # The report email goes out through the outbox and the examination completes.
    await _wait_for(lambda: notifications.deliver_due() >= 0 and _completed(exam_id))
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Completed')
    await user.should_see(marker='report')
    await user.should_see('Probably benign.')
    pdf = await user.http_client.get(f'/api/exams/{exam_id}/report.pdf')
    assert pdf.status_code == 200
    assert pdf.content.startswith(b'%PDF')
    outbox = Path(shutil.os.environ['SECONDOPINION_DATA_DIR']) / 'outbox'
    assert any(path.suffix == '.eml' for path in outbox.iterdir())

    # The admin panel shows the incomes of the paid and reported examination.
    await admin.open('/admin')
    admin.find('Incomes').click()
    await admin.should_see(marker='ledger-months-EUR')
    await admin.should_see('150.00 EUR')
    await admin.should_see('105.00 EUR')


def _completed(exam_id: str) -> bool:
    from secondopinion import db
    from secondopinion.models import Examination

    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        return exam is not None and exam.status == 'completed'
