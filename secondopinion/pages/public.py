"""Pages anyone can open: the landing page (landing.py), sign-in and patient registration."""

from __future__ import annotations

from nicegui import ui

from .. import i18n
from ..i18n import N_, _
from ..services import accounts, totp
from ..services.errors import DomainError, ValidationError
from .landing import landing_page
from .layout import HOME_BY_ROLE, client_address, current_actor, frame, notify_error, show_form_error, sign_in
from .language import language_select
from .two_step import code_input, enrollment_box
from .oidc import provider_buttons, show_rejection
from .password_field import password_input


def register() -> None:
    ui.page('/')(landing_page)
    ui.page('/login')(login_page)
    ui.page('/register')(register_page)


SIGN_IN_NOTICES = {
    'idle': N_('You were signed out because the page was not used for a while. Please sign in again.'),
    'expired': N_('You were signed out because your sign-in is more than a few hours old. Please sign in again.'),
    'password_changed': N_('You were signed out because the password of this account was changed. Sign in with '
                           'the new password.'),
    'deactivated': N_('You were signed out because this account was deactivated. Please contact the practice.'),
    'ended': N_('Your session has ended. Please sign in again.'),
    'ticket': N_('The sign-in did not complete in time. Please sign in again.'),
}


def login_page(ended: str = '', ticket: str = '') -> None:
    actor = current_actor()
    if actor:
        ui.navigate.to(HOME_BY_ROLE[actor.role])
        return

    address = client_address()
    notice = _(SIGN_IN_NOTICES.get(ended, SIGN_IN_NOTICES['ended'])) if ended else \
        _(SIGN_IN_NOTICES['ticket']) if ticket else ''
    # The id of a sign-in whose password was right and that waits for the code. It stays in this
    # page's server-side state and is never sent to the browser (see services/totp.py).
    waiting: dict[str, str | None] = {'id': None}
    with frame(_('Sign in')):
        with ui.card().classes('w-full max-w-md mx-auto'):
            ui.label(_('Sign in')).classes('text-h5')
            if notice:
                ui.label(notice).classes('text-body2 text-grey-8').mark('sign-in-notice')
            show_rejection()
            with ui.column().classes('w-full gap-2') as password_step:
                email = ui.input(_('Email')).props('type=email autocomplete=username').classes('w-full').mark('email')
                password = password_input(_('Password')) \
                    .props('autocomplete=current-password').classes('w-full').mark('password')
            code_step = ui.column().classes('w-full gap-2')
            error = ui.label('').classes('text-negative').mark('login-error')

            def back_to_password(message: str = '') -> None:
                if waiting['id']:
                    totp.cancel_sign_in(waiting['id'])
                waiting['id'] = None
                code_step.clear()
                password.value = ''
                password_step.set_visibility(True)
                sign_in_button.set_visibility(True)
                other_ways.set_visibility(True)
                error.text = message

            def submit_code(code_input: ui.input) -> None:
                pending_id = waiting['id']
                if pending_id is None:
                    return
                try:
                    actor = totp.finish_sign_in(pending_id, code_input.value or '')
                except ValidationError as exc:
                    if exc.field == 'code':
                        error.text = i18n.error_message(exc)
                        code_input.value = ''
                    else:
                        # Expired, locked or deactivated: start again from the password.
                        back_to_password(i18n.error_message(exc))
                    return
                except Exception as exc:  # noqa: BLE001 (shown generically and logged by notify_error)
                    notify_error(exc)
                    return
                waiting['id'] = None
                sign_in(actor, method=totp.METHOD)

            def ask_for_code(step: totp.SecondFactorRequired) -> None:
                enrollment = totp.begin_sign_in_enrollment(step.pending_id) if step.enroll else None
                waiting['id'] = step.pending_id
                password_step.set_visibility(False)
                sign_in_button.set_visibility(False)
                other_ways.set_visibility(False)
                error.text = ''
                with code_step:
                    if enrollment is not None:
                        enrollment_box(enrollment, 'Admins need two-step sign-in. Set it up now: scan this QR code '
                                                    'with an authenticator app on your phone, or type the key.')
                        prompt = 'Then enter the 6-digit code that the app shows.'
                    else:
                        prompt = 'Enter the 6-digit code from your authenticator app.'
                    ui.label(prompt).classes('text-body2')
                    code = code_input().props('autofocus')
                    code.on('keydown.enter', lambda: submit_code(code))
                    ui.button(_('Continue'), on_click=lambda: submit_code(code)).classes('w-full').mark('totp-submit')
                    ui.button(_('Back'), on_click=lambda: back_to_password()).props('flat').classes('w-full') \
                        .mark('totp-back')

            def submit() -> None:
                try:
                    actor = accounts.authenticate(email=email.value or '', password=password.value or '',
                                                  client_address=address)
                except totp.SecondFactorRequired as step:
                    try:
                        ask_for_code(step)
                    except Exception as exc:  # noqa: BLE001 (shown generically and logged by notify_error)
                        back_to_password()
                        notify_error(exc)
                    return
                except ValidationError as exc:
                    error.text = i18n.error_message(exc)
                    return
                except Exception as exc:  # noqa: BLE001 (shown generically and logged by notify_error)
                    notify_error(exc)
                    return
                sign_in(actor)

            password.on('keydown.enter', submit)
            sign_in_button = ui.button(_('Sign in'), on_click=submit).classes('w-full').mark('sign-in')
            with ui.column().classes('w-full gap-2') as other_ways:
                ui.link(_('Forgot your password?'), '/forgot-password').mark('forgot-password')
                provider_buttons(_('Sign in'))
                with ui.row().classes('gap-1'):
                    ui.label(_('New here?'))
                    ui.link(_('Create a patient account'), '/register')


def register_page() -> None:
    if current_actor():
        ui.navigate.to('/')
        return

    address = client_address()
    with frame(_('Create an account')):
        with ui.card().classes('w-full max-w-md mx-auto'):
            ui.label(_('Create a patient account')).classes('text-h5')
            name = ui.input(_('Full name')).props('autocomplete=name').classes('w-full').mark('name')
            email = ui.input(_('Email')).props('type=email autocomplete=email').classes('w-full').mark('email')
            phone = ui.input(_('Mobile phone (optional)'), placeholder='+41 79 123 45 67') \
                .props('type=tel autocomplete=tel').classes('w-full').mark('phone')
            birth = ui.input(_('Date of birth'), placeholder=_('YYYY-MM-DD')).props('type=date').classes('w-full') \
                .mark('date_of_birth')
            password = password_input(_('Password (at least {count} characters)', count=accounts.MIN_PASSWORD_LENGTH)) \
                .props('autocomplete=new-password') \
                .classes('w-full').mark('password')
            # The language of the account, which its emails, texts and report use too.
            language = language_select(i18n.current_language())
            error = ui.label('').classes('text-negative').mark('register-error')
            fields = {'name': name, 'email': email, 'phone': phone, 'date_of_birth': birth, 'password': password,
                      'language': language}

            def submit() -> None:
                for field in fields.values():
                    field.props(remove='error error-message')
                try:
                    birth_date = accounts.parse_date_of_birth(birth.value)
                    accounts.register_patient(full_name=name.value or '', email=email.value or '',
                                              password=password.value or '', date_of_birth=birth_date,
                                              phone=phone.value or '', language=language.value or '')
                    actor = accounts.authenticate(email=email.value or '', password=password.value or '',
                                                  client_address=address)
                except DomainError as exc:
                    show_form_error(error, fields, exc)
                    return
                except Exception as exc:  # noqa: BLE001 (shown generically and logged by notify_error)
                    notify_error(exc)
                    return
                sign_in(actor, next_path='/exams')

            ui.button(_('Create account'), on_click=submit).classes('w-full').mark('register')
            provider_buttons(_('Sign up'))
            with ui.row().classes('gap-1'):
                ui.label(_('Already registered?'))
                ui.link(_('Sign in'), '/login')

