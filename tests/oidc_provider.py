"""A small OpenID Connect provider on 127.0.0.1 for the sign-in tests.

It serves the discovery document, a JWKS with an RSA key made at start, and a userinfo endpoint.
The authorization endpoint signs in the configured test identity at once (no login form) and
redirects back with a code. The token endpoint checks the client secret, the redirect URI and the
PKCE S256 verifier, and returns an RS256-signed ID token with the nonce. Tokens are signed with
joserfc, the JOSE library that Authlib itself uses since `authlib.jose` was deprecated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = 'test-client-id'
CLIENT_SECRET = 'test-client-secret'
# The tenant id that the Microsoft flavour puts in `tid` and in the issuer, as Entra ID does.
TENANT_ID = '0b6a0f6e-52b7-4cb2-9a6b-3f3d3e0c6a11'
KEY_ID = 'test-key-1'


@dataclass
class Identity:
    """The person the provider signs in; `claims` are added to the ID token as they are."""

    subject: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grant:
    identity: Identity
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None


class FakeProvider:
    """State of the provider: the identity to sign in next and what the client sent."""

    def __init__(self, *, microsoft: bool = False) -> None:
        self.microsoft = microsoft
        self.key = RSAKey.generate_key(2048, parameters={'kid': KEY_ID})
        self.base_url = ''
        self.identity: Identity | None = None
        # When set, /authorize redirects back with this error code instead of a code.
        self.authorize_error: str | None = None
        # When set, ID tokens carry this audience instead of the client id.
        self.audience_override: str | None = None
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, Identity] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.lock = threading.Lock()

    @property
    def issuer(self) -> str:
        if self.microsoft:
            return f'{self.base_url}/{TENANT_ID}/v2.0'
        return self.base_url

    @property
    def metadata_url(self) -> str:
        return f'{self.base_url}/.well-known/openid-configuration'

    def metadata(self) -> dict[str, Any]:
        # Entra ID's multi-tenant discovery document names a placeholder instead of the tenant.
        issuer = f'{self.base_url}/{{tenantid}}/v2.0' if self.microsoft else self.base_url
        return {
            'issuer': issuer,
            'authorization_endpoint': f'{self.base_url}/authorize',
            'token_endpoint': f'{self.base_url}/token',
            'userinfo_endpoint': f'{self.base_url}/userinfo',
            'jwks_uri': f'{self.base_url}/jwks',
            'response_types_supported': ['code'],
            'subject_types_supported': ['pairwise'],
            'id_token_signing_alg_values_supported': ['RS256'],
            'scopes_supported': ['openid', 'email', 'profile'],
            'token_endpoint_auth_methods_supported': ['client_secret_basic', 'client_secret_post'],
            'code_challenge_methods_supported': ['S256'],
        }

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {'iss': self.issuer, 'sub': grant.identity.subject, 'aud': self.audience_override or grant.client_id,
                  'iat': now, 'exp': now + 300}
        if self.microsoft:
            claims['tid'] = TENANT_ID
        if grant.nonce:
            claims['nonce'] = grant.nonce
        claims.update(grant.identity.claims)
        return jwt.encode({'alg': 'RS256', 'kid': KEY_ID}, claims, self.key)


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header('Location', location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        provider = self.provider
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == '/.well-known/openid-configuration':
            self._json(200, provider.metadata())
        elif url.path == '/jwks':
            self._json(200, {'keys': [provider.key.as_dict(private=False)]})
        elif url.path == '/authorize':
            self._authorize(query)
        elif url.path == '/userinfo':
            token = self.headers.get('Authorization', '').removeprefix('Bearer ')
            identity = provider.access_tokens.get(token)
            if identity is None:
                self._json(401, {'error': 'invalid_token'})
                return
            self._json(200, {'sub': identity.subject, **identity.claims})
        else:
            self._json(404, {'error': 'not_found'})

    def _authorize(self, query: dict[str, str]) -> None:
        provider = self.provider
        provider.authorize_requests.append(query)
        redirect_uri = query.get('redirect_uri', '')
        if query.get('client_id') != CLIENT_ID or not redirect_uri:
            self._json(400, {'error': 'invalid_request'})
            return
        back = {'state': query['state']} if 'state' in query else {}
        if provider.authorize_error or provider.identity is None:
            back['error'] = provider.authorize_error or 'access_denied'
            self._redirect(f'{redirect_uri}?{urlencode(back)}')
            return
        code = secrets.token_urlsafe(24)
        with provider.lock:
            provider.grants[code] = Grant(identity=provider.identity, client_id=query['client_id'],
                                          redirect_uri=redirect_uri, nonce=query.get('nonce'),
                                          code_challenge=query.get('code_challenge'),
                                          code_challenge_method=query.get('code_challenge_method'))
        back['code'] = code
        self._redirect(f'{redirect_uri}?{urlencode(back)}')

    def do_POST(self) -> None:  # noqa: N802 (the base class's name)
        provider = self.provider
        if urlsplit(self.path).path != '/token':
            self._json(404, {'error': 'not_found'})
            return
        length = int(self.headers.get('Content-Length', '0'))
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
        provider.token_requests.append(form)
        client_id, client_secret = form.get('client_id'), form.get('client_secret')
        authorization = self.headers.get('Authorization', '')
        if authorization.startswith('Basic '):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(':')
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            self._json(401, {'error': 'invalid_client'})
            return
        with provider.lock:
            grant = provider.grants.pop(form.get('code', ''), None)
        if grant is None or form.get('grant_type') != 'authorization_code' \
                or form.get('redirect_uri') != grant.redirect_uri:
            self._json(400, {'error': 'invalid_grant'})
            return
        verifier = form.get('code_verifier', '')
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b'=').decode()
        if grant.code_challenge_method != 'S256' or challenge != grant.code_challenge:
            self._json(400, {'error': 'invalid_grant', 'error_description': 'PKCE verification failed'})
            return
        access_token = secrets.token_urlsafe(24)
        provider.access_tokens[access_token] = grant.identity
        self._json(200, {'access_token': access_token, 'token_type': 'Bearer', 'expires_in': 300,
                         'scope': 'openid email profile', 'id_token': provider.id_token(grant)})


def start_provider(*, microsoft: bool = False) -> tuple[FakeProvider, ThreadingHTTPServer]:
    """Serve a new provider on a free port of 127.0.0.1; stop it with `server.shutdown()`."""
    provider = FakeProvider(microsoft=microsoft)
    handler = type('Handler', (_Handler,), {'provider': provider})
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    provider.base_url = f'http://127.0.0.1:{server.server_address[1]}'
    threading.Thread(target=server.serve_forever, name='fake-oidc-provider', daemon=True).start()
    return provider, server
