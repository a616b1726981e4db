"""The incomes ledger: one row per money movement, monthly totals, filters, CSV and who may read it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from secondopinion import db
from secondopinion.models import Income
from secondopinion.services import examinations, ledger, reports
from secondopinion.services.errors import DomainError

from .flow import paid

REPORT = {'findings': 'Solid nodule, 6 mm.', 'impression': 'Probably benign.', 'recommendations': ''}


def _reported(patient, doctor) -> str:  # noqa: ANN001
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return exam_id


def _kinds(admin, exam_id: str) -> dict[str, int]:  # noqa: ANN001
    return {entry.kind: entry.amount_cents for entry in ledger.ledger_entries(actor=admin)
            if entry.examination_id == exam_id}


def _move_to(exam_id: str, when: datetime) -> None:
    with db.session_scope() as session:
        session.execute(update(Income).where(Income.examination_id == exam_id).values(created_at=when))


def test_payment_fee_and_doctor_share_are_rows(admin, make_patient, make_doctor):
    exam_id = _reported(make_patient(), make_doctor())
    assert _kinds(admin, exam_id) == {'payment': 15000, 'platform_fee': 4500, 'doctor_earning': 10500}


def test_refund_reverses_payment_and_fee(admin, make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    examinations.cancel(actor=patient, examination_id=exam_id)
    assert _kinds(admin, exam_id) == {'payment': 15000, 'platform_fee': 4500, 'refund': -15000,
                                      'platform_fee_reversal': -4500}
    [month] = ledger.monthly_totals(actor=admin)
    assert (month.revenue_cents, month.platform_fees_cents, month.doctor_payouts_cents) == (0, 0, 0)


def test_monthly_totals_by_month(admin, make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    march = _reported(patient, doctor)
    _move_to(march, datetime(2026, 3, 10, 12, tzinfo=UTC))
    april = paid(patient)
    _move_to(april, datetime(2026, 4, 2, 8, tzinfo=UTC))
    totals = [(row.month, row.currency, row.revenue_cents, row.platform_fees_cents, row.doctor_payouts_cents)
              for row in ledger.monthly_totals(actor=admin)]
    assert totals == [('2026-03', 'EUR', 15000, 4500, 10500), ('2026-04', 'EUR', 15000, 4500, 0)]


def test_period_filter_includes_both_ends(admin, make_patient):
    patient = make_patient()
    for day in (date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 31), date(2026, 4, 1)):
        _move_to(paid(patient), datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC))
    march = ledger.LedgerFilter(start=date(2026, 3, 1), end=date(2026, 3, 31))
    entries = ledger.ledger_entries(actor=admin, filters=march)
    assert sorted({entry.created_at.date() for entry in entries}) == [date(2026, 3, 1), date(2026, 3, 31)]


def test_doctor_filter(admin, make_patient, make_doctor):
    patient = make_patient()
    first, second = make_doctor('Dr. First', email='first@example.org'), make_doctor('Dr. Second',
                                                                                       email='second@example.org')
    mine = _reported(patient, first)
    _reported(patient, second)
    paid(patient)  # not accepted by anyone yet
    entries = ledger.ledger_entries(actor=admin, filters=ledger.LedgerFilter(doctor_id=first.doctor_id))
    assert {entry.examination_id for entry in entries} == {mine}
    assert {entry.doctor_name for entry in entries} == {'Dr. First'}
    [month] = ledger.monthly_totals(actor=admin, filters=ledger.LedgerFilter(doctor_id=first.doctor_id))
    assert month.doctor_payouts_cents == 10500


def test_csv_export(admin, make_patient, make_doctor):
    exam_id = _reported(make_patient(), make_doctor('=Dr. Formula', email='formula@example.org'))
    rows = list(csv.DictReader(io.StringIO(ledger.ledger_csv(actor=admin))))
    assert {(row['kind'], row['amount']) for row in rows} == {
        ('payment', '150.00'), ('platform_fee', '45.00'), ('doctor_earning', '105.00')}
    assert {row['examination_id'] for row in rows} == {exam_id}
    assert {row['doctor'] for row in rows} == {"'=Dr. Formula"}  # not read as a formula by a spreadsheet
    assert all(row['payment_id'] for row in rows)


def test_doctor_sees_own_earnings_per_month(make_patient, make_doctor):
    patient, doctor, other = make_patient(), make_doctor(), make_doctor('Dr. Other', email='other@example.org')
    _move_to(_reported(patient, doctor), datetime(2026, 5, 5, tzinfo=UTC))
    _reported(patient, doctor)
    _reported(patient, other)
    earnings = ledger.doctor_earnings(actor=doctor)
    assert earnings[-1] == ('2026-05', 10500, 'EUR')
    assert len(earnings) == 2
    assert sum(cents for _month, cents, _currency in earnings) == 21000


@pytest.mark.parametrize('reader', ['patient', 'doctor'])
def test_only_admins_read_the_ledger(make_patient, make_doctor, reader):
    actor = make_patient() if reader == 'patient' else make_doctor()
    for read in (ledger.ledger_entries, ledger.monthly_totals, ledger.ledger_csv):
        with pytest.raises(DomainError):
            read(actor=actor)
