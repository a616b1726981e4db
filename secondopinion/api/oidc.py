"""HTTP routes of the OpenID Connect sign-in: send the browser to the provider and read its response.

Authlib keeps the state, nonce and PKCE verifier in Starlette's session (the signed cookie of the
SessionMiddleware that NiceGUI installs for the storage secret). A new patient's verified identity
waits in that same signed cookie, for at most `oidc.PENDING_SIGN_UP_SECONDS`, until the "complete
your account" page (pages/oidc.py) creates the account.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError
from nicegui import app

from ..services import oidc

logger = logging.getLogger(__name__)

# Key of the pending sign-up in Starlette's session; the complete page reads it.
PENDING_KEY = 'oidc_pending_sign_up'
COMPLETE_PATH = '/register/complete'


def login_with_error(code: str, provider: str) -> RedirectResponse:
    """Send the browser to the sign-in page, which shows the message for `code`."""
    response = RedirectResponse('/login?' + urlencode({'oidc_error': code, 'provider': provider}), status_code=303)
    response.headers['Cache-Control'] = 'no-store'
    return response


def to_session(ticket: str, next_path: str | None = None) -> RedirectResponse:
    """Send the browser to `/auth/session`, whose response sets the session cookie."""
    query = {'ticket': ticket}
    if next_path:
        query['next'] = next_path
    response = RedirectResponse('/auth/session?' + urlencode(query), status_code=303)
    response.headers['Cache-Control'] = 'no-store'
    return response


def _client_or_404(provider: str):
    client = oidc.client_for(provider)
    if client is None:
        raise HTTPException(status_code=404, detail=f'Sign-in provider "{provider[:32]}" not found.')
    return client


def register_oidc_routes() -> None:
    @app.get('/auth/oidc/{provider}/start', include_in_schema=False)
    async def start(request: Request, provider: str) -> Response:
        client = _client_or_404(provider)
        try:
            response = await client.authorize_redirect(request, oidc.redirect_uri(provider))
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as error:
            # The discovery document could not be fetched or read.
            logger.warning('%s sign-in could not start: %s: %s', provider, type(error).__name__, error)
            oidc.record_rejection(provider=provider, reason='provider unreachable', client_address=_address(request))
            return login_with_error(oidc.UNAVAILABLE, provider)
        response.headers['Cache-Control'] = 'no-store'
        logger.info('%s sign-in started', provider)
        return response

    @app.get('/auth/oidc/{provider}/callback', include_in_schema=False)
    async def callback(request: Request, provider: str) -> Response:
        client = _client_or_404(provider)
        address = _address(request)
        params = request.query_params
        if params.get('error'):
            # The provider's error code is a short ASCII word (RFC 6749, 4.1.2.1); its description is not logged.
            code = params['error'][:64]
            logger.info('%s returned the error %s', provider, code)
            oidc.record_rejection(provider=provider, reason=f'provider error: {code}', client_address=address)
            return login_with_error(oidc.PROVIDER_ERROR, provider)
        if not params.get('code'):
            logger.info('%s callback without an authorization code', provider)
            oidc.record_rejection(provider=provider, reason='missing authorization code', client_address=address)
            return login_with_error(oidc.MISSING_CODE, provider)

        try:
            metadata = await client.load_server_metadata()
            token = await client.authorize_access_token(
                request, claims_options=oidc.claims_options(provider, metadata))
        except MismatchingStateError:
            logger.info('%s callback rejected: unknown or used state', provider)
            oidc.record_rejection(provider=provider, reason='state mismatch', client_address=address)
            return login_with_error(oidc.STATE_MISMATCH, provider)
        except OAuthError as error:
            logger.info('%s token request rejected: %s', provider, error.error)
            oidc.record_rejection(provider=provider, reason=f'token request rejected: {error.error}',
                                client_address=address)
            return login_with_error(oidc.PROVIDER_ERROR, provider)
        except JoseError as error:
            logger.warning('%s ID token rejected: %s', provider, error.error)
            oidc.record_rejection(provider=provider, reason=f'invalid ID token: {error.error}', client_address=address)
            return login_with_error(oidc.INVALID_TOKEN, provider)
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as error:
            logger.warning('%s token request failed: %s: %s', provider, type(error).__name__, error)
            oidc.record_rejection(provider=provider, reason='provider unreachable', client_address=address)
            return login_with_error(oidc.UNAVAILABLE, provider)

        claims = token.get('userinfo')
        if not claims or not claims.get('sub'):
            # Authlib checks an ID token only when there is one, so a missing one is rejected here.
            logger.warning('%s token response without an ID token', provider)
            oidc.record_rejection(provider=provider, reason='no ID token', client_address=address)
            return login_with_error(oidc.INVALID_TOKEN, provider)

        profile = oidc.profile_from_claims(provider, dict(claims))
        try:
            result = oidc.sign_in(profile, client_address=address)
        except oidc.ExternalSignInRejected as rejection:
            return login_with_error(rejection.code, provider)
        request.session.pop(PENDING_KEY, None)
        if result.pending is not None:
            request.session[PENDING_KEY] = result.pending.to_dict()
            response = RedirectResponse(COMPLETE_PATH, status_code=303)
            response.headers['Cache-Control'] = 'no-store'
            return response
        assert result.ticket is not None
        return to_session(result.ticket)

    @app.get('/auth/oidc/finish', include_in_schema=False)
    def finish(request: Request, ticket: str = '') -> Response:
        """Forget the pending sign-up once its account exists, then take up the session."""
        request.session.pop(PENDING_KEY, None)
        return to_session(ticket, '/exams')


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None
