"""The Incomes tab of the admin panel: monthly revenue, fees and payouts as a chart and table, the ledger, CSV."""

from __future__ import annotations

import calendar
import re
from datetime import date

from nicegui import ui

from ..i18n import N_, _
from ..services import admin as admin_service
from ..services import ledger
from ..services.actors import Actor
from ..services.payments import format_money
from .layout import format_time, notify_error

MONTH_PATTERN = re.compile(r'^(\d{4})-(\d{2})$')
# Field of ledger.MonthTotals -> its label in the totals cards, the chart and the table.
TOTAL_LABELS = {'revenue_cents': N_('Revenue (after refunds)'), 'platform_fees_cents': N_('Platform fees'),
                'doctor_payouts_cents': N_('Doctor payouts')}


def incomes_panel(actor: Actor) -> None:
    doctors = {doctor.id: doctor.name for doctor in admin_service.list_doctors(actor=actor)}
    with ui.row().classes('w-full items-end gap-3'):
        doctor = ui.select({0: _('All doctors'), **doctors}, value=0, label=_('Doctor')).classes('min-w-48') \
            .mark('ledger-doctor')
        # The ledger sums calendar months in UTC, whatever the browser's time zone.
        start = ui.input(_('From month (UTC)')).props('type=month stack-label').mark('ledger-from')
        end = ui.input(_('To month (UTC)')).props('type=month stack-label').mark('ledger-to')

    def current_filter() -> ledger.LedgerFilter | None:
        try:
            first, last = _month_start(start.value), _month_end(end.value)
        except ValueError:
            ui.notify(_('Choose the months as YYYY-MM.'), type='warning', position='top')
            return None
        return ledger.LedgerFilter(doctor_id=doctor.value or None, start=first, end=last)

    @ui.refreshable
    def report() -> None:
        filters = current_filter()
        if filters is None:
            return
        _monthly_report(ledger.monthly_totals(actor=actor, filters=filters))
        _entries_table(ledger.ledger_entries(actor=actor, filters=filters))

    def export() -> None:
        filters = current_filter()
        if filters is None:
            return
        try:
            content = ledger.ledger_csv(actor=actor, filters=filters)
        except Exception as error:  # noqa: BLE001 (shown to the admin, logged by notify_error)
            notify_error(error)
            return
        ui.download.content(content.encode('utf-8'), f'ledger-{date.today().isoformat()}.csv', 'text/csv')

    for element in (doctor, start, end):
        element.on_value_change(report.refresh)
    ui.button(_('Export CSV'), icon='download', on_click=export).props('outline').mark('ledger-export')
    report()


def _month_start(value: str | None) -> date | None:
    if not value:
        return None
    match = MONTH_PATTERN.match(value)
    if not match:
        raise ValueError(value)
    return date(int(match[1]), int(match[2]), 1)


def _month_end(value: str | None) -> date | None:
    first = _month_start(value)
    if first is None:
        return None
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _monthly_report(months: list[ledger.MonthTotals]) -> None:
    if not months:
        ui.label(_('No payments in this period.')).classes('text-grey-7').mark('ledger-empty')
        return
    for currency in sorted({month.currency for month in months}):
        rows = [month for month in months if month.currency == currency]
        with ui.row().classes('gap-4 q-mt-md').mark(f'ledger-totals-{currency}'):
            for field, label in TOTAL_LABELS.items():
                with ui.card().classes('q-pa-sm'):
                    ui.label(_(label)).classes('text-caption')
                    ui.label(format_money(sum(getattr(row, field) for row in rows), currency)).classes('text-h6')
        ui.label(_('Per month (UTC), {currency}', currency=currency)).classes('text-subtitle1 q-mt-md')
        ui.echart({
            'tooltip': {'trigger': 'axis'},
            'legend': {'data': [_('Revenue'), _('Platform fees'), _('Doctor payouts')]},
            'xAxis': {'type': 'category', 'data': [row.month for row in rows]},
            'yAxis': {'type': 'value', 'name': currency},
            'series': [{'name': name, 'type': 'bar', 'data': [getattr(row, field) / 100 for row in rows]}
                       for name, field in ((_('Revenue'), 'revenue_cents'), (_('Platform fees'), 'platform_fees_cents'),
                                           (_('Doctor payouts'), 'doctor_payouts_cents'))],
        }).classes('w-full h-64').mark(f'ledger-chart-{currency}')
        ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': 'left'} for name, label in (
            ('month', _('Month')), ('revenue', _('Revenue (after refunds)')), ('fees', _('Platform fees')),
            ('payouts', _('Doctor payouts')))],
                 rows=[{'month': row.month, 'revenue': format_money(row.revenue_cents, currency),
                        'fees': format_money(row.platform_fees_cents, currency),
                        'payouts': format_money(row.doctor_payouts_cents, currency)} for row in rows],
                 row_key='month').props('flat dense').classes('w-full').mark(f'ledger-months-{currency}')


def _entries_table(entries: list[ledger.LedgerEntry]) -> None:
    ui.label(_('Ledger')).classes('text-subtitle1 q-mt-md')
    rows = [{'id': entry.id, 'when': format_time(entry.created_at), 'exam': entry.examination_id[:8],
             'kind': _(ledger.KIND_LABELS[entry.kind]) if entry.kind in ledger.KIND_LABELS else entry.kind,
             'amount': format_money(entry.amount_cents, entry.currency), 'doctor': entry.doctor_name}
            for entry in entries]
    ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': 'left', 'sortable': True}
                      for name, label in (('when', _('Time')), ('exam', _('Examination')), ('kind', _('Kind')),
                                          ('amount', _('Amount')), ('doctor', _('Doctor')))],
             rows=rows, row_key='id', pagination=25).props('flat dense wrap-cells').classes('w-full') \
        .mark('incomes-table')
