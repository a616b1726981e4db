"""Share links for the patient's own physician: expiry, revocation, access codes, grants and the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import AuditEvent, ShareLink
from secondopinion.services import examinations, reports, sharing, studies, viewer
from secondopinion.services.errors import NotFoundError, PermissionDeniedError, ValidationError

from .flow import REPORT
from .test_audit_log import exam_with_image


def _actions(exam_id: str) -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == exam_id)
                                    .order_by(AuditEvent.id)))


def _move(link_id: int, **values) -> None:
    with db.session_scope() as session:
        link = session.get(ShareLink, link_id)
        for name, value in values.items():
            setattr(link, name, value)


@pytest.fixture
def reported_exam(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = exam_with_image(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return patient, exam_id


def test_link_opens_images_and_report(reported_exam):
    patient, exam_id = reported_exam
    link, token = sharing.create_link(actor=patient, examination_id=exam_id, label='Dr. Meier')
    assert link.is_active and link.label == 'Dr. Meier'
    assert link.expires_at - link.created_at == timedelta(days=7)
    with db.session_scope() as session:
        stored = session.get(ShareLink, link.id)
        assert token not in stored.token_hash  # only the digest is stored

    grant = sharing.open_link(token, client_address='192.0.2.7')
    actor = grant.actor('192.0.2.7')
    _name, chunks = reports.open_report_pdf(actor=actor, examination_id=exam_id)
    assert b''.join(chunks).startswith(b'%PDF')
    _name, chunks = studies.stream_images_zip(actor=actor, examination_id=exam_id)
    assert b''.join(chunks).startswith(b'PK')
    [series] = viewer.list_viewer_series(actor=actor, examination_id=exam_id)
    assert viewer.render_slice(actor=actor, examination_id=exam_id, series_id=series.id, index=0,
                               window_center=None, window_width=None, preset=None).startswith(b'\x89PNG')

    assert sharing.check_grant(grant.value, what='report_downloaded').examination_id == exam_id
    assert 'share.opened' in _actions(exam_id)
    assert 'share.report_downloaded' in _actions(exam_id)
    assert sharing.list_links(actor=patient, examination_id=exam_id)[0].use_count == 1


def test_grant_opens_only_its_examination(reported_exam, make_patient):
    patient, exam_id = reported_exam
    other_exam = exam_with_image(make_patient())
    _link, token = sharing.create_link(actor=patient, examination_id=exam_id)
    actor = sharing.open_link(token).actor()
    with pytest.raises(NotFoundError):
        studies.stream_images_zip(actor=actor, examination_id=other_exam)
    with pytest.raises(NotFoundError):
        examinations.cancel(actor=actor, examination_id=exam_id)


def test_expired_and_revoked_links_refused(reported_exam):
    patient, exam_id = reported_exam
    expired, expired_token = sharing.create_link(actor=patient, examination_id=exam_id, days=1)
    revoked, revoked_token = sharing.create_link(actor=patient, examination_id=exam_id)
    grant = sharing.open_link(revoked_token)
    _move(expired.id, expires_at=expired.expires_at - timedelta(days=2))
    sharing.revoke_link(actor=patient, examination_id=exam_id, link_id=revoked.id)

    with pytest.raises(sharing.ShareLinkError) as refused:
        sharing.open_link(expired_token)
    assert refused.value.reason == sharing.EXPIRED
    with pytest.raises(sharing.ShareLinkError) as refused:
        sharing.open_link(revoked_token)
    assert refused.value.reason == sharing.REVOKED
    # A grant from before the revocation stops working at once.
    with pytest.raises(NotFoundError):
        sharing.check_grant(grant.value)
    with pytest.raises(sharing.ShareLinkError) as refused:
        sharing.open_link('not-a-real-token')
    assert refused.value.reason == sharing.UNKNOWN
    assert _actions(exam_id).count('share.refused') == 2


def test_access_code_required_and_wrong_code_locks(reported_exam):
    patient, exam_id = reported_exam
    link, token = sharing.create_link(actor=patient, examination_id=exam_id, access_code='4711')

    with pytest.raises(sharing.ShareLinkError) as refused:
        sharing.open_link(token)
    assert refused.value.reason == sharing.CODE_REQUIRED
    for _ in range(sharing.MAX_FAILED_CODES):
        with pytest.raises(sharing.ShareLinkError) as refused:
            sharing.open_link(token, '0000')
        assert refused.value.reason == sharing.WRONG_CODE
    # Locked now: even the right code waits until the lock ends.
    with pytest.raises(sharing.ShareLinkError) as refused:
        sharing.open_link(token, '4711')
    assert refused.value.reason == sharing.LOCKED
    _move(link.id, locked_until=None)
    assert sharing.open_link(token, ' 4711 ').link_id == link.id
    refusals = _actions(exam_id).count('share.refused')
    assert refusals == sharing.MAX_FAILED_CODES + 1


def test_tampered_or_old_grant_refused(reported_exam):
    patient, exam_id = reported_exam
    _link, token = sharing.create_link(actor=patient, examination_id=exam_id)
    grant = sharing.open_link(token)
    link_id, expiry, signature = grant.value.split('.')
    for value in (f'{link_id}.{int(expiry) + 3600}.{signature}', f'{int(link_id) + 1}.{expiry}.{signature}',
                  'garbage', f'{link_id}.{expiry}.{"0" * 32}'):
        with pytest.raises(NotFoundError):
            sharing.check_grant(value)
    old = sharing._issue_grant(int(link_id), exam_id, grant.expires_at - timedelta(hours=2))
    with pytest.raises(NotFoundError):
        sharing.check_grant(old.value)


@pytest.mark.parametrize('values, field', [({'days': 0}, 'days'), ({'days': 31}, 'days'),
                                           ({'access_code': '12'}, 'access_code'),
                                           ({'label': 'x' * 121}, 'label')])
def test_bad_link_settings_rejected(reported_exam, values, field):
    patient, exam_id = reported_exam
    with pytest.raises(ValidationError) as rejected:
        sharing.create_link(actor=patient, examination_id=exam_id, **values)
    assert rejected.value.field == field
    assert sharing.list_links(actor=patient, examination_id=exam_id) == []


def test_only_the_owner_manages_links(reported_exam, make_patient, make_doctor, admin):
    patient, exam_id = reported_exam
    link, _token = sharing.create_link(actor=patient, examination_id=exam_id)
    # Another patient gets the answer for a missing examination; other roles may not share at all.
    for stranger, refusal in ((make_patient(), NotFoundError), (admin, PermissionDeniedError),
                              (make_doctor(), PermissionDeniedError)):
        with pytest.raises(refusal):
            sharing.create_link(actor=stranger, examination_id=exam_id)
        with pytest.raises(refusal):
            sharing.revoke_link(actor=stranger, examination_id=exam_id, link_id=link.id)
    assert sharing.list_links(actor=patient, examination_id=exam_id)[0].is_active


def test_draft_cannot_be_shared(make_patient):
    patient = make_patient()
    draft = examinations.create_draft(actor=patient)
    with pytest.raises(ValidationError, match='submitted'):
        sharing.create_link(actor=patient, examination_id=draft)
