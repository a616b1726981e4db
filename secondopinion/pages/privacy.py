"""A patient's privacy requests on the profile page: download all their data, delete the account."""

from __future__ import annotations

from nicegui import ui

from ..i18n import _, error_message
from ..services import privacy
from ..services.actors import Actor
from ..services.errors import ValidationError
from .layout import frame, leave, notify_error
from .password_field import password_input


def register() -> None:
    ui.page('/account-deleted')(account_deleted_page)


def your_data_section(actor: Actor) -> None:
    with ui.card().classes('w-full max-w-xl'):
        ui.label(_('Your data')).classes('text-subtitle1')
        ui.label(_('Download a zip file with everything we store about you: your profile, your examinations with '
                 'their details, payments and reports, the report PDFs, and your images. With large studies '
                 'this file can be several gigabytes.')).classes('text-body2')
        ui.button(_('Download all my data'), icon='download',
                  on_click=lambda: ui.navigate.to('/api/me/export.zip')).props('outline').mark('export-data')
        ui.separator().classes('q-my-sm')
        ui.label(_('You can delete your account. This cannot be undone.')).classes('text-body2')
        dialog = _deletion_dialog(actor)
        ui.button(_('Delete my account'), icon='delete_forever', on_click=dialog.open) \
            .props('outline color=negative').mark('delete-account')


def _deletion_dialog(actor: Actor) -> ui.dialog:
    with ui.dialog() as dialog, ui.card().classes('max-w-lg'):
        ui.label(_('Delete your account?')).classes('text-h6')
        ui.label(_('We delete:')).classes('text-subtitle2')
        with ui.column().classes('gap-0 q-pl-md text-body2'):
            ui.label(_('• your images, the report files you uploaded and your second opinion reports;'))
            ui.label(_('• the clinical details of your examinations;'))
            ui.label(_('• your name, email address, phone number and date of birth, and your sign-in.'))
        ui.label(_('We keep the payment records of your examinations, without your name, because the practice '
                 'must keep its accounts. Examinations that wait for payment or for a radiologist are cancelled, '
                 'and paid ones are refunded. While a radiologist is working on an examination, the account '
                 'cannot be deleted.')).classes('text-body2')
        ui.label(_('Download your data first if you want to keep your images and reports.')).classes('text-body2')
        password = password_input(_('Your password')) \
            .props('autocomplete=current-password').classes('w-full').mark('delete-password')
        status = ui.label('').classes('text-body2 text-negative').mark('delete-status')

        def confirm() -> None:
            password.props(remove='error')
            try:
                privacy.delete_patient_account(actor=actor, password=password.value or '')
            except ValidationError as error:
                password.props('error')
                status.text = error_message(error)
                return
            except Exception as error:  # noqa: BLE001 (logged and shown by notify_error)
                status.text = ''
                notify_error(error)
                return
            password.value = ''
            dialog.close()
            # The session ended with the account; this removes the cookie and shows the confirmation.
            leave('/auth/signed-out?reason=deleted')

        with ui.row().classes('w-full justify-end'):
            ui.button(_('Keep my account'), on_click=dialog.close).props('flat').mark('keep-account')
            ui.button(_('Delete my account for good'), icon='delete_forever', on_click=confirm) \
                .props('color=negative').mark('confirm-delete')
    return dialog


def account_deleted_page() -> None:
    with frame(_('Account deleted')):
        with ui.card().classes('w-full max-w-xl'):
            ui.label(_('Your account was deleted')).classes('text-h5').mark('account-deleted')
            ui.label(_('We removed your images, reports and personal details, and signed you out on every device. '
                     'A confirmation is on its way to your email address.')).classes('text-body2')
            ui.label(_('Thank you for using SecondOpinion. You are welcome to register again at any time.')) \
                .classes('text-body2')
            ui.link(_('Back to the start page'), '/')
