"""The patient's profile page: choosing email, SMS or both, with the phone number checked."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.services import profile

from .helpers import set_value, sign_in


async def _open_profile(user: User, make_patient):  # noqa: ANN001, ANN202
    patient = make_patient('Alice', email='alice@example.org', phone='')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    await user.open('/profile')
    await user.should_see(marker='channels')
    return patient


async def test_choose_sms_with_phone(user: User, make_patient):
    patient = await _open_profile(user, make_patient)
    set_value(user, 'channels', 'both')
    user.find(marker='phone').type('+41 79 765 43 21')
    user.find(marker='save-profile').click()
    await user.should_see('Saved. We will contact you by email and SMS.')
    saved = profile.get_profile(actor=patient)
    assert (saved.phone, saved.notify_email, saved.notify_sms) == ('+41797654321', True, True)


async def test_sms_without_phone_is_explained(user: User, make_patient):
    patient = await _open_profile(user, make_patient)
    set_value(user, 'channels', 'sms')
    user.find(marker='save-profile').click()
    await user.should_see('Enter your mobile phone number to receive SMS, or choose email only.')
    saved = profile.get_profile(actor=patient)
    assert (saved.notify_email, saved.notify_sms) == (True, False)


async def test_profile_is_for_patients_only(user: User, make_doctor):
    make_doctor('Dr. Bob', email='bob@example.org')
    await sign_in(user, 'bob@example.org')
    await user.open('/profile')
    await user.should_not_see(marker='channels')
