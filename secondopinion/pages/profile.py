"""The profile page: a patient's contact details and notification channels; everyone's language, password
and two-step sign-in."""

from __future__ import annotations

from nicegui import ui

from ..i18n import N_, _, error_message, ngettext
from ..models import Role
from ..services import account_lifecycle, accounts, profile
from ..services.actors import Actor
from ..services.errors import ValidationError
from . import privacy, two_step
from .language import language_select
from .layout import frame, notify_error, require_actor
from .password_field import password_input

CHANNELS = {'email': N_('Email'), 'sms': N_('SMS'), 'both': N_('Email and SMS')}
SAVED_MESSAGES = {'email': N_('Saved. We will contact you by email.'), 'sms': N_('Saved. We will contact you by SMS.'),
                  'both': N_('Saved. We will contact you by email and SMS.')}


def register() -> None:
    ui.page('/profile')(profile_page)


def profile_page() -> None:
    actor = require_actor()
    if actor is None:
        return
    with frame(_('Profile'), actor):
        ui.label(_('Profile')).classes('text-h5')
        if actor.role == Role.PATIENT:
            _contact_section(actor)
        _language_card(actor)
        _password_card(actor)
        two_step.profile_section(actor)
        if actor.role == Role.PATIENT:
            privacy.your_data_section(actor)


def _contact_section(actor: Actor) -> None:
    current = profile.get_profile(actor=actor)
    with ui.card().classes('w-full max-w-xl'):
        ui.label(current.full_name).classes('text-subtitle1')
        ui.label(current.email).classes('text-body2 text-grey-8')
        ui.label(_('How should we tell you about your examinations?')).classes('text-subtitle2 q-mt-md')
        ui.label(_('We send no findings by SMS or email text: only that something changed, with a link to sign '
                 'in. The report itself comes as a PDF attached to the email.')).classes('text-caption')
        channel = ui.radio({key: _(label) for key, label in CHANNELS.items()}, value=_channel(current)).props('inline').mark('channels')
        phone = ui.input(_('Mobile phone for SMS'), value=current.phone, placeholder='+41 79 123 45 67') \
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
                status.text = error_message(error)
                status.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                notify_error(error)
                return
            phone.value = saved.phone
            status.text = _(SAVED_MESSAGES[_channel(saved)])
            status.classes(replace='text-body2 text-positive')

        ui.button(_('Save'), icon='save', on_click=save).mark('save-profile')


def _language_card(actor: Actor) -> None:
    """Choose the language of the pages, and of the emails, texts and report PDFs sent to this user."""
    with ui.card().classes('w-full max-w-xl').mark('language-card'):
        ui.label(_('Language')).classes('text-subtitle1')
        ui.label(_('Pages, emails, text messages and your report\'s headings use this language. A report text '
                   'stays in the language the radiologist wrote it in.')).classes('text-caption')
        choice = language_select(actor.language)
        status = ui.label('').classes('text-body2').mark('language-status')

        def save() -> None:
            choice.props(remove='error')
            try:
                profile.set_language(actor=actor, language=choice.value or '')
            except ValidationError as error:
                choice.props('error')  # red outline; the message is in the status line below
                status.text = error_message(error)
                status.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                notify_error(error)
                return
            # The whole page is built again, in the new language.
            ui.navigate.reload()

        ui.button(_('Save language'), icon='translate', on_click=save).mark('save-language')


def _password_card(actor: Actor) -> None:
    """Change the password: the current one is checked like a sign-in, and the other sessions end."""
    with ui.card().classes('w-full max-w-xl').mark('password-card'):
        ui.label(_('Change your password')).classes('text-subtitle1')
        ui.label(_('You stay signed in here. Everywhere else you are signed out and sign in again with the new '
                 'password.')).classes('text-caption')
        current = password_input(_('Current password')) \
            .props('autocomplete=current-password').classes('w-full').mark('current-password')
        new = password_input(_('New password (at least {count} characters)', count=accounts.MIN_PASSWORD_LENGTH)) \
            .props('autocomplete=new-password').classes('w-full') \
            .mark('new-password')
        repeat = ui.input(_('Repeat the new password'), password=True).props('autocomplete=new-password') \
            .classes('w-full').mark('repeat-password')
        status = ui.label('').classes('text-body2').mark('password-status')
        fields = {'current_password': current, 'password': new}

        def change() -> None:
            for field in fields.values():
                field.props(remove='error')
            if (new.value or '') != (repeat.value or ''):
                status.text = _('The two new passwords are different. Type the same new password in both fields.')
                status.classes(replace='text-body2 text-negative')
                return
            try:
                ended = account_lifecycle.change_password(actor=actor, current_password=current.value or '',
                                                          new_password=new.value or '')
            except ValidationError as error:
                if error.field in fields:
                    fields[error.field].props('error')  # red outline; the message is in the status line below
                status.text = error_message(error)
                status.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                notify_error(error)
                return
            for field in (current, new, repeat):
                field.value = ''
            if ended == 0:
                status.text = _('Your password was changed, and no other sessions were open. We sent you an email '
                                'about the change.')
            else:
                status.text = ngettext('Your password was changed, and we signed you out of {count} other session. '
                                       'We sent you an email about the change.',
                                       'Your password was changed, and we signed you out of {count} other sessions. '
                                       'We sent you an email about the change.', ended)
            status.classes(replace='text-body2 text-positive')

        ui.button(_('Change password'), icon='key', on_click=change).mark('change-password')


def _channel(current: profile.Profile) -> str:
    if current.notify_email and current.notify_sms:
        return 'both'
    return 'sms' if current.notify_sms else 'email'
