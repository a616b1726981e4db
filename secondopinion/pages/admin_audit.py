"""The Audit log tab of the admin panel: filters, pages of 50 events newest first, and a CSV export."""

from __future__ import annotations

from datetime import date, timedelta

from nicegui import ui

from ..i18n import N_, _, error_message, ngettext
from ..services import audit_log
from ..services.actors import Actor
from ..services.errors import DomainError
from .formatting import format_time, start_of_day
from .layout import browser_zone, notify_error

# The time column's label names the browser's time zone, see `audit_panel`.
COLUMNS = [('at', N_('Time')), ('user', N_('User')), ('action', N_('Action')), ('object', N_('Object')),
           ('client', N_('Client address')), ('detail', N_('Detail'))]

# Ids, hashes and JSON details contain long runs without spaces, which would widen the table past the page.
# Cells break them anywhere. A detail shows three lines until a click or Enter opens it in full, and its
# tooltip contains the whole text.
AUDIT_CSS = '''
.audit-table td { overflow-wrap: anywhere; }
.audit-detail { max-width: 20rem; display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3;
                overflow: hidden; cursor: pointer; }
.audit-detail.audit-detail-open { display: block; overflow: visible; }
'''
DETAIL_SLOT = r'''
<q-td :props="props">
    <div class="audit-detail" :title="props.value" tabindex="0" role="button" aria-label="{label}"
         @click="$event.currentTarget.classList.toggle('audit-detail-open')"
         @keydown.enter="$event.currentTarget.classList.toggle('audit-detail-open')">{{ props.value }}</div>
</q-td>
'''


def _day(value: str | None, label: str) -> date | None:
    """Parse a date input's YYYY-MM-DD value, or raise ValueError with a translated message that names the field."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(_('The {label} date "{value}" is invalid: choose a date as YYYY-MM-DD.',
                           label=label, value=value)) from None


def audit_panel(actor: Actor) -> None:
    ui.add_css(AUDIT_CSS)
    actions, object_types = audit_log.choices(actor=actor)
    zone = browser_zone()
    state = {'page': 1}
    with ui.row().classes('w-full items-end gap-3'):
        user = ui.input(_('User (email or id)')).classes('min-w-56').mark('audit-user')
        action = ui.select(['', *actions], value='', label=_('Action'), with_input=True).classes('min-w-48') \
            .mark('audit-action')
        object_type = ui.select(['', *object_types], value='', label=_('Object type')).classes('min-w-40') \
            .mark('audit-object-type')
        object_id = ui.input(_('Object id')).classes('min-w-56').mark('audit-object-id')
        client = ui.input(_('Client address')).classes('min-w-40').mark('audit-client')
        # The days are calendar days in the browser's time zone, like the times in the table.
        start = ui.input(_('From ({zone})', zone=zone.key)).props('type=date stack-label').mark('audit-from')
        end = ui.input(_('To ({zone}, inclusive)', zone=zone.key)).props('type=date stack-label').mark('audit-to')

    def current_filter() -> audit_log.AuditFilter | None:
        try:
            first = _day(start.value, _('"from"'))
            last = _day(end.value, _('"to"'))
        except ValueError as error:
            ui.notify(error_message(error), type='warning', position='top')
            return None
        return audit_log.AuditFilter(
            user=user.value or '', action=action.value or '', object_type=object_type.value or '',
            object_id=object_id.value or '', client_address=client.value or '',
            start=start_of_day(first, zone) if first else None,
            end=start_of_day(last + timedelta(days=1), zone) if last else None)

    @ui.refreshable
    def results() -> None:
        filters = current_filter()
        if filters is None:
            return
        try:
            page = audit_log.search(actor=actor, filters=filters, page=state['page'])
        except DomainError as error:
            ui.label(error_message(error)).classes('text-negative').mark('audit-error')
            return
        rows = [{'id': entry.id, 'at': format_time(entry.at, zone, with_zone=False),
                 'user': entry.user_email or (_('user {id}', id=entry.user_id) if entry.user_id else _('system')),
                 'action': entry.action, 'object': f'{entry.object_type} {entry.object_id}',
                 'client': entry.client_address, 'detail': entry.detail if entry.detail != '{}' else ''}
                for entry in page.entries]
        columns = [{'name': name, 'label': _(label), 'field': name, 'align': 'left'} for name, label in COLUMNS]
        columns[0]['label'] = f"{columns[0]['label']} ({zone.key})"
        table = ui.table(columns=columns,
                         rows=rows, row_key='id', pagination=0).props('flat dense wrap-cells hide-bottom') \
            .classes('w-full audit-table').mark('audit-table')
        table.add_slot('body-cell-detail', DETAIL_SLOT.replace('{label}', _('Show the whole detail')))
        with ui.row().classes('items-center gap-2'):
            newer = ui.button(icon='chevron_left', on_click=lambda: go_to(page.page - 1)) \
                .props('flat dense').mark('audit-newer')
            newer.props['aria-label'] = _('Newer events')
            newer.set_enabled(page.page > 1)
            ui.label(ngettext('Page {page} of {pages} ({count} event)', 'Page {page} of {pages} ({count} events)',
                              page.total, page=page.page, pages=page.pages)).mark('audit-page')
            older = ui.button(icon='chevron_right', on_click=lambda: go_to(page.page + 1)) \
                .props('flat dense').mark('audit-older')
            older.props['aria-label'] = _('Older events')
            older.set_enabled(page.page < page.pages)

    def go_to(number: int) -> None:
        state['page'] = max(1, number)
        results.refresh()

    def search() -> None:
        state['page'] = 1
        results.refresh()

    def export() -> None:
        filters = current_filter()
        if filters is None:
            return
        try:
            content = audit_log.export_csv(actor=actor, filters=filters)
        except Exception as error:  # noqa: BLE001 (shown to the admin, logged by notify_error)
            notify_error(error)
            return
        ui.download.content(content.encode('utf-8'), f'audit-log-{date.today().isoformat()}.csv', 'text/csv')

    for element in (action, object_type, start, end):
        element.on_value_change(search)
    for element in (user, object_id, client):
        element.on('keydown.enter', search)
    with ui.row().classes('gap-2'):
        ui.button(_('Search'), icon='search', on_click=search).mark('audit-search')
        ui.button(_('Export CSV'), icon='download', on_click=export).props('outline').mark('audit-export')
    results()
