"""Sign-in with Microsoft (Entra ID) and Google through OpenID Connect, and the rules for linking accounts.

The provider registry is Authlib's Starlette client. Every authorization request names the
scope `openid email profile` and carries a PKCE S256 challenge and a nonce. Authlib checks the
state, the ID token's signature against the provider's JWKS, its nonce and its expiry. The
claims options built here add the audience (our client id) and the issuer checks.

Account rules, in this order:

1. An identity already linked (`external_identities`, provider and subject) signs in its user.
   The subject never changes at the provider, unlike the email address.
2. Otherwise the provider must vouch for the email address. Google sends `email_verified`.
   Entra ID's `email` claim is not verified by default. Microsoft's guidance ("Migrate away from
   using email claims for user identification or authorization", Microsoft Learn) treats an
   email as verified only when the domain owner verified it, which the optional claim
   `xms_edov` states. So the app registration must add the optional claims `email` and
   `xms_edov`, and a Microsoft email counts as verified only when `xms_edov` is true.
3. A verified email of an existing patient links the identity to that patient and marks the
   email verified. Doctor and admin accounts are never linked: they sign in with a password.
4. A verified email that no account has starts a new patient account, which needs the date of
   birth: the caller keeps a `PendingSignUp` and `create_patient` finishes it.

Deactivated and deleted accounts cannot sign in this way either. Every outcome writes a
`sign_in.succeeded` or `sign_in.failed` audit row with the provider and the client address.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings, get_settings
from ..db import session_scope
from ..models import AuditEvent, ExternalIdentity, Patient, Role, User
from ..models.base import utcnow
from . import accounts, audit, sessions, throttle, totp
from .actors import load_actor
from ..i18n import N_, _
from .errors import ConflictError, DomainError, ValidationError

logger = logging.getLogger(__name__)

MICROSOFT = 'microsoft'
GOOGLE = 'google'
PROVIDER_LABELS = {MICROSOFT: 'Microsoft', GOOGLE: 'Google'}
SCOPE = 'openid email profile'
GOOGLE_ISSUER = 'https://accounts.google.com'
GOOGLE_METADATA_URL = f'{GOOGLE_ISSUER}/.well-known/openid-configuration'
MICROSOFT_METADATA_URL = 'https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration'
# Entra ID's multi-tenant discovery documents (common, organizations, consumers) contain this placeholder
# in their issuer. An ID token's issuer contains the user's tenant id (its `tid` claim) in its place.
TENANT_PLACEHOLDER = '{tenantid}'
# Seconds the provider's response stays usable for the "complete your account" page.
PENDING_SIGN_UP_SECONDS = 15 * 60
# Seconds for each request to the provider (discovery, token, JWKS).
PROVIDER_TIMEOUT_SECONDS = 10.0

# Reasons for a rejected sign-in. The code goes into the sign-in page's address, and the page shows the message.
NO_EMAIL = 'no_email'
UNVERIFIED_EMAIL = 'unverified_email'
NOT_A_PATIENT = 'not_a_patient'
DEACTIVATED = 'deactivated'
STATE_MISMATCH = 'state'
PROVIDER_ERROR = 'provider_error'
MISSING_CODE = 'missing_code'
INVALID_TOKEN = 'invalid_token'
UNAVAILABLE = 'unavailable'
TWO_STEP = 'two_step'

REJECTION_MESSAGES = {
    NO_EMAIL: N_('{label} did not share an email address with us. Sign in with your email and password, '
                 'or allow access to your email address at {label} and try again.'),
    UNVERIFIED_EMAIL: N_('{label} has not verified your email address. Sign in with your email and password, '
                         'or verify the address in your {label} account and try again.'),
    NOT_A_PATIENT: N_('Doctor and admin accounts cannot sign in with {label}. Sign in with your email and password.'),
    DEACTIVATED: N_('This account is deactivated. Contact the practice.'),
    STATE_MISMATCH: N_('The sign-in with {label} could not be checked, because it did not start in this browser '
                       'or took too long. Try again.'),
    PROVIDER_ERROR: N_('{label} did not complete the sign-in. Try again, or sign in with your email and password.'),
    MISSING_CODE: N_('{label} sent no authorization code back. Try again, or sign in with your email and password.'),
    INVALID_TOKEN: N_('The answer from {label} failed its security check. Try again, or sign in with your email '
                      'and password.'),
    UNAVAILABLE: N_('{label} cannot be reached right now. Try again later, or sign in with your email and password.'),
    TWO_STEP: N_('This account uses two-step sign-in, which {label} cannot complete. Sign in with your email and '
                 'password, then enter the code from your authenticator app.'),
}


def rejection_message(code: str, provider: str) -> str | None:
    """Return the user-facing message for a rejection code, None for an unknown code."""
    template = REJECTION_MESSAGES.get(code)
    if template is None:
        return None
    return _(template, label=_(PROVIDER_LABELS.get(provider, N_('The provider'))))


class ExternalSignInRejected(DomainError):
    """The provider's response does not allow a sign-in; `code` is one of the reasons above."""

    translated_params = ('label',)

    def __init__(self, code: str, provider: str) -> None:
        super().__init__(REJECTION_MESSAGES.get(code, code),
                         label=PROVIDER_LABELS.get(provider, N_('The provider')))
        self.code = code
        self.provider = provider


@dataclass(frozen=True)
class Provider:
    name: str
    label: str


@dataclass(frozen=True)
class ExternalProfile:
    """The claims of the provider's checked ID token that the account rules use."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    full_name: str


@dataclass(frozen=True)
class PendingSignUp:
    """A verified identity with no account yet, waiting for the "complete your account" page."""

    provider: str
    subject: str
    email: str
    full_name: str
    issued_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PendingSignUp | None:
        """Rebuild from `to_dict` output; None when the data is missing, malformed or expired."""
        if not isinstance(data, dict):
            return None
        try:
            pending = cls(provider=str(data['provider']), subject=str(data['subject']), email=str(data['email']),
                          full_name=str(data['full_name']), issued_at=float(data['issued_at']))
        except (KeyError, TypeError, ValueError):
            return None
        if pending.provider not in PROVIDER_LABELS:
            return None
        if not 0 <= time.time() - pending.issued_at <= PENDING_SIGN_UP_SECONDS:
            return None
        return pending


@dataclass(frozen=True)
class SignInResult:
    """Either a session ticket (the user is known) or a sign-up that needs the date of birth."""

    ticket: str | None = None
    user_id: int | None = None
    pending: PendingSignUp | None = None


# ---------------------------------------------------------------------------------------------
# Provider registry


def configured_providers(settings: Settings | None = None) -> list[Provider]:
    """Return the providers whose client id and secret are both set, in the order the buttons show."""
    settings = settings or get_settings()
    found = []
    if settings.microsoft_client_id and settings.microsoft_client_secret \
            and settings.microsoft_client_secret.get_secret_value():
        found.append(Provider(MICROSOFT, PROVIDER_LABELS[MICROSOFT]))
    if settings.google_client_id and settings.google_client_secret \
            and settings.google_client_secret.get_secret_value():
        found.append(Provider(GOOGLE, PROVIDER_LABELS[GOOGLE]))
    return found


def metadata_url(provider: str, settings: Settings) -> str:
    if provider == MICROSOFT:
        return settings.microsoft_metadata_url or MICROSOFT_METADATA_URL.format(tenant=settings.microsoft_tenant)
    return settings.google_metadata_url or GOOGLE_METADATA_URL


def redirect_uri(provider: str, settings: Settings | None = None) -> str:
    """Return the callback address registered with the provider."""
    settings = settings or get_settings()
    return f'{settings.public_base_url.rstrip("/")}/auth/oidc/{provider}/callback'


# The registry is built once per Settings object, so tests that change the settings get a new one. It keeps
# a reference to that object, because the id of a freed object may be reused for its successor.
_registry: tuple[Settings, OAuth] | None = None


def _build_registry(settings: Settings) -> OAuth:
    oauth = OAuth()
    credentials = {
        MICROSOFT: (settings.microsoft_client_id, settings.microsoft_client_secret),
        GOOGLE: (settings.google_client_id, settings.google_client_secret),
    }
    for provider in configured_providers(settings):
        client_id, client_secret = credentials[provider.name]
        assert client_id is not None and client_secret is not None
        oauth.register(
            provider.name, client_id=client_id, client_secret=client_secret.get_secret_value(),
            server_metadata_url=metadata_url(provider.name, settings),
            client_kwargs={'scope': SCOPE, 'code_challenge_method': 'S256', 'timeout': PROVIDER_TIMEOUT_SECONDS})
    return oauth


def client_for(provider: str) -> StarletteOAuth2App | None:
    """Return the Authlib client of a configured provider, None for an unknown or unconfigured one."""
    global _registry
    settings = get_settings()
    if provider not in {configured.name for configured in configured_providers(settings)}:
        return None
    if _registry is None or _registry[0] is not settings:
        _registry = (settings, _build_registry(settings))
    return _registry[1].create_client(provider)


def claims_options(provider: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """Return Authlib's ID token checks: the audience is our client id, the issuer the provider's.

    Authlib by itself checks the audience only through `azp`, so the audience is added here. For
    Entra ID's multi-tenant endpoints the issuer must equal the discovery document's issuer with
    the token's own `tid` put in place of the placeholder.
    """
    settings = get_settings()
    client_id = settings.microsoft_client_id if provider == MICROSOFT else settings.google_client_id
    issuer = str(metadata.get('issuer') or '')
    options: dict[str, Any] = {'aud': {'essential': True, 'value': client_id}}
    if TENANT_PLACEHOLDER in issuer:
        def issuer_matches_tenant(claims: dict[str, Any], value: Any) -> bool:
            tenant = claims.get('tid')
            return isinstance(tenant, str) and bool(tenant) and value == issuer.replace(TENANT_PLACEHOLDER, tenant)

        options['iss'] = {'essential': True, 'validate': issuer_matches_tenant}
    elif provider == GOOGLE and issuer == GOOGLE_ISSUER:
        # Google's ID token guide lists both forms of its issuer, with and without the scheme.
        options['iss'] = {'essential': True, 'values': [GOOGLE_ISSUER, GOOGLE_ISSUER.removeprefix('https://')]}
    else:
        options['iss'] = {'essential': True, 'value': issuer}
    return options


def profile_from_claims(provider: str, claims: dict[str, Any]) -> ExternalProfile:
    """Read the subject, email, whether the provider vouches for it, and the name from ID token claims."""
    raw_email = claims.get('email')
    email = None
    if isinstance(raw_email, str) and raw_email.strip():
        try:
            email = accounts.normalize_email(raw_email)
        except ValidationError:
            logger.info('%s sent an invalid email address for an identity; treated as missing', provider)
    if provider == MICROSOFT:
        # A Boolean optional claim; anything but true (missing, false, a string) is not verified.
        verified = claims.get('xms_edov') is True
    else:
        verified = claims.get('email_verified') is True
    name = claims.get('name')
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get('given_name'), claims.get('family_name')]
        name = ' '.join(part for part in parts if isinstance(part, str) and part.strip())
    return ExternalProfile(provider=provider, subject=str(claims['sub']), email=email, email_verified=verified,
                           full_name=name.strip()[:200])


# ---------------------------------------------------------------------------------------------
# Account rules


def _subject_digest(provider: str, subject: str) -> str:
    return hashlib.sha256(f'{provider}:{subject}'.encode()).hexdigest()


def record_rejection(*, provider: str, reason: str, client_address: str | None, user_id: int | None = None,
                   email: str | None = None, subject: str | None = None, session: Session | None = None) -> None:
    """Write a `sign_in.failed` row for the user, else the email's SHA-256, else the provider identity's."""
    def write(target: Session) -> None:
        if user_id or email:
            audit.record_sign_in(target, 'sign_in.failed', user_id=user_id,
                                 email_hash=throttle.hash_key(email or ''), client_address=client_address,
                                 method=provider, reason=reason)
        else:
            object_type, object_id = ('external_subject_sha256', _subject_digest(provider, subject)) if subject \
                else ('oidc_provider', provider)
            target.add(AuditEvent(actor_user_id=None, action='sign_in.failed', object_type=object_type,
                                  object_id=object_id, client_address=client_address,
                                  detail={'method': provider, 'reason': reason}))

    if session is not None:
        write(session)
        return
    try:
        with session_scope() as own:
            write(own)
    except Exception:
        logger.exception('audit row for a rejected %s sign-in (%s) could not be written', provider, reason)


def _reject(session: Session, code: str, reason: str, profile: ExternalProfile, client_address: str | None,
            user_id: int | None = None) -> ExternalSignInRejected:
    record_rejection(provider=profile.provider, reason=reason, client_address=client_address, user_id=user_id,
                   email=profile.email, subject=profile.subject, session=session)
    account = f'user {user_id}' if user_id else f'subject hash {_subject_digest(profile.provider, profile.subject)[:12]}'
    logger.info('%s sign-in rejected (%s) for %s', profile.provider, reason, account)
    return ExternalSignInRejected(code, profile.provider)


def _start_session(session: Session, user: User, profile: ExternalProfile, client_address: str | None) -> str:
    if totp.needs_second_factor(user):
        # The provider's sign-in does not replace the code the owner chose to require.
        raise _reject(session, TWO_STEP, 'second factor required', profile, client_address, user.id)
    user.last_login_at = utcnow()
    audit.record_sign_in(session, 'sign_in.succeeded', user_id=user.id, email_hash=throttle.hash_key(user.email),
                         client_address=client_address, method=profile.provider)
    return sessions.start(session, user.id, method=f'oidc:{profile.provider}', client_address=client_address)


def sign_in(profile: ExternalProfile, *, client_address: str | None) -> SignInResult:
    """Apply the account rules to a checked identity; raises ExternalSignInRejected with the reason.

    Returns a session ticket for a known or newly linked user, or a PendingSignUp for a new patient.
    A rejection's audit row is committed although the error is raised.
    """
    rejection: ExternalSignInRejected | None = None
    result: SignInResult | None = None
    with session_scope() as session:
        try:
            result = _sign_in(session, profile, client_address)
        except ExternalSignInRejected as error:
            rejection = error
    if rejection is not None:
        raise rejection
    assert result is not None
    return result


def _sign_in(session: Session, profile: ExternalProfile, client_address: str | None) -> SignInResult:
    identity = session.scalar(select(ExternalIdentity).where(ExternalIdentity.provider == profile.provider,
                                                            ExternalIdentity.subject == profile.subject))
    if identity is not None:
        user = session.get(User, identity.user_id)
        if user is None or user.deleted_at is not None or load_actor(session, user.id) is None:
            raise _reject(session, DEACTIVATED, 'account deactivated', profile, client_address, identity.user_id)
        identity.last_used_at = utcnow()
        ticket = _start_session(session, user, profile, client_address)
        logger.info('user %s signed in with %s (linked identity %s)', user.id, profile.provider, identity.id)
        return SignInResult(ticket=ticket, user_id=user.id)

    if profile.email is None:
        raise _reject(session, NO_EMAIL, 'no email from provider', profile, client_address)
    if not profile.email_verified:
        raise _reject(session, UNVERIFIED_EMAIL, 'email not verified by provider', profile, client_address)

    user = session.scalar(select(User).where(User.email == profile.email))
    if user is None:
        logger.info('%s identity with a new verified email: asking for the account details', profile.provider)
        return SignInResult(pending=PendingSignUp(provider=profile.provider, subject=profile.subject,
                                                  email=profile.email, full_name=profile.full_name,
                                                  issued_at=time.time()))
    if user.role != Role.PATIENT:
        raise _reject(session, NOT_A_PATIENT, f'{user.role} account cannot link a provider', profile,
                      client_address, user.id)
    if user.deleted_at is not None or load_actor(session, user.id) is None:
        raise _reject(session, DEACTIVATED, 'account deactivated', profile, client_address, user.id)

    identity = ExternalIdentity(user_id=user.id, provider=profile.provider, subject=profile.subject,
                                last_used_at=utcnow())
    session.add(identity)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    session.flush()
    audit.record_sign_in(session, 'external_identity.linked', user_id=user.id,
                         email_hash=throttle.hash_key(user.email), client_address=client_address,
                         method=profile.provider, identity_id=identity.id)
    ticket = _start_session(session, user, profile, client_address)
    logger.info('user %s linked to %s identity %s by verified email and signed in', user.id, profile.provider,
                identity.id)
    return SignInResult(ticket=ticket, user_id=user.id)


def create_patient(pending: PendingSignUp, *, date_of_birth: date | None, phone: str = '',
                   full_name: str | None = None, client_address: str | None) -> SignInResult:
    """Create the patient of a pending sign-up, with no password, link the identity and start a session.

    `full_name` replaces the provider's name when given (for providers that sent none).
    """
    name = accounts.require_name(full_name if full_name is not None else pending.full_name)
    phone_e164 = accounts.normalize_phone(phone)
    accounts.check_date_of_birth(date_of_birth)
    assert date_of_birth is not None
    label = PROVIDER_LABELS[pending.provider]
    profile = ExternalProfile(provider=pending.provider, subject=pending.subject, email=pending.email,
                              email_verified=True, full_name=name)
    with session_scope() as session:
        if session.scalar(select(ExternalIdentity.id).where(ExternalIdentity.provider == pending.provider,
                                                            ExternalIdentity.subject == pending.subject)):
            raise ConflictError(N_('Your {label} account is already linked to an account here. '
                                   'Sign in with {label} again.'), label=label)
        if session.scalar(select(User.id).where(User.email == pending.email)):
            raise ConflictError(N_('An account with the email address {email} was created meanwhile. '
                                   'Sign in with {label} again to use it.'), email=pending.email, label=label)
        now = utcnow()
        user = User(email=pending.email, password_hash=None, role=Role.PATIENT, full_name=name, phone=phone_e164,
                    login_provider=pending.provider, email_verified_at=now)
        session.add(user)
        session.flush()
        session.add(Patient(user_id=user.id, date_of_birth=date_of_birth))
        identity = ExternalIdentity(user_id=user.id, provider=pending.provider, subject=pending.subject,
                                    last_used_at=now)
        session.add(identity)
        session.flush()
        from .notifications import enqueue_email
        enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email, template='welcome',
                      context={'patient_name': name})
        audit.record_sign_in(session, 'patient.registered', user_id=user.id, email_hash=throttle.hash_key(user.email),
                             client_address=client_address, method=pending.provider, identity_id=identity.id)
        ticket = _start_session(session, user, profile, client_address)
        user_id = user.id
    logger.info('patient registered with %s: user %s, identity %s', pending.provider, user_id, identity.id)
    return SignInResult(ticket=ticket, user_id=user_id)
