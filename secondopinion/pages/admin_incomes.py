"""The Incomes tab of the admin panel: monthly revenue, fees and payouts as a chart and table, the ledger, CSV."""

from __future__ import annotations

import calendar
import re
from datetime import date

from nicegui import ui

from ..services import admin as admin_service
from ..services import ledger
from ..services.actors import Actor
from ..services.payments import format_money
from .layout import format_time, notify_error

MONTH_PATTERN = re.compile(r'^(\d{4})-(\d{2})$')


def incomes_panel(actor: Actor) -> None:
    doctors = {doctor.id: doctor.name for doctor in admin_service.list_doctors(actor=actor)}
    with ui.row().classes('w-full items-end gap-3'):
        doctor = ui.select({0: 'All doctors', **doctors}, value=0, label='Doctor').classes('min-w-48') \
            .mark('ledger-doctor')
        # The ledger sums calendar months in UTC, whatever the browser's time zone.
        start = ui.input('From month (UTC)').props('type=month stack-label').mark('ledger-from')
        end = ui.input('To month (UTC)').props('type=month stack-label').mark('ledger-to')

    def current_filter() -> ledger.LedgerFilter | None:
        try:
            first, last = _month_start(start.value), _month_end(end.value)
        except ValueError:
            ui.notify('Choose the months as YYYY-MM.', type='warning', position='top')
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
    ui.button('Export CSV', icon='download', on_click=export).props('outline').mark('ledger-export')
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
        ui.label('No payments in this period.').classes('text-grey-7').mark('ledger-empty')
        return
    for currency in sorted({month.currency for month in months}):
        rows = [month for month in months if month.currency == currency]
        with ui.row().classes('gap-4 q-mt-md').mark(f'ledger-totals-{currency}'):
            for label, field in (('Revenue (after refunds)', 'revenue_cents'), ('Platform fees', 'platform_fees_cents'),
                                 ('Doctor payouts', 'doctor_payouts_cents')):
                with ui.card().classes('q-pa-sm'):
                    ui.label(label).classes('text-caption')
                    ui.label(format_money(sum(getattr(row, field) for row in rows), currency)).classes('text-h6')
        ui.label(f'Per month (UTC), {currency}').classes('text-subtitle1 q-mt-md')
        ui.echart({
            'tooltip': {'trigger': 'axis'},
            'legend': {'data': ['Revenue', 'Platform fees', 'Doctor payouts']},
            'xAxis': {'type': 'category', 'data': [row.month for row in rows]},
            'yAxis': {'type': 'value', 'name': currency},
            'series': [{'name': name, 'type': 'bar', 'data': [getattr(row, field) / 100 for row in rows]}
                       for name, field in (('Revenue', 'revenue_cents'), ('Platform fees', 'platform_fees_cents'),
                                           ('Doctor payouts', 'doctor_payouts_cents'))],
        }).classes('w-full h-64').mark(f'ledger-chart-{currency}')
        ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': 'left'} for name, label in (
            ('month', 'Month'), ('revenue', 'Revenue (after refunds)'), ('fees', 'Platform fees'),
            ('payouts', 'Doctor payouts'))],
                 rows=[{'month': row.month, 'revenue': format_money(row.revenue_cents, currency),
                        'fees': format_money(row.platform_fees_cents, currency),
                        'payouts': format_money(row.doctor_payouts_cents, currency)} for row in rows],
                 row_key='month').props('flat dense').classes('w-full').mark(f'ledger-months-{currency}')


def _entries_table(entries: list[ledger.LedgerEntry]) -> None:
    ui.label('Ledger').classes('text-subtitle1 q-mt-md')
    rows = [{'id': entry.id, 'when': format_time(entry.created_at), 'exam': entry.examination_id[:8],
             'kind': ledger.KIND_LABELS.get(entry.kind, entry.kind),
             'amount': format_money(entry.amount_cents, entry.currency), 'doctor': entry.doctor_name}
            for entry in entries]
    ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': 'left', 'sortable': True}
                      for name, label in (('when', 'Time'), ('exam', 'Examination'), ('kind', 'Kind'),
                                          ('amount', 'Amount'), ('doctor', 'Doctor'))],
             rows=rows, row_key='id', pagination=25).props('flat dense wrap-cells').classes('w-full') \
        .mark('incomes-table')
