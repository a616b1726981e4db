"""Sign-in with Microsoft and Google on the public pages, and the "complete your account" page."""

from __future__ import annotations

from nicegui import ui

from ..i18n import _
from ..api.oidc import COMPLETE_PATH, PENDING_KEY
from ..services import accounts, oidc
from ..services.errors import DomainError
from .layout import client_address, current_actor, frame, notify_error, show_form_error


def register() -> None:
    ui.page(COMPLETE_PATH)(complete_page)


def provider_buttons(verb: str = 'Sign in') -> None:
    """Show one link per configured provider, styled as a button; nothing when none is configured."""
    providers = oidc.configured_providers()
    if not providers:
        return
    with ui.row().classes('w-full items-center gap-2 q-mt-sm'):
        ui.separator().classes('col')
        ui.label(_('or')).classes('text-grey-7')
        ui.separator().classes('col')
    for provider in providers:
        label = f'{verb} with {provider.label}'
        # A plain link, because the start route responds with an HTTP redirect to the provider.
        ui.link(label, f'/auth/oidc/{provider.name}/start') \
            .classes('w-full q-btn q-btn--outline q-py-sm text-center no-underline text-primary rounded-borders') \
            .props(f'aria-label="{label}" role="button"').mark(f'oidc-{provider.name}')


def show_rejection() -> None:
    """Show the message for an `oidc_error` in the page address, if there is a known one."""
    request = ui.context.client.request
    if request is None:
        return
    message = oidc.rejection_message(request.query_params.get('oidc_error', ''),
                                   request.query_params.get('provider', ''))
    if message:
        ui.label(message).classes('text-negative').props('role=alert').mark('oidc-error')


def _pending_sign_up() -> oidc.PendingSignUp | None:
    request = ui.context.client.request
    if request is None or 'session' not in request.scope:
        return None
    return oidc.PendingSignUp.from_dict(request.session.get(PENDING_KEY))


def complete_page() -> None:
    if current_actor():
        ui.navigate.to('/')
        return
    pending = _pending_sign_up()
    with frame(_('Complete your account')):
        with ui.card().classes('w-full max-w-md mx-auto'):
            if pending is None:
                ui.label(_('Complete your account')).classes('text-h5')
                ui.label(_('There is no sign-in with Microsoft or Google waiting in this browser, or it expired '
                         'after 15 minutes. Start again from the sign-in page.')).mark('complete-missing')
                ui.link(_('Go to the sign-in page'), '/login')
                return
            _complete_form(pending)


def _complete_form(pending: oidc.PendingSignUp) -> None:
    label = oidc.PROVIDER_LABELS[pending.provider]
    address = client_address()
    ui.label(_('Complete your account')).classes('text-h5')
    ui.label(f'{label} confirmed your email address {pending.email}. To create your patient account we also '
             'need your date of birth, which identifies you to the radiologist.').classes('text-body2')
    name = None
    if not pending.full_name:
        name = ui.input(_('Full name')).props('autocomplete=name').classes('w-full').mark('name')
    else:
        ui.label(f'Name: {pending.full_name}').classes('text-body1')
    birth = ui.input(_('Date of birth'), placeholder=_('YYYY-MM-DD')).props('type=date').classes('w-full') \
        .mark('date_of_birth')
    phone = ui.input(_('Mobile phone (optional)'), placeholder='+41 79 123 45 67') \
        .props('type=tel autocomplete=tel').classes('w-full').mark('phone')
    error = ui.label('').classes('text-negative').mark('complete-error')
    fields = {'date_of_birth': birth, 'phone': phone}
    if name is not None:
        fields['name'] = name

    def submit() -> None:
        for field in fields.values():
            field.props(remove='error error-message')
        try:
            result = oidc.create_patient(pending, date_of_birth=accounts.parse_date_of_birth(birth.value), phone=phone.value or '',
                                         full_name=(name.value or '') if name is not None else None,
                                         client_address=address)
        except DomainError as exc:
            show_form_error(error, fields, exc)
            return
        except Exception as exc:  # noqa: BLE001 (shown generically and logged by notify_error)
            notify_error(exc)
            return
        ui.navigate.to(f'/auth/oidc/finish?ticket={result.ticket}')

    ui.button(_('Create account'), on_click=submit).classes('w-full').mark('complete')

