"""Share links on the pages: the patient creates and withdraws one, a physician without an account opens it."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.services import examinations, reports, sharing
from tests.services.flow import REPORT
from tests.services.test_audit_log import exam_with_image

from .helpers import set_value, sign_in


def _reported(patient, doctor) -> str:  # noqa: ANN001
    exam_id = exam_with_image(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return exam_id


def _address(user: User) -> str:
    return user.find(marker='share-address').elements.pop().value


async def test_patient_creates_link_and_physician_opens_it(user: User, create_user, make_patient, make_doctor):
    patient = make_patient(name='Paula Patient', email='patient@example.org')
    exam_id = _reported(patient, make_doctor())
    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Share with your own doctor')
    await user.should_see(marker='share-none')
    set_value(user, 'share-label', 'Dr. Meier, family doctor')
    user.find(marker='share-create').click()
    await user.should_see('Copy this link now: it is shown only once.')
    await user.should_see('Dr. Meier, family doctor')
    address = _address(user)
    assert '/shared/' in address

    physician = create_user()
    await physician.open('/shared/' + address.rsplit('/shared/', 1)[1])
    await physician.should_see(marker='shared-summary')
    await physician.should_see('Paula Patient')
    await physician.should_see(marker='shared-report')
    await physician.should_see(marker='shared-zip')
    await physician.should_see(marker='series-list')

    await user.open(f'/exams/{exam_id}')
    await user.should_see('opened 1 time')


async def test_code_protected_link_asks_for_code(user: User, create_user, make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    exam_id = _reported(patient, make_doctor())
    _link, token = sharing.create_link(actor=patient, examination_id=exam_id, access_code='4711')

    await user.open(f'/shared/{token}')
    await user.should_see('The patient protected this link with an access code.')
    await user.should_not_see(marker='shared-summary')
    set_value(user, 'share-code-input', '1234')
    user.find(marker='share-open').click()
    await user.should_see('The access code is wrong. Check it with the patient.')
    set_value(user, 'share-code-input', '4711')
    user.find(marker='share-open').click()
    await user.should_see(marker='shared-summary')


async def test_withdrawn_link_shows_why(user: User, create_user, make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    exam_id = _reported(patient, make_doctor())
    link, token = sharing.create_link(actor=patient, examination_id=exam_id)

    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    user.find(marker=f'share-revoke-{link.id}').click()
    await user.should_see('withdrawn')

    physician = create_user()
    await physician.open(f'/shared/{token}')
    await physician.should_see('The patient has withdrawn this link. Ask the patient for a new one.')
    await physician.should_not_see(marker='shared-summary')


async def test_share_downloads_follow_the_link(user: User, make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    exam_id = _reported(patient, make_doctor())
    link, token = sharing.create_link(actor=patient, examination_id=exam_id)
    grant = sharing.open_link(token)

    report = await user.http_client.get(f'/api/shared/{grant.value}/report.pdf')
    assert report.status_code == 200
    assert report.content.startswith(b'%PDF')
    images = await user.http_client.get(f'/api/shared/{grant.value}/images.zip')
    assert images.status_code == 200
    assert images.content.startswith(b'PK')

    sharing.revoke_link(actor=patient, examination_id=exam_id, link_id=link.id)
    for path in ('report.pdf', 'images.zip', 'series/1/slices/0.png'):
        refused = await user.http_client.get(f'/api/shared/{grant.value}/{path}')
        assert refused.status_code == 404, path
