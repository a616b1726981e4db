"""The user's own profile: a patient's phone number and notification channels (email, SMS or both), and
everyone's language."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from ..db import session_scope
from ..i18n import validate_language
from ..models import Patient, Role, User
from . import audit
from .accounts import normalize_phone
from .actors import Actor, require_role
from ..i18n import N_
from .errors import NotFoundError, ValidationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    full_name: str
    email: str
    phone: str
    notify_email: bool
    notify_sms: bool


def get_profile(*, actor: Actor) -> Profile:
    require_role(actor, Role.PATIENT)
    with session_scope() as session:
        user, patient = _load(session, actor)
        return Profile(full_name=user.full_name, email=user.email, phone=user.phone or '',
                       notify_email=patient.notify_email, notify_sms=patient.notify_sms)


def update_contact(*, actor: Actor, phone: str, notify_email: bool, notify_sms: bool) -> Profile:
    """Save the phone number (E.164) and the chosen channels. At least one channel; SMS needs a number."""
    require_role(actor, Role.PATIENT)
    phone_e164 = normalize_phone(phone)
    if not notify_email and not notify_sms:
        raise ValidationError(N_('Choose email, SMS or both, so that we can tell you when your report is ready.'),
                              field='channels')
    if notify_sms and not phone_e164:
        raise ValidationError(N_('Enter your mobile phone number to receive SMS, or choose email only.'), field='phone')
    with session_scope() as session:
        user, patient = _load(session, actor)
        user.phone = phone_e164
        patient.notify_email, patient.notify_sms = notify_email, notify_sms
        audit.record(session, actor, 'patient.contact_updated', 'user', user.id, email=notify_email, sms=notify_sms)
    logger.info('user %s set notifications: email=%s sms=%s', actor.user_id, notify_email, notify_sms)
    return get_profile(actor=actor)


def set_language(*, actor: Actor, language: str) -> str:
    """Store the language of the actor's pages and messages, and return it. Any signed-in role may.

    Raises ValidationError (field "language") for a code outside i18n.LANGUAGES, and writes nothing then.
    """
    require_role(actor, Role.PATIENT, Role.DOCTOR, Role.ADMIN)
    language = validate_language(language)
    with session_scope() as session:
        user = session.get(User, actor.user_id)
        if user is None:
            raise NotFoundError(N_('Profile'))
        previous = user.language
        user.language = language
        audit.record(session, actor, 'user.language_changed', 'user', user.id, language=language, previous=previous)
    logger.info('user %s set language %s (was %s)', actor.user_id, language, previous)
    return language


def _load(session, actor: Actor) -> tuple[User, Patient]:  # noqa: ANN001
    user = session.get(User, actor.user_id)
    patient = session.scalar(select(Patient).where(Patient.user_id == actor.user_id))
    if user is None or patient is None:
        raise NotFoundError(N_('Profile'))
    return user, patient
