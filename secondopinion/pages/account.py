"""Pages that emailed links open: forgotten password, password reset, email confirmation, doctor invitation.

Opening one of these pages changes nothing, because mail scanners open links too. The change
happens only when the person presses the button on the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nicegui import ui

from ..i18n import N_, _, error_message
from ..models import Role
from ..services import account_lifecycle, accounts
from ..services.actors import Actor
from ..services.errors import DomainError, ValidationError
from .layout import client_address, current_actor, frame, notify_error, sign_in
from .password_field import password_input

logger = logging.getLogger(__name__)


def register() -> None:
    ui.page('/forgot-password')(forgot_password_page)
    ui.page('/reset-password')(reset_password_page)
    ui.page('/verify-email')(verify_email_page)
    ui.page('/invite')(invite_page)


def forgot_password_page() -> None:
    address = client_address()
    with frame(_('Forgot your password?'), current_actor()):
        with ui.card().classes('w-full max-w-md mx-auto'):
            ui.label(_('Forgot your password?')).classes('text-h5')
            ui.label(_('Enter the email address of your account. We will send you a link to choose a new password.')) \
                .classes('text-body2')
            email = ui.input(_('Email')).props('type=email autocomplete=username').classes('w-full').mark('email')
            error = ui.label('').classes('text-negative').mark('forgot-error')
            done = ui.label('').classes('text-positive').mark('forgot-done')

            def submit() -> None:
                error.text = done.text = ''
                try:
                    account_lifecycle.request_password_reset(email=email.value or '', client_address=address)
                except ValidationError as exc:
                    error.text = error_message(exc)
                    return
                except Exception as exc:  # noqa: BLE001 (logged and shown generically by notify_error)
                    notify_error(exc)
                    return
                done.text = _('If an account exists for {email}, we sent a link to it. The link works for 1 hour. If '
                              'no email arrives within a few minutes, check your spam folder.', email=email.value.strip())

            email.on('keydown.enter', submit)
            ui.button(_('Send the link'), on_click=submit).classes('w-full').mark('send-reset-link')
            ui.link(_('Back to sign-in'), '/login')


def reset_password_page(token: str = '') -> None:
    address = client_address()
    with frame(_('Choose a new password'), current_actor()):
        with ui.card().classes('w-full max-w-md mx-auto'):
            if not account_lifecycle.reset_link_works(token):
                _link_invalid('password reset', _('Ask for a new link'), '/forgot-password')
                return
            ui.label(_('Choose a new password')).classes('text-h5')
            ui.label(_('After the change you are signed out everywhere, and you sign in with the new password.')) \
                .classes('text-body2')

            def save(password: str) -> None:
                account_lifecycle.reset_password(token=token, new_password=password, client_address=address)
                panel.clear()
                with panel:
                    ui.label(_('Your password was changed. Sign in with your new password.')) \
                        .classes('text-positive').mark('reset-done')
                    ui.button(_('Sign in'), on_click=lambda: ui.navigate.to('/login')).mark('go-sign-in')

            panel = ui.column().classes('w-full')
            with panel:
                _new_password_form(_('Save the new password'), save, lambda: _replace_with_invalid(
                    panel, 'password reset', 'Ask for a new link', '/forgot-password'))


def verify_email_page(token: str = '') -> None:
    actor = current_actor()
    address = client_address()
    with frame(_('Confirm your email address'), actor):
        with ui.card().classes('w-full max-w-md mx-auto'):
            if not account_lifecycle.verification_link_works(token):
                _verification_invalid(actor)
                return
            ui.label(_('Confirm your email address')).classes('text-h5')
            panel = ui.column().classes('w-full')

            def confirm() -> None:
                try:
                    email = account_lifecycle.verify_email(token=token, client_address=address)
                except account_lifecycle.LinkInvalidError:
                    panel.clear()
                    with panel:
                        _verification_invalid(actor)
                    return
                except Exception as exc:  # noqa: BLE001 (logged and shown by notify_error)
                    notify_error(exc)
                    return
                panel.clear()
                # The page frame's banner asks to confirm the address, which is done now, so it goes.
                for element in list(ui.context.client.layout.descendants()):
                    if 'verify-banner' in element._markers:
                        element.delete()
                with panel:
                    ui.label(_('Thank you. Your email address {email} is confirmed.', email=email)).classes('text-positive') \
                        .mark('verify-done')
                    target = '/exams' if actor is not None and actor.role == Role.PATIENT else '/login'
                    ui.button(_('Continue'), on_click=lambda: ui.navigate.to(target)).mark('verify-continue')

            with panel:
                ui.label(_('Press the button to confirm that this email address is yours.')).classes('text-body2')
                ui.button(_('Confirm my email address'), on_click=confirm).classes('w-full').mark('confirm-email')


def invite_page(token: str = '') -> None:
    address = client_address()
    with frame(_('Welcome'), current_actor()):
        with ui.card().classes('w-full max-w-md mx-auto'):
            if not account_lifecycle.invite_link_works(token):
                _link_invalid('invitation', None, None)
                ui.label(_('Ask the administrator of the practice to send you a new invitation.')).classes('text-body2')
                return
            ui.label(_('Choose your password')).classes('text-h5')
            ui.label(_('You sign in with your email address and this password. You are signed in right after.')) \
                .classes('text-body2')

            def save(password: str) -> None:
                actor = account_lifecycle.accept_invite(token=token, new_password=password, client_address=address)
                sign_in(actor, method='invite')

            panel = ui.column().classes('w-full')
            with panel:
                _new_password_form(_('Save and sign in'), save,
                                   lambda: _replace_with_invalid(panel, 'invitation', None, None))


def verification_banner(actor: Actor) -> None:
    """Ask a patient whose email address is not confirmed yet to confirm it, with a button to resend the link."""
    if actor.email_verified:
        return  # confirmed when this page's session was checked, so no query is needed
    try:
        status = account_lifecycle.email_status(actor=actor)
    except DomainError:
        return
    if status.verified:
        return
    with ui.card().classes('w-full bg-amber-1').mark('verify-banner'):
        ui.label(_('Please confirm your email address {email}: open the link in the email we sent you. You can '
                   'prepare examinations now, but you can pay only after confirming.', email=status.email)).classes('text-body2')

        def resend() -> None:
            try:
                account_lifecycle.resend_verification(actor=actor)
            except Exception as exc:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(exc)
                return
            ui.notify(_('We sent a new link to {email}.', email=status.email), type='positive', position='top')

        ui.button(_('Send the link again'), icon='mail', on_click=resend).props('flat dense').mark('resend-verification')


def payment_blocked_note(actor: Actor) -> None:
    """Explain, next to a pay button, that paying waits for the email confirmation; shows nothing once confirmed."""
    try:
        status = account_lifecycle.email_status(actor=actor)
    except DomainError:
        return
    if not status.verified:
        ui.label(_('You can pay once your email address {email} is confirmed. Open the link in the email we '
                   'sent you, or ask for a new one with "Send the link again" at the top of this page.',
                   email=status.email)) \
            .classes('text-body2 text-warning-strong').mark('payment-blocked')


def _new_password_form(button_label: str, save: Callable[[str], None], on_invalid_link: Callable[[], None]) -> None:
    password = password_input(_('New password (at least {count} characters)', count=accounts.MIN_PASSWORD_LENGTH)) \
        .props('autocomplete=new-password').classes('w-full') \
        .mark('new-password')
    repeat = ui.input(_('Repeat the new password'), password=True).props('autocomplete=new-password') \
        .classes('w-full').mark('repeat-password')
    error = ui.label('').classes('text-negative').mark('password-error')

    def submit() -> None:
        error.text = ''
        if (password.value or '') != (repeat.value or ''):
            error.text = _('The two passwords are different. Type the same new password in both fields.')
            return
        try:
            save(password.value or '')
        except account_lifecycle.LinkInvalidError:
            on_invalid_link()
        except ValidationError as exc:
            error.text = error_message(exc)
        except Exception as exc:  # noqa: BLE001 (logged and shown generically by notify_error)
            notify_error(exc)

    repeat.on('keydown.enter', submit)
    ui.button(button_label, on_click=submit).classes('w-full').mark('save-password')


# Headings of a single-use link that does not work, by the kind of link.
INVALID_LINK_TITLES = {'password reset': N_('This password reset link does not work'),
                       'invitation': N_('This invitation link does not work'),
                       'confirmation': N_('This confirmation link does not work')}


def _replace_with_invalid(panel: ui.column, what: str, button: str | None, target: str | None) -> None:
    panel.clear()
    with panel:
        _link_invalid(what, button, target)


def _link_invalid(what: str, button: str | None, target: str | None) -> None:
    ui.label(_(INVALID_LINK_TITLES[what])).classes('text-h5').mark('link-invalid')
    ui.label(_('It was already used, it expired, or a newer link replaced it. Each link works only once.')) \
        .classes('text-body2')
    if button and target:
        ui.button(button, on_click=lambda: ui.navigate.to(target)).mark('new-link')


def _verification_invalid(actor: Actor | None) -> None:
    _link_invalid('confirmation', None, None)
    if actor is not None and actor.role == Role.PATIENT:
        # The page frame shows the banner with "Send the link again" while the address is unconfirmed.
        ui.label(_('If your address is not confirmed yet, ask for a new link at the top of this page.')) \
            .classes('text-body2')
    else:
        ui.label(_('Sign in to ask for a new link, or to check whether your address is already confirmed.')) \
            .classes('text-body2')
        ui.button(_('Sign in'), on_click=lambda: ui.navigate.to('/login')).mark('new-link')
