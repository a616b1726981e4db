"""The profile page: a patient's contact details and notification channels; everyone's password and
two-step sign-in."""

from __future__ import annotations

from nicegui import ui

from ..models import Role
from ..services import account_lifecycle, accounts, profile
from ..services.actors import Actor
from ..services.errors import ValidationError
from . import privacy, two_step
from .layout import frame, notify_error, plural, require_actor
from .password_field import password_input

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
        _password_card(actor)
        two_step.profile_section(actor)
        if actor.role == Role.PATIENT:
            privacy.your_data_section(actor)


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


def _password_card(actor: Actor) -> None:
    """Change the password: the current one is checked like a sign-in, and the other sessions end."""
    with ui.card().classes('w-full max-w-xl').mark('password-card'):
        ui.label('Change your password').classes('text-subtitle1')
        ui.label('You stay signed in here. Everywhere else you are signed out and sign in again with the new '
                 'password.').classes('text-caption')
        current = password_input('Current password') \
            .props('autocomplete=current-password').classes('w-full').mark('current-password')
        new = password_input(f'New password (at least {accounts.MIN_PASSWORD_LENGTH} characters)') \
            .props('autocomplete=new-password').classes('w-full') \
            .mark('new-password')
        repeat = ui.input('Repeat the new password', password=True).props('autocomplete=new-password') \
            .classes('w-full').mark('repeat-password')
        status = ui.label('').classes('text-body2').mark('password-status')
        fields = {'current_password': current, 'password': new}

        def change() -> None:
            for field in fields.values():
                field.props(remove='error')
            if (new.value or '') != (repeat.value or ''):
                status.text = 'The two new passwords are different. Type the same new password in both fields.'
                status.classes(replace='text-body2 text-negative')
                return
            try:
                ended = account_lifecycle.change_password(actor=actor, current_password=current.value or '',
                                                          new_password=new.value or '')
            except ValidationError as error:
                if error.field in fields:
                    fields[error.field].props('error')  # red outline; the message is in the status line below
                status.text = str(error)
                status.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                notify_error(error)
                return
            for field in (current, new, repeat):
                field.value = ''
            if ended == 0:
                elsewhere = 'no other sessions were open'
            else:
                elsewhere = f'we signed you out of {plural(ended, "other session")}'
            status.text = f'Your password was changed, and {elsewhere}. We sent you an email about the change.'
            status.classes(replace='text-body2 text-positive')

        ui.button('Change password', icon='key', on_click=change).mark('change-password')


def _channel(current: profile.Profile) -> str:
    if current.notify_email and current.notify_sms:
        return 'both'
    return 'sms' if current.notify_sms else 'email'
