"""Server-side sessions: single-use tickets, idle and lifetime limits, ending sessions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from secondopinion import db
from secondopinion.models import UserSession
from secondopinion.models.base import utcnow
from secondopinion.services import accounts, sessions
from tests.conftest import open_session


def _row(session_id: int) -> UserSession:
    with db.session_scope() as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        session.expunge(row)
        return row


def _start(user_id: int) -> str:
    with db.session_scope() as session:
        return sessions.start(session, user_id, method='password', client_address='127.0.0.1')


def test_ticket_is_single_use(make_patient):
    patient = make_patient()
    ticket = _start(patient.user_id)
    activation = sessions.activate(ticket, client_address='127.0.0.1', user_agent='pytest')
    assert activation is not None and activation.user_id == patient.user_id
    assert sessions.activate(ticket, client_address='127.0.0.1', user_agent='pytest') is None
    actor = sessions.resolve(activation.token, client_address='192.0.2.7')
    assert actor is not None
    assert (actor.user_id, actor.session_id, actor.client_address) == (patient.user_id, activation.session_id,
                                                                         '192.0.2.7')


def test_expired_or_unknown_ticket_is_refused(make_patient):
    patient = make_patient()
    ticket = _start(patient.user_id)
    with db.session_scope() as session:
        session.execute(update(UserSession).values(ticket_expires_at=utcnow() - timedelta(seconds=1)))
    assert sessions.activate(ticket, client_address=None, user_agent=None) is None
    assert sessions.activate('made-up-ticket', client_address=None, user_agent=None) is None
    assert sessions.activate('', client_address=None, user_agent=None) is None


def test_only_digests_are_stored(make_patient):
    patient = make_patient()
    ticket = _start(patient.user_id)
    activation = sessions.activate(ticket, client_address=None, user_agent=None)
    assert activation is not None
    row = _row(activation.session_id)
    assert row.token_hash == sessions.digest(activation.token)
    assert activation.token not in (row.token_hash or '') and row.ticket_hash is None


def test_each_sign_in_is_a_new_session(make_patient):
    patient = make_patient()
    first, second = open_session(patient.user_id), open_session(patient.user_id)
    assert first != second
    first_actor, second_actor = sessions.resolve(first), sessions.resolve(second)
    assert first_actor is not None and second_actor is not None
    assert first_actor.session_id != second_actor.session_id


def test_sign_out_ends_only_that_session(make_patient):
    patient = make_patient()
    kept, ended = open_session(patient.user_id), open_session(patient.user_id)
    sessions.end(ended)
    assert sessions.resolve(ended) is None
    assert sessions.resolve(kept) is not None


def test_idle_session_ends(make_patient, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_SESSION_IDLE_MINUTES', '30')
    patient = make_patient()
    token = open_session(patient.user_id)
    session_id = sessions.resolve(token).session_id  # type: ignore[union-attr]
    with db.session_scope() as session:
        session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    assert sessions.resolve(token) is None
    assert _row(session_id).revoke_reason == sessions.IDLE
    # Activity a little under the limit keeps it: the next request moves last_seen_at on.
    token = open_session(patient.user_id)
    with db.session_scope() as session:
        session.execute(update(UserSession).where(UserSession.revoked_at.is_(None))
                        .values(last_seen_at=utcnow() - timedelta(minutes=29)))
    assert sessions.resolve(token) is not None
    assert sessions.resolve(token) is not None


def test_session_ends_after_its_lifetime_even_when_active(make_patient):
    patient = make_patient()
    token = open_session(patient.user_id)
    with db.session_scope() as session:
        session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1), last_seen_at=utcnow()))
    assert sessions.resolve(token) is None


def test_idle_job_ends_sessions_and_announces_them(make_patient):
    patient = make_patient()
    idle, active = open_session(patient.user_id), open_session(patient.user_id)
    idle_id = sessions.resolve(idle).session_id  # type: ignore[union-attr]
    with db.session_scope() as session:
        session.execute(update(UserSession).where(UserSession.id == idle_id)
                        .values(last_seen_at=utcnow() - timedelta(hours=2)))
    announced: list[frozenset[int]] = []
    remove = sessions.add_revocation_listener(announced.append)
    try:
        assert sessions.end_idle() == 1
    finally:
        remove()
    assert announced == [frozenset({idle_id})]
    assert sessions.resolve(active) is not None


def test_deactivated_account_loses_its_sessions(make_doctor, admin):
    doctor = make_doctor()
    token = open_session(doctor.user_id)
    assert sessions.resolve(token) is not None
    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    assert sessions.resolve(token) is None
    with db.session_scope() as session:
        reasons = session.scalars(select(UserSession.revoke_reason).where(UserSession.user_id == doctor.user_id)).all()
    assert reasons == [sessions.DEACTIVATED]


def test_end_for_user_keeps_the_current_session(make_patient):
    patient = make_patient()
    current, other, third = (open_session(patient.user_id) for _ in range(3))
    current_id = sessions.resolve(current).session_id  # type: ignore[union-attr]
    with db.session_scope() as session:
        ended = sessions.end_for_user(session, patient.user_id, reason=sessions.PASSWORD_CHANGED,
                                      keep_session_id=current_id)
    assert len(ended) == 2
    assert sessions.resolve(current) is not None
    assert sessions.resolve(other) is None
    assert sessions.resolve(third) is None
