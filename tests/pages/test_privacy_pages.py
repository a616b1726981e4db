"""The "Your data" section of the profile: the data download and the account deletion dialog."""

from __future__ import annotations

import io
import json
import zipfile

from nicegui import Client, ui
from nicegui.testing import User
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import Examination, ExamStatus, User as UserRow
from secondopinion.services import examinations
from tests.conftest import PASSWORD
from tests.services.flow import paid

from .helpers import sign_in

EMAIL = 'zelda@example.org'


async def _open_profile(user: User, make_patient):  # noqa: ANN001, ANN202
    patient = make_patient('Zelda Privatova', email=EMAIL)
    await sign_in(user, EMAIL)
    await user.should_see('My examinations')
    await user.open('/profile')
    await user.should_see('Your data')
    _close_other_pages(user)
    return patient


def _close_other_pages(user: User) -> None:
    """Delete the pages opened before the current one, as a browser leaves them when it navigates.

    The simulated user keeps them, and a kept page whose session ends would navigate this user away.
    """
    for client in list(Client.instances.values()):
        if client is not user.client and not client.is_deleted:
            client.delete()


def _user_row(user_id: int) -> tuple:
    with db.session_scope() as session:
        row = session.scalar(select(UserRow).where(UserRow.id == user_id))
        return row.email, row.full_name, row.is_active, row.deleted_at


async def test_patient_downloads_own_data(user: User, make_patient):
    other = make_patient('Bob Other', email='bob@example.org')
    others_exam = paid(other)
    patient = await _open_profile(user, make_patient)
    exam_id = paid(patient)

    response = await user.http_client.get('/api/me/export.zip')

    assert response.status_code == 200
    assert response.headers['content-type'] == 'application/zip'
    assert 'attachment' in response.headers['content-disposition']
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    exams = json.loads(archive.read('examinations.json'))
    assert [exam['id'] for exam in exams] == [exam_id]
    assert others_exam.encode() not in response.content
    assert json.loads(archive.read('account.json'))['profile']['email'] == EMAIL


async def test_export_not_found_for_others(user: User, make_patient, make_doctor):
    make_patient('Zelda Privatova', email=EMAIL)
    response = await user.http_client.get('/api/me/export.zip')
    assert response.status_code == 404

    make_doctor(email='doctor@example.org')
    await sign_in(user, 'doctor@example.org')
    await user.should_see(marker='board-empty')
    response = await user.http_client.get('/api/me/export.zip')
    assert response.status_code == 404


async def test_wrong_password_shown_in_dialog(user: User, make_patient):
    patient = await _open_profile(user, make_patient)
    before = _user_row(patient.user_id)

    user.find(marker='delete-account').click()
    await user.should_see('Delete your account?')
    user.find(marker='delete-password').type('not my password')
    user.find(marker='confirm-delete').click()

    await user.should_see('Password is incorrect. Enter the password you sign in with.')
    assert _user_row(patient.user_id) == before


async def test_refusal_under_review_shown(user: User, make_patient, make_doctor):
    patient = await _open_profile(user, make_patient)
    exam_id = paid(patient)
    examinations.accept(actor=make_doctor(), examination_id=exam_id)

    user.find(marker='delete-account').click()
    user.find(marker='delete-password').type(PASSWORD)
    user.find(marker='confirm-delete').click()

    await user.should_see('Wait for the report, or ask the practice to cancel the examination')
    assert _user_row(patient.user_id)[2] is True


async def test_deletion_signs_out_and_confirms(user: User, make_patient):
    patient = await _open_profile(user, make_patient)
    exam_id = paid(patient)

    user.find(marker='delete-account').click()
    user.find(marker='delete-password').type(PASSWORD)
    user.find(marker='confirm-delete').click()

    await user.should_see(marker='account-deleted')
    await user.should_see('Your account was deleted')
    email, name, active, deleted_at = _user_row(patient.user_id)
    assert (email, name, active) == (f'deleted-{patient.user_id}@invalid', 'Deleted patient', False)
    assert deleted_at is not None
    with db.session_scope() as session:
        assert session.get(Examination, exam_id).status == ExamStatus.CANCELLED

    # The session cookie is gone: the patient's pages and data now send the browser to the sign-in page.
    await user.open('/exams')
    await user.should_see(marker='sign-in')
    response = await user.http_client.get('/api/me/export.zip')
    assert response.status_code == 404
    await sign_in(user, EMAIL)
    await user.should_see('Email or password is incorrect.')


async def test_keep_account_closes_dialog(user: User, make_patient):
    patient = await _open_profile(user, make_patient)
    user.find(marker='delete-account').click()
    dialog = user.find(ui.dialog).elements.pop()
    assert dialog.value is True
    user.find(marker='keep-account').click()
    assert dialog.value is False
    assert _user_row(patient.user_id)[2] is True
