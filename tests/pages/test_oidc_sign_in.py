"""Sign-in with Google and Microsoft against a local OpenID Connect provider, walked as a browser would."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from nicegui import app
from nicegui.testing import User
from sqlalchemy import select
from starlette.middleware.sessions import SessionMiddleware

from secondopinion.config import reset_settings
from secondopinion.db import session_scope
from secondopinion.models.base import utcnow
from secondopinion.models import AuditEvent, ExternalIdentity, Patient, User as UserRow, UserSession
from secondopinion.services import oidc, sessions
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider, Identity, start_provider

from .helpers import sign_in

UNVERIFIED = ('Google has not verified your email address. Sign in with your email and password, '
              'or verify the address in your Google account and try again.')


# Tests list these fixtures before `user`, so that the settings change before the app and its
# scheduler start: a scheduler thread that reads the settings meanwhile could cache the old ones again.
def _configure(monkeypatch, name: str, provider: FakeProvider) -> None:
    prefix = f'SECONDOPINION_{name.upper()}'
    monkeypatch.setenv(f'{prefix}_CLIENT_ID', CLIENT_ID)
    monkeypatch.setenv(f'{prefix}_CLIENT_SECRET', CLIENT_SECRET)
    monkeypatch.setenv(f'{prefix}_METADATA_URL', provider.metadata_url)
    reset_settings()


@pytest.fixture
def google(monkeypatch) -> Iterator[FakeProvider]:
    provider, server = start_provider()
    _configure(monkeypatch, 'google', provider)
    yield provider
    server.shutdown()
    server.server_close()


@pytest.fixture
def microsoft(monkeypatch) -> Iterator[FakeProvider]:
    provider, server = start_provider(microsoft=True)
    _configure(monkeypatch, 'microsoft', provider)
    yield provider
    server.shutdown()
    server.server_close()


def google_identity(subject: str, email: str, *, verified: bool = True, name: str = 'Grace Google') -> Identity:
    return Identity(subject, {'email': email, 'email_verified': verified, 'name': name})


async def start_at_provider(user: User, provider: str) -> httpx.Response:
    """Open the start route and follow its redirect to the provider; returns the provider's redirect."""
    response = await user.http_client.get(f'/auth/oidc/{provider}/start')
    assert response.status_code == 302, response.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(response.headers['location'])
    assert at_provider.status_code == 302, at_provider.text
    return at_provider


async def callback(user: User, location: str) -> httpx.Response:
    """Open the app's callback address that the provider redirected to (host and port replaced)."""
    url = urlsplit(location)
    return await user.http_client.get(f'{url.path}?{url.query}')


async def walk(user: User, provider: str) -> httpx.Response:
    """Go from the start route through the provider back to the app; returns the app's response to the callback."""
    at_provider = await start_at_provider(user, provider)
    return await callback(user, at_provider.headers['location'])


def target(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return response.headers['location']


def audit_rows(action: str) -> list[AuditEvent]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)).all())


def identities() -> list[tuple[str, str, int]]:
    with session_scope() as session:
        return [(row.provider, row.subject, row.user_id) for row in session.scalars(select(ExternalIdentity))]


def sessions_of(user_id: int) -> list[UserSession]:
    with session_scope() as session:
        return list(session.scalars(select(UserSession).where(UserSession.user_id == user_id)).all())


async def test_buttons_hidden_when_not_configured(user: User):
    await user.open('/login')
    await user.should_see('Sign in', marker='sign-in')
    await user.should_not_see('Sign in with Google')
    await user.should_not_see('Sign in with Microsoft')
    await user.open('/register')
    await user.should_not_see('Sign up with Google')
    response = await user.http_client.get('/auth/oidc/google/start')
    assert response.status_code == 404


async def test_only_configured_button_shown(google: FakeProvider, user: User):
    await user.open('/login')
    await user.should_see('Sign in with Google')
    await user.should_not_see('Sign in with Microsoft')
    link = user.find(marker='oidc-google').elements.pop()
    assert link.props['href'] == '/auth/oidc/google/start'
    assert link.props['aria-label'] == 'Sign in with Google'
    await user.open('/register')
    await user.should_see('Sign up with Google')
    assert (await user.http_client.get('/auth/oidc/microsoft/start')).status_code == 404
    assert (await user.http_client.get('/auth/oidc/facebook/start')).status_code == 404


async def test_new_patient_completes_account(google: FakeProvider, user: User):
    # Authlib keeps its state in Starlette's session, which NiceGUI installs for the storage secret.
    assert any(middleware.cls is SessionMiddleware for middleware in app.user_middleware)
    google.identity = google_identity('google-sub-1', 'grace@example.org')

    response = await walk(user, 'google')
    assert target(response) == '/register/complete'
    request = google.authorize_requests[-1]
    assert request['scope'] == 'openid email profile'
    assert request['code_challenge_method'] == 'S256'
    assert request['nonce']
    assert request['redirect_uri'] == 'http://127.0.0.1:8080/auth/oidc/google/callback'
    assert google.token_requests[-1]['code_verifier']

    await user.open('/register/complete')
    await user.should_see('Google confirmed your email address grace@example.org')
    await user.should_see('Name: Grace Google')
    user.find(marker='complete').click()
    await user.should_see('Date of birth is missing.')
    user.find(marker='date_of_birth').type('2999-01-01')
    user.find(marker='complete').click()
    await user.should_see('Date of birth 2999-01-01 is not a valid past date.')
    user.find(marker='date_of_birth').clear().type('1975-03-02')
    user.find(marker='phone').type('+41 79 555 12 34')
    user.find(marker='complete').click()
    await user.should_see('My examinations')

    with session_scope() as session:
        row = session.scalars(select(UserRow).where(UserRow.email == 'grace@example.org')).one()
        patient = session.scalars(select(Patient).where(Patient.user_id == row.id)).one()
        assert row.role == 'patient'
        assert row.full_name == 'Grace Google'
        assert row.password_hash is None
        assert row.login_provider == 'google'
        assert row.email_verified_at is not None
        assert row.phone == '+41795551234'
        assert patient.date_of_birth.isoformat() == '1975-03-02'
        user_id = row.id
    assert identities() == [('google', 'google-sub-1', user_id)]
    assert [s.method for s in sessions_of(user_id)] == ['oidc:google']
    registered = audit_rows('patient.registered')
    assert [(r.object_id, r.detail['method'], r.client_address) for r in registered] == \
        [(str(user_id), 'google', '127.0.0.1')]
    succeeded = audit_rows('sign_in.succeeded')
    assert [(r.object_id, r.detail['method']) for r in succeeded] == [(str(user_id), 'google')]

    # The pending sign-up is gone once used: the page now has nothing to complete.
    sessions.end(user.http_client.cookies.get(sessions.COOKIE_NAME))
    await user.http_client.get('/auth/signed-out')
    await user.open('/register/complete')
    await user.should_see('There is no sign-in with Microsoft or Google waiting in this browser')


async def test_links_existing_patient_by_email(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org', verified=False)
    with session_scope() as session:
        assert session.get(UserRow, carol.user_id).email_verified_at is None
    google.identity = google_identity('google-sub-carol', 'Carol@Example.org')

    response = await walk(user, 'google')
    assert target(response).startswith('/auth/session?ticket=')
    await user.open(target(response))
    await user.should_see('My examinations')

    assert identities() == [('google', 'google-sub-carol', carol.user_id)]
    with session_scope() as session:
        row = session.get(UserRow, carol.user_id)
        assert row.email_verified_at is not None
        assert row.login_provider == 'password'
    linked = audit_rows('external_identity.linked')
    assert [(r.object_id, r.detail['method'], r.client_address) for r in linked] == \
        [(str(carol.user_id), 'google', '127.0.0.1')]
    assert [r.object_id for r in audit_rows('sign_in.succeeded')] == [str(carol.user_id)]


async def test_unverified_email_rejected(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-x', 'carol@example.org', verified=False)

    response = await walk(user, 'google')
    assert target(response) == '/login?oidc_error=unverified_email&provider=google'
    await user.open(target(response))
    await user.should_see(UNVERIFIED)

    assert identities() == []
    assert sessions_of(carol.user_id) == []
    failed = audit_rows('sign_in.failed')
    assert [(r.object_type, r.detail['reason'], r.detail['method']) for r in failed] == \
        [('email_sha256', 'email not verified by provider', 'google')]


async def test_doctor_account_not_linked(google: FakeProvider, user: User, make_doctor):
    doctor = make_doctor(email='doc@example.org')
    google.identity = google_identity('google-sub-doc', 'doc@example.org')

    response = await walk(user, 'google')
    await user.open(target(response))
    await user.should_see('Doctor and admin accounts cannot sign in with Google. '
                          'Sign in with your email and password.')

    assert identities() == []
    assert sessions_of(doctor.user_id) == []
    failed = audit_rows('sign_in.failed')
    assert [(r.object_id, r.detail['reason']) for r in failed] == \
        [(str(doctor.user_id), 'doctor account cannot link a provider')]


async def test_link_wins_over_changed_email(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    other = make_patient('Olga Other', email='olga@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    await user.open(target(await walk(user, 'google')))
    await user.should_see('My examinations')
    await user.http_client.get('/auth/signed-out')

    # At the provider, the same account now has another patient's address, not even verified.
    google.identity = google_identity('google-sub-carol', 'olga@example.org', verified=False)
    response = await walk(user, 'google')
    assert target(response).startswith('/auth/session?ticket=')
    await user.open(target(response))
    await user.should_see('My examinations')

    assert [s.method for s in sessions_of(carol.user_id)] == ['oidc:google', 'oidc:google']
    assert sessions_of(other.user_id) == []
    assert identities() == [('google', 'google-sub-carol', carol.user_id)]


async def test_tampered_state_rejected(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    at_provider = await start_at_provider(user, 'google')
    location = urlsplit(at_provider.headers['location'])
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    query['state'] = query['state'][:-4] + 'abcd'

    response = await user.http_client.get(f'{location.path}?{urlencode(query)}')
    assert target(response) == '/login?oidc_error=state&provider=google'
    await user.open(target(response))
    await user.should_see('The sign-in with Google could not be checked, because it did not start in this '
                          'browser or took too long. Try again.')
    assert sessions_of(carol.user_id) == []
    assert identities() == []
    assert [r.detail['reason'] for r in audit_rows('sign_in.failed')] == ['state mismatch']


async def test_callback_replay_rejected(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    at_provider = await start_at_provider(user, 'google')
    first = await callback(user, at_provider.headers['location'])
    assert target(first).startswith('/auth/session?ticket=')

    second = await callback(user, at_provider.headers['location'])
    assert target(second) == '/login?oidc_error=state&provider=google'
    assert len(sessions_of(carol.user_id)) == 1


async def test_provider_error_and_missing_code(google: FakeProvider, user: User):
    google.authorize_error = 'access_denied'
    response = await walk(user, 'google')
    assert target(response) == '/login?oidc_error=provider_error&provider=google'
    await user.open(target(response))
    await user.should_see('Google did not complete the sign-in. Try again, or sign in with your email and password.')

    response = await user.http_client.get('/auth/oidc/google/callback?state=abc')
    assert target(response) == '/login?oidc_error=missing_code&provider=google'
    await user.open(target(response))
    await user.should_see('Google sent no authorization code back.')
    assert [r.detail['reason'] for r in audit_rows('sign_in.failed')] == \
        ['provider error: access_denied', 'missing authorization code']


async def test_token_for_other_client_rejected(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    # Issued to another client: Authlib alone would accept it, because `azp` names ours.
    google.identity.claims['azp'] = CLIENT_ID
    google.audience_override = 'some-other-client'

    response = await walk(user, 'google')
    assert target(response) == '/login?oidc_error=invalid_token&provider=google'
    await user.open(target(response))
    await user.should_see('The answer from Google failed its security check.')
    assert sessions_of(carol.user_id) == []
    assert audit_rows('sign_in.failed')[0].detail['reason'].startswith('invalid ID token')


async def test_deactivated_patient_rejected(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    await walk(user, 'google')
    with session_scope() as session:
        session.get(UserRow, carol.user_id).is_active = False

    response = await walk(user, 'google')
    await user.open(target(response))
    await user.should_see('This account is deactivated. Contact the practice.')
    assert len(sessions_of(carol.user_id)) == 1
    assert [(r.object_id, r.detail['reason']) for r in audit_rows('sign_in.failed')] == \
        [(str(carol.user_id), 'account deactivated')]


async def test_microsoft_requires_domain_verified_email(microsoft: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    # Entra ID sends `email` without proof; without xms_edov the address is not trusted.
    microsoft.identity = Identity('ms-sub-carol', {'email': 'carol@example.org', 'name': 'Carol Patient'})
    response = await walk(user, 'microsoft')
    await user.open(target(response))
    await user.should_see('Microsoft has not verified your email address.')
    assert identities() == []

    microsoft.identity = Identity('ms-sub-carol', {'email': 'carol@example.org', 'name': 'Carol Patient',
                                                   'xms_edov': True})
    response = await walk(user, 'microsoft')
    await user.open(target(response))
    await user.should_see('My examinations')
    assert identities() == [('microsoft', 'ms-sub-carol', carol.user_id)]
    assert [s.method for s in sessions_of(carol.user_id)] == ['oidc:microsoft']


async def test_password_sign_in_unchanged(google: FakeProvider, user: User, make_patient):
    make_patient('Carol Patient', email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')


async def test_microsoft_issuer_must_match_tenant(microsoft: FakeProvider, user: User):
    microsoft.identity = Identity('ms-sub-1', {'email': 'new@example.org', 'xms_edov': True, 'tid': 'another-tenant'})
    response = await walk(user, 'microsoft')
    assert target(response) == '/login?oidc_error=invalid_token&provider=microsoft'

    microsoft.identity = Identity('ms-sub-1', {'email': 'new@example.org', 'xms_edov': True})
    response = await walk(user, 'microsoft')
    assert target(response) == '/register/complete'
    assert oidc.client_for('microsoft') is not None


async def test_name_asked_when_provider_sent_none(microsoft: FakeProvider, user: User):
    microsoft.identity = Identity('ms-sub-2', {'email': 'nameless@example.org', 'xms_edov': True})
    assert target(await walk(user, 'microsoft')) == '/register/complete'

    await user.open('/register/complete')
    await user.should_see('Microsoft confirmed your email address nameless@example.org')
    user.find(marker='date_of_birth').type('1990-12-24')
    user.find(marker='complete').click()
    await user.should_see('Full name is missing.')
    user.find(marker='name').type('Noel Nameless')
    user.find(marker='complete').click()
    await user.should_see('My examinations')
    with session_scope() as session:
        row = session.scalars(select(UserRow).where(UserRow.email == 'nameless@example.org')).one()
        assert row.full_name == 'Noel Nameless'
        assert row.login_provider == 'microsoft'


@pytest.fixture
def unreachable_google(monkeypatch) -> FakeProvider:
    # A port that nothing listens on: take a free one and close it again.
    provider, server = start_provider()
    server.shutdown()
    server.server_close()
    _configure(monkeypatch, 'google', provider)
    return provider


async def test_unreachable_provider_shown_plainly(unreachable_google: FakeProvider, user: User):
    response = await user.http_client.get('/auth/oidc/google/start')
    assert target(response) == '/login?oidc_error=unavailable&provider=google'
    await user.open(target(response))
    await user.should_see('Google cannot be reached right now. Try again later, or sign in with your email '
                          'and password.')
    assert [r.detail['reason'] for r in audit_rows('sign_in.failed')] == ['provider unreachable']


async def test_unknown_error_code_shows_nothing(user: User):
    await user.open('/login?oidc_error=<b>made-up</b>&provider=google')
    await user.should_see('Sign in', marker='sign-in')
    await user.should_not_see(marker='oidc-error')


async def test_new_start_replaces_unfinished_one(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    google.identity = google_identity('google-sub-carol', 'carol@example.org')
    abandoned = await start_at_provider(user, 'google')
    for _ in range(20):
        await start_at_provider(user, 'google')
    latest = await start_at_provider(user, 'google')
    # Authlib keeps only the newest state per provider, so the cookie stays under the 4 KB browsers keep.
    assert len(user.http_client.cookies.get('session', '')) < 4000

    assert target(await callback(user, abandoned.headers['location'])) == '/login?oidc_error=state&provider=google'
    assert target(await callback(user, latest.headers['location'])).startswith('/auth/session?ticket=')
    assert len(sessions_of(carol.user_id)) == 1


async def test_two_step_account_must_use_password_and_code(google: FakeProvider, user: User, make_patient):
    carol = make_patient('Carol Patient', email='carol@example.org')
    with session_scope() as session:
        session.get(UserRow, carol.user_id).totp_enabled_at = utcnow()
    google.identity = google_identity('google-sub-carol', 'carol@example.org')

    response = await walk(user, 'google')
    await user.open(target(response))
    await user.should_see('This account uses two-step sign-in')
    assert sessions_of(carol.user_id) == []
    assert [(r.object_id, r.detail['reason']) for r in audit_rows('sign_in.failed')] == \
        [(str(carol.user_id), 'second factor required')]
