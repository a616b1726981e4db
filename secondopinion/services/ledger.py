"""The incomes ledger: read models for admins (entries, monthly totals, CSV) and for doctors (earnings per month).

payments.py writes the ledger, one row per money movement, each tied to its examination and
payment. The kinds are a payment (+price), the platform's fee from it (+fee), a refund (-price),
the fee given back with it (-fee), and the reporting doctor's share (+share) once the report is
finalized.
Sums are therefore always computed from rows, never kept as running totals.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import aliased

from ..db import session_scope
from ..i18n import N_
from ..models import Doctor, Examination, Income, IncomeKind, Role, User
from .actors import Actor, require_role

REVENUE_KINDS = (IncomeKind.PAYMENT, IncomeKind.REFUND)
FEE_KINDS = (IncomeKind.PLATFORM_FEE, IncomeKind.PLATFORM_FEE_REVERSAL)
KIND_LABELS = {
    IncomeKind.PAYMENT: N_('Payment'),
    IncomeKind.REFUND: N_('Refund'),
    IncomeKind.PLATFORM_FEE: N_('Platform fee'),
    IncomeKind.PLATFORM_FEE_REVERSAL: N_('Platform fee refunded'),
    IncomeKind.DOCTOR_EARNING: N_('Doctor share'),
}
MAX_ENTRIES = 5000


@dataclass(frozen=True)
class LedgerFilter:
    """Selection of entries: one doctor's examinations, from `start` to `end` (UTC days, both included)."""

    doctor_id: int | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    created_at: datetime
    examination_id: str
    payment_id: int | None
    kind: str
    amount_cents: int
    currency: str
    doctor_name: str  # the examination's doctor; for a doctor share, the doctor it is owed to


@dataclass(frozen=True)
class MonthTotals:
    month: str  # YYYY-MM
    currency: str
    revenue_cents: int  # payments minus refunds
    platform_fees_cents: int  # fees minus fees given back
    doctor_payouts_cents: int


def ledger_entries(*, actor: Actor, filters: LedgerFilter = LedgerFilter(),
                   limit: int = MAX_ENTRIES) -> list[LedgerEntry]:
    """Return the ledger rows that match the filter, newest first."""
    require_role(actor, Role.ADMIN)
    exam_doctor, earning_doctor = aliased(Doctor), aliased(Doctor)
    exam_user, earning_user = aliased(User), aliased(User)
    query = (select(Income, exam_user.full_name, earning_user.full_name)
             .join(Examination, Examination.id == Income.examination_id)
             .outerjoin(exam_doctor, exam_doctor.id == Examination.doctor_id)
             .outerjoin(exam_user, exam_user.id == exam_doctor.user_id)
             .outerjoin(earning_doctor, earning_doctor.id == Income.doctor_id)
             .outerjoin(earning_user, earning_user.id == earning_doctor.user_id)
             .order_by(Income.created_at.desc(), Income.id.desc()).limit(limit))
    if filters.doctor_id is not None:
        query = query.where(Examination.doctor_id == filters.doctor_id)
    if filters.start is not None:
        query = query.where(Income.created_at >= datetime.combine(filters.start, time.min, tzinfo=UTC))
    if filters.end is not None:
        query = query.where(Income.created_at <= datetime.combine(filters.end, time.max, tzinfo=UTC))
    with session_scope() as session:
        return [LedgerEntry(id=income.id, created_at=income.created_at, examination_id=income.examination_id,
                            payment_id=income.payment_id, kind=income.kind, amount_cents=income.amount_cents,
                            currency=income.currency, doctor_name=earning_name or exam_name or '')
                for income, exam_name, earning_name in session.execute(query)]


def monthly_totals(*, actor: Actor, filters: LedgerFilter = LedgerFilter()) -> list[MonthTotals]:
    """Return revenue, platform fees and doctor payouts per month and currency, oldest month first."""
    months: dict[tuple[str, str], dict[str, int]] = {}
    for entry in ledger_entries(actor=actor, filters=filters, limit=10 * MAX_ENTRIES):
        totals = months.setdefault((entry.created_at.strftime('%Y-%m'), entry.currency),
                                   {'revenue': 0, 'fees': 0, 'payouts': 0})
        if entry.kind in REVENUE_KINDS:
            totals['revenue'] += entry.amount_cents
        elif entry.kind in FEE_KINDS:
            totals['fees'] += entry.amount_cents
        elif entry.kind == IncomeKind.DOCTOR_EARNING:
            totals['payouts'] += entry.amount_cents
    return [MonthTotals(month=month, currency=currency, revenue_cents=values['revenue'],
                        platform_fees_cents=values['fees'], doctor_payouts_cents=values['payouts'])
            for (month, currency), values in sorted(months.items())]


def ledger_csv(*, actor: Actor, filters: LedgerFilter = LedgerFilter()) -> str:
    """Return the matching ledger rows as CSV, amounts in the currency's main unit with two decimals."""
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(['id', 'created_at_utc', 'examination_id', 'payment_id', 'kind', 'amount', 'currency', 'doctor'])
    for entry in ledger_entries(actor=actor, filters=filters, limit=10 * MAX_ENTRIES):
        writer.writerow([entry.id, entry.created_at.strftime('%Y-%m-%d %H:%M:%S'), entry.examination_id,
                         entry.payment_id or '', entry.kind, _decimal(entry.amount_cents), entry.currency,
                         _csv_text(entry.doctor_name)])
    return output.getvalue()


def doctor_earnings(*, actor: Actor) -> list[tuple[str, int, str]]:
    """Return the acting doctor's earnings per month as (YYYY-MM, cents, currency), newest first."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        incomes = session.scalars(select(Income).where(Income.doctor_id == actor.doctor_id,
                                                       Income.kind == IncomeKind.DOCTOR_EARNING)).all()
        months: dict[tuple[str, str], int] = {}
        for income in incomes:
            key = (income.created_at.strftime('%Y-%m'), income.currency)
            months[key] = months.get(key, 0) + income.amount_cents
        return sorted(((month, cents, currency) for (month, currency), cents in months.items()), reverse=True)


def _decimal(cents: int) -> str:
    sign = '-' if cents < 0 else ''
    return f'{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}'


def _csv_text(value: str) -> str:
    """Keep a spreadsheet from reading a name as a formula."""
    return "'" + value if value[:1] in ('=', '+', '-', '@') else value
