"""The profile page: for patients contact details and notification channels; for everyone two-step sign-in."""

from __future__ import annotations

from nicegui import ui

from ..models import Role
from ..services import profile
from ..services.actors import Actor
from ..services.errors import ValidationError
from . import two_step
from .layout import frame, notify_error, require_actor

CHANNELS = {'email': 'Email', 'sms': 'SMS', 'both': 'Email and SMS'}
IN_SENTENCE = {'email': 'email', 'sms': 'SMS', 'both': 'email and SMS'}


def register() -> None:
    ui.page('/profile')(profile_page)


def profile_page() -> None:
    actor = require_actor()
    if actor is None:
        return
    with frame('Profile', actor):
        ui.label('Profile').classes('text-h5')
        if actor.role == Role.PATIENT:
            _contact_section(actor)
        two_step.profile_section(actor)


def _contact_section(actor: Actor) -> None:
    current = profile.get_profile(actor=actor)
    with ui.card().classes('w-full max-w-xl'):
        ui.label(current.full_name).classes('text-subtitle1')
        ui.label(current.email).classes('text-body2 text-grey-8')
        ui.label('How should we tell you about your examinations?').classes('text-subtitle2 q-mt-md')
        ui.label('We send no findings by SMS or email text: only that something changed, with a link to sign '
                 'in. The report itself comes as a PDF attached to the email.').classes('text-caption')
        channel = ui.radio(CHANNELS, value=_channel(current)).props('inline').mark('channels')
        phone = ui.input('Mobile phone for SMS', value=current.phone, placeholder='+41 79 123 45 67') \
            .props('type=tel autocomplete=tel').classes('w-full').mark('phone')
        status = ui.label('').classes('text-body2').mark('profile-status')

        def save() -> None:
            phone.props(remove='error')
            try:
                saved = profile.update_contact(actor=actor, phone=phone.value or '',
                                               notify_email=channel.value in ('email', 'both'),
                                               notify_sms=channel.value in ('sms', 'both'))
            except ValidationError as error:
                if error.field == 'phone':
                    phone.props('error')  # red outline; the message is in the status line below
                status.text = str(error)
                status.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                notify_error(error)
                return
            phone.value = saved.phone
            status.text = f'Saved. We will contact you by {IN_SENTENCE[_channel(saved)]}.'
            status.classes(replace='text-body2 text-positive')

        ui.button('Save', icon='save', on_click=save).mark('save-profile')


def _channel(current: profile.Profile) -> str:
    if current.notify_email and current.notify_sms:
        return 'both'
    return 'sms' if current.notify_sms else 'email'
