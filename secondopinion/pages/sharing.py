"""Share links on pages: the patient's section to create and revoke them, and the page a physician opens."""

from __future__ import annotations

import logging

from nicegui import ui

from ..i18n import _, error_message, ngettext
from ..config import get_settings
from ..services import sharing, viewer
from ..services.actors import Actor
from ..services.errors import DomainError, NotFoundError
from .layout import client_address, format_time, frame, notify_error, show_form_error
from .viewer import VIEWER_CSS, SliceViewer
from .password_field import HIDE_ACCESS_CODE, SHOW_ACCESS_CODE, password_input

logger = logging.getLogger(__name__)

# Validity choices of a new link, in days.
DAY_CHOICES = (1, 7, 14, 30)


def register() -> None:
    ui.page('/shared/{token}')(shared_page)


def share_link_address(token: str) -> str:
    return f'{get_settings().public_base_url.rstrip("/")}/shared/{token}'


def share_section(actor: Actor, examination_id: str) -> None:
    """Show the patient's card to create links for their own physician, list them and revoke them."""
    with ui.card().classes('w-full').mark('share'):
        ui.label(_('Share with your own doctor')).classes('text-h6')
        ui.label(_('Create a link that lets your physician see the images and the report, without an account. '
                 'It expires by itself, and you can withdraw it at any time.')).classes('text-body2 text-grey-8')
        with ui.row().classes('w-full items-start gap-3'):
            label = ui.input(_('For whom (optional)'), placeholder=_('Dr. Meier, family doctor')) \
                .props(f'outlined dense maxlength={sharing.LABEL_MAX_LENGTH}').classes('w-full sm:w-64') \
                .mark('share-label')
            days = ui.select({count: ngettext('{count} day', '{count} days', count) for count in DAY_CHOICES}, value=sharing.DEFAULT_DAYS, label=_('Valid for')) \
                .props('outlined dense').classes('w-full sm:w-36').mark('share-days')
            code = password_input(_('Access code (optional)'), show=SHOW_ACCESS_CODE, hide=HIDE_ACCESS_CODE) \
                .props(f'outlined dense maxlength={sharing.CODE_MAX_LENGTH} autocomplete=new-password') \
                .classes('w-full sm:w-56').mark('share-code')
        message = ui.label().classes('text-negative text-body2')
        created = ui.column().classes('w-full gap-1')

        @ui.refreshable
        def link_list() -> None:
            links = sharing.list_links(actor=actor, examination_id=examination_id)
            if not links:
                ui.label(_('No links yet.')).classes('text-body2 text-grey-7').mark('share-none')
            for link in links:
                _link_row(actor, examination_id, link, link_list.refresh)

        def create() -> None:
            message.text = ''
            for field in (label, code):
                field.props['error'] = False
            try:
                view, token = sharing.create_link(actor=actor, examination_id=examination_id, days=days.value,
                                                  access_code=code.value or '', label=label.value or '')
            except DomainError as error:
                show_form_error(message, {'label': label, 'access_code': code, 'days': days}, error)
                return
            except Exception as error:  # noqa: BLE001 (logged by notify_error)
                notify_error(error)
                return
            address = share_link_address(token)
            created.clear()
            with created:
                ui.label(_('Copy this link now: it is shown only once.')).classes('text-body2 text-weight-medium')
                with ui.row().classes('w-full items-center no-wrap gap-2'):
                    ui.input(value=address).props('outlined dense readonly aria-label="Share link"') \
                        .classes('w-full').mark('share-address')
                    ui.button(icon='content_copy', on_click=lambda: ui.clipboard.write(address)) \
                        .props('flat round aria-label="Copy the link"').mark('share-copy')
                if view.has_code:
                    ui.label(_('Tell your doctor the access code separately, for example by phone.')) \
                        .classes('text-body2')
            code.value = ''
            link_list.refresh()

        ui.button(_('Create link'), icon='share', on_click=create).mark('share-create')
        ui.label(_('Links')).classes('text-subtitle1 q-mt-sm')
        link_list()


def _link_row(actor: Actor, examination_id: str, link: sharing.ShareLinkView, refresh) -> None:  # noqa: ANN001
    if link.revoked_at is not None:
        state = f'withdrawn {format_time(link.revoked_at)}'
    elif link.is_active:
        state = f'valid until {format_time(link.expires_at)}'
    else:
        state = f'expired {format_time(link.expires_at)}'
    uses = 'not opened yet' if not link.use_count else \
        f'opened {link.use_count} time{"s" if link.use_count != 1 else ""}, last {format_time(link.last_used_at)}'
    with ui.row().classes('w-full items-center justify-between gap-2').mark(f'share-link-{link.id}'):
        with ui.column().classes('gap-0 min-w-0'):
            ui.label(link.label or 'Link without a name').classes('text-body1 break-words')
            ui.label(f'{state}; {uses}{"; with access code" if link.has_code else ""}') \
                .classes('text-caption text-grey-8 break-words')
        if link.is_active:
            def revoke() -> None:
                try:
                    sharing.revoke_link(actor=actor, examination_id=examination_id, link_id=link.id)
                except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                    notify_error(error)
                    return
                ui.notify(_('The link no longer works.'), type='positive', position='top')
                refresh()

            ui.button(_('Withdraw'), icon='link_off', on_click=revoke).props('flat dense color=negative') \
                .mark(f'share-revoke-{link.id}')


def shared_page(token: str) -> None:
    """Show the physician the code form when the link has one, then the report, the images and the viewer."""
    with frame(_('Shared examination')):
        ui.add_css(VIEWER_CSS)
        content = ui.column().classes('w-full gap-3')

        def show(access_code: str = '') -> bool:
            try:
                grant = sharing.open_link(token, access_code, client_address=client_address())
            except sharing.ShareLinkError as error:
                if error.reason in {sharing.CODE_REQUIRED, sharing.WRONG_CODE, sharing.LOCKED}:
                    _code_form(content, error_message(error) if access_code or error.reason == sharing.LOCKED else '', show)
                else:
                    _refused(content, error_message(error))
                return False
            _shared_content(content, grant)
            return True

        show()


def _refused(content: ui.column, text: str) -> None:
    content.clear()
    with content, ui.column().classes('w-full items-center q-pa-xl'):
        ui.icon('link_off', size='3rem').classes('text-grey-6')
        ui.label(text).classes('text-h6 text-center').mark('share-refused')


def _code_form(content: ui.column, error: str, show) -> None:  # noqa: ANN001
    content.clear()
    with content, ui.card().classes('w-full max-w-md self-center'):
        ui.label(_('Shared examination')).classes('text-h6')
        ui.label(_('The patient protected this link with an access code.')).classes('text-body2')
        code = ui.input(_('Access code'), password=True).props('outlined autofocus').classes('w-full') \
            .mark('share-code-input')
        if error:
            ui.label(error).classes('text-negative text-body2').mark('share-code-error')
        ui.button(_('Open'), on_click=lambda: show(code.value or '')).mark('share-open')
        code.on('keydown.enter', lambda: show(code.value or ''))


def _shared_content(content: ui.column, grant: sharing.Grant) -> None:
    summary = sharing.shared_summary(grant)
    base = f'/api/shared/{grant.value}'
    content.clear()
    with content:
        with ui.card().classes('w-full').mark('shared-summary'):
            ui.label(f'{summary["type"]}: {summary["body_part"]}').classes('text-h6 break-words')
            for label, value in (('Patient', summary['patient']), ('Date of birth', summary['born']),
                                 ('Question', summary['question']), ('Status', summary['status'])):
                with ui.row().classes('w-full no-wrap gap-2'):
                    ui.label(label).classes('text-grey-7 w-28 shrink-0')
                    ui.label(value).classes('whitespace-pre-wrap break-words')
            ui.label(f'This view is read-only. It stays open until {format_time(grant.expires_at)}; open the '
                     'link again after that.').classes('text-caption text-grey-8')
            with ui.row().classes('gap-2'):
                if sharing.has_final_report(grant):
                    ui.button(_('Download the report (PDF)'), icon='picture_as_pdf',
                              on_click=lambda: ui.navigate.to(f'{base}/report.pdf', new_tab=True)) \
                        .mark('shared-report')
                ui.button(_('Download all images (.zip)'), icon='download',
                          on_click=lambda: ui.navigate.to(f'{base}/images.zip', new_tab=True)) \
                    .props('outline').mark('shared-zip')
        try:
            series = viewer.list_viewer_series(actor=grant.actor(client_address()),
                                               examination_id=grant.examination_id)
        except NotFoundError:
            series = []
        if any(item.frame_count for item in series):
            SliceViewer(grant.actor(client_address()), grant.examination_id, series, url_base=base).build()
        else:
            ui.label(_('This examination has no uploaded images to show.')).classes('text-grey-7') \
                .mark('shared-no-images')
