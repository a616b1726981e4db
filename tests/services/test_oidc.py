"""OpenID Connect rules that need no browser: which providers show, how claims are read, pending sign-ups."""

from __future__ import annotations

import time
from datetime import date

import pytest
from sqlalchemy import select

from secondopinion.config import Settings, reset_settings
from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, ExternalIdentity, User
from secondopinion.services import oidc
from secondopinion.services.errors import ConflictError, ValidationError


def names(settings: Settings) -> list[str]:
    return [provider.name for provider in oidc.configured_providers(settings)]


def test_provider_needs_id_and_secret():
    assert names(Settings(_env_file=None)) == []
    assert names(Settings(_env_file=None, google_client_id='id')) == []
    assert names(Settings(_env_file=None, google_client_secret='secret')) == []
    assert names(Settings(_env_file=None, google_client_id='id', google_client_secret='')) == []
    assert names(Settings(_env_file=None, google_client_id='id', google_client_secret='secret')) == ['google']
    both = Settings(_env_file=None, google_client_id='g', google_client_secret='s',
                    microsoft_client_id='m', microsoft_client_secret='s')
    assert names(both) == ['microsoft', 'google']


def test_secrets_hidden_in_settings_repr():
    settings = Settings(_env_file=None, google_client_id='id', google_client_secret='very-secret-value')
    assert 'very-secret-value' not in repr(settings)


def test_metadata_urls_default_and_override():
    settings = Settings(_env_file=None)
    assert oidc.metadata_url('google', settings) == 'https://accounts.google.com/.well-known/openid-configuration'
    assert oidc.metadata_url('microsoft', settings) == \
        'https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration'
    settings = Settings(_env_file=None, microsoft_tenant='organizations',
                        google_metadata_url='http://127.0.0.1:9/.well-known/openid-configuration')
    assert oidc.metadata_url('microsoft', settings) == \
        'https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration'
    assert oidc.metadata_url('google', settings) == 'http://127.0.0.1:9/.well-known/openid-configuration'


def test_tenant_must_be_a_name():
    with pytest.raises(ValueError, match='microsoft_tenant'):
        Settings(_env_file=None, microsoft_tenant='common/../evil')


def test_microsoft_email_verified_only_by_xms_edov():
    claims = {'sub': 's1', 'email': 'Ann@Example.org', 'name': 'Ann'}
    assert oidc.profile_from_claims('microsoft', claims).email_verified is False
    assert oidc.profile_from_claims('microsoft', {**claims, 'email_verified': True}).email_verified is False
    assert oidc.profile_from_claims('microsoft', {**claims, 'xms_edov': 'true'}).email_verified is False
    assert oidc.profile_from_claims('microsoft', {**claims, 'xms_edov': False}).email_verified is False
    profile = oidc.profile_from_claims('microsoft', {**claims, 'xms_edov': True})
    assert profile.email_verified is True
    assert profile.email == 'ann@example.org'


def test_google_email_verified_claim():
    claims = {'sub': 's1', 'email': 'ann@example.org', 'given_name': 'Ann', 'family_name': 'Lee'}
    assert oidc.profile_from_claims('google', claims).email_verified is False
    assert oidc.profile_from_claims('google', {**claims, 'xms_edov': True}).email_verified is False
    profile = oidc.profile_from_claims('google', {**claims, 'email_verified': True})
    assert profile.email_verified is True
    assert profile.full_name == 'Ann Lee'


def test_invalid_email_treated_as_missing():
    profile = oidc.profile_from_claims('google', {'sub': 's1', 'email': 'not an address', 'email_verified': True})
    assert profile.email is None
    with pytest.raises(oidc.ExternalSignInRejected) as rejected:
        oidc.sign_in(profile, client_address='127.0.0.1')
    assert rejected.value.code == oidc.NO_EMAIL
    assert 'Google did not share an email address with us.' in str(rejected.value)


def pending(**changes) -> oidc.PendingSignUp:
    values = dict(provider='google', subject='sub-1', email='new@example.org', full_name='Nina New',
                  issued_at=time.time())
    values.update(changes)
    return oidc.PendingSignUp(**values)


def test_pending_sign_up_round_trip_and_expiry():
    fresh = pending()
    assert oidc.PendingSignUp.from_dict(fresh.to_dict()) == fresh
    expired = pending(issued_at=time.time() - oidc.PENDING_SIGN_UP_SECONDS - 1)
    assert oidc.PendingSignUp.from_dict(expired.to_dict()) is None
    assert oidc.PendingSignUp.from_dict(pending(provider='facebook').to_dict()) is None
    assert oidc.PendingSignUp.from_dict({'provider': 'google'}) is None
    assert oidc.PendingSignUp.from_dict('garbage') is None
    assert oidc.PendingSignUp.from_dict(None) is None


def test_create_patient_checks_fields():
    with pytest.raises(ValidationError, match='Date of birth is missing') as missing:
        oidc.create_patient(pending(), date_of_birth=None, client_address=None)
    assert missing.value.field == 'date_of_birth'
    with pytest.raises(ValidationError, match='Phone number "12" is invalid') as phone:
        oidc.create_patient(pending(), date_of_birth=date(1980, 1, 1), phone='12', client_address=None)
    assert phone.value.field == 'phone'
    with pytest.raises(ValidationError, match='Full name is missing') as name:
        oidc.create_patient(pending(full_name=''), date_of_birth=date(1980, 1, 1), client_address=None)
    assert name.value.field == 'name'
    with session_scope() as session:
        assert session.scalars(select(User)).all() == []


def test_create_patient_once_per_identity(make_patient):
    result = oidc.create_patient(pending(), date_of_birth=date(1980, 1, 1), client_address='127.0.0.1')
    assert result.ticket

    with pytest.raises(ConflictError, match='already linked'):
        oidc.create_patient(pending(email='second@example.org'), date_of_birth=date(1980, 1, 1),
                            client_address='127.0.0.1')
    make_patient('Pat', email='taken@example.org')
    with pytest.raises(ConflictError, match='taken@example.org was created meanwhile'):
        oidc.create_patient(pending(subject='sub-2', email='taken@example.org'), date_of_birth=date(1980, 1, 1),
                            client_address='127.0.0.1')
    with session_scope() as session:
        assert len(session.scalars(select(ExternalIdentity)).all()) == 1
        actions = [event.action for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count('patient.registered') == 2  # one by make_patient, one through Google
    assert actions.count('sign_in.succeeded') == 1


def test_deleted_account_rejected(make_patient):
    ann = make_patient('Ann', email='ann@example.org')
    profile = oidc.profile_from_claims('google', {'sub': 'g-ann', 'email': 'ann@example.org',
                                                 'email_verified': True})
    assert oidc.sign_in(profile, client_address=None).ticket
    with session_scope() as session:
        session.get(User, ann.user_id).deleted_at = session.get(User, ann.user_id).created_at

    with pytest.raises(oidc.ExternalSignInRejected) as rejected:
        oidc.sign_in(profile, client_address=None)
    assert rejected.value.code == oidc.DEACTIVATED


def test_issuer_and_audience_checks(monkeypatch):
    monkeypatch.setenv('SECONDOPINION_GOOGLE_CLIENT_ID', 'google-client')
    monkeypatch.setenv('SECONDOPINION_MICROSOFT_CLIENT_ID', 'ms-client')
    reset_settings()
    google = oidc.claims_options('google', {'issuer': 'https://accounts.google.com'})
    assert google['aud'] == {'essential': True, 'value': 'google-client'}
    assert google['iss'] == {'essential': True, 'values': ['https://accounts.google.com', 'accounts.google.com']}
    local = oidc.claims_options('google', {'issuer': 'http://127.0.0.1:5000'})
    assert local['iss'] == {'essential': True, 'value': 'http://127.0.0.1:5000'}

    microsoft = oidc.claims_options('microsoft', {'issuer': 'https://login.microsoftonline.com/{tenantid}/v2.0'})
    assert microsoft['aud'] == {'essential': True, 'value': 'ms-client'}
    matches = microsoft['iss']['validate']
    tenant = '9188040d-6c67-4c5b-b112-36a304b66dad'
    assert matches({'tid': tenant}, f'https://login.microsoftonline.com/{tenant}/v2.0') is True
    assert matches({'tid': tenant}, 'https://login.microsoftonline.com/another/v2.0') is False
    assert matches({}, 'https://login.microsoftonline.com/{tenantid}/v2.0') is False
