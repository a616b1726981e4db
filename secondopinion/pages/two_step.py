"""Two-step sign-in on pages: the QR code box, the profile section, and the admin's reset for a lost phone."""

from __future__ import annotations

import logging

from nicegui import ui

from ..i18n import _, error_message
from ..models import Role
from ..services import totp
from ..services.actors import Actor
from ..services.errors import DomainError
from .confirm import ConfirmDialog
from .layout import format_time, notify_error
from .password_field import password_input

logger = logging.getLogger(__name__)

QR_CSS = '.totp-qr svg { width: 100%; height: auto; display: block; }'


def enrollment_box(enrollment: totp.Enrollment, intro: str) -> None:
    """Show what an authenticator app needs: the QR code and the key in groups of four."""
    ui.add_css(QR_CSS)
    ui.label(intro).classes('text-body2')
    # The SVG is made by the qrcode package from our own data: paths only, no text or script.
    ui.html(enrollment.qr_svg, sanitize=False).classes('totp-qr self-center bg-white q-pa-sm') \
        .style('width: 220px').mark('totp-qr')
    ui.label(_('Key for typing (time-based):')).classes('text-caption')
    ui.label(enrollment.secret_groups).classes('text-body1 text-weight-medium') \
        .style('font-family: monospace; word-break: break-all').mark('totp-secret')


def code_input() -> ui.input:
    return ui.input(_('6-digit code')).props('inputmode=numeric autocomplete=one-time-code maxlength=7') \
        .classes('w-full').mark('totp-code')


def profile_section(actor: Actor) -> None:
    """Show the "Two-step sign-in" card of the profile page: status, set-up and turning off."""
    with ui.card().classes('w-full max-w-xl'):
        ui.label(_('Two-step sign-in')).classes('text-h6')
        ui.label(_('After your password, you also enter a 6-digit code from an authenticator app on your phone '
                 '(for example Google Authenticator, Microsoft Authenticator or FreeOTP). Someone who learns '
                 'your password still cannot sign in.')).classes('text-caption')
        body = ui.column().classes('w-full gap-2')
        message = ui.label('').classes('text-body2').mark('totp-message')

        def show_error(error: Exception) -> None:
            if isinstance(error, DomainError):
                message.text = error_message(error)
                message.classes(replace='text-body2 text-negative')
            else:
                notify_error(error)

        def show(note: str = '') -> None:
            body.clear()
            message.text = note
            message.classes(replace='text-body2 text-positive')
            status = totp.get_status(actor=actor)
            with body:
                if status.enabled:
                    ui.label(f'On since {format_time(status.enabled_at)}.').classes('text-subtitle2') \
                        .mark('totp-status')
                    if status.required:
                        ui.label(_('Admins must keep two-step sign-in. If you lose your phone, another admin can '
                                 'reset it.')).classes('text-body2')
                    else:
                        _disable_form(actor, show, show_error)
                else:
                    ui.label(_('Off.')).classes('text-subtitle2').mark('totp-status')
                    ui.button(_('Set up two-step sign-in'), icon='phonelink_lock',
                              on_click=lambda: start()).mark('totp-start')

        def start() -> None:
            try:
                enrollment = totp.begin_enrollment(actor=actor)
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                show_error(error)
                return
            body.clear()
            message.text = ''
            with body:
                enrollment_box(enrollment, 'Scan this QR code with your authenticator app, or type the key.')
                ui.label(_('Then enter the 6-digit code that the app shows, to check that it works.')) \
                    .classes('text-body2')
                code = code_input()

                def confirm() -> None:
                    try:
                        totp.confirm_enrollment(actor=actor, code=code.value or '')
                    except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                        code.value = ''
                        show_error(error)
                        return
                    show('Two-step sign-in is on. From now on, enter a code from the app after your password.')

                code.on('keydown.enter', confirm)
                with ui.row().classes('gap-2'):
                    ui.button(_('Turn on'), icon='check', on_click=confirm).mark('totp-confirm')
                    ui.button(_('Cancel'), on_click=lambda: show()).props('flat').mark('totp-cancel')

        show()


def _disable_form(actor: Actor, show, show_error) -> None:  # noqa: ANN001 (callbacks of profile_section)
    ui.label(_('To turn it off, enter your password and a code from the app.')).classes('text-body2')
    password = password_input(_('Current password')) \
        .props('autocomplete=current-password').classes('w-full').mark('totp-password')
    code = code_input()

    def turn_off() -> None:
        try:
            totp.disable(actor=actor, password=password.value or '', code=code.value or '')
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            password.value = ''
            code.value = ''
            show_error(error)
            return
        show('Two-step sign-in is off. You sign in with your password alone.')

    ui.button(_('Turn off two-step sign-in'), icon='lock_open', on_click=turn_off).props('outline color=negative') \
        .mark('totp-disable')


def admin_reset_box(actor: Actor) -> None:
    """Show the admin panel's form that removes a user's second factor after a lost phone."""
    if actor.role != Role.ADMIN:
        return
    with ui.column().classes('w-full max-w-xl gap-2').mark('totp-reset'):
        ui.label(_("Reset a user's two-step sign-in after a lost phone")).classes('text-subtitle1')
        ui.label(_('The user then signs in with the password alone. An admin is asked to set up two-step sign-in '
                 'again at the next sign-in. Check who is asking before you reset.')).classes('text-caption')
        email = ui.input(_('Email address of the account')).classes('w-full').mark('totp-reset-email')
        result = ui.label('').classes('text-body2').mark('totp-reset-result')

        def reset(address: str) -> None:
            try:
                totp.reset(actor=actor, email=address)
            except DomainError as error:
                result.text = error_message(error)
                result.classes(replace='text-body2 text-negative')
                return
            except Exception as error:  # noqa: BLE001 (logged by notify_error)
                notify_error(error)
                return
            result.text = f'Two-step sign-in of {address} was reset.'
            result.classes(replace='text-body2 text-positive')
            email.value = ''

        def ask() -> None:
            address = (email.value or '').strip()
            if not address:
                result.text = _('Enter the email address of the account.')
                result.classes(replace='text-body2 text-negative')
                return
            result.text = ''
            confirm.ask(title=f'Reset the two-step sign-in of {address}?',
                        lines=[(_('The account then signs in with the password alone, until its owner sets up '
                                'two-step sign-in again on the profile page. An admin account is asked to set it '
                                'up at its next sign-in.')),
                               (_('Anyone who knows the password can sign in meanwhile, so check who is asking '
                                'before you reset.'))],
                        action=_('Reset'), on_confirm=lambda: reset(address))

        confirm = ConfirmDialog('totp-reset-confirm')
        ui.button(_('Reset two-step sign-in'), on_click=ask).props('outline color=negative').mark('totp-reset-button')
