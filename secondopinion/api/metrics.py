"""The Prometheus scrape route `GET /metrics`, and the ASGI wrapper that counts and times every HTTP request.

With `metrics_token` set, a scrape must send `Authorization: Bearer <token>`. Without it the route is
open to anyone who can reach the app, so in production set the token or keep the route internal.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from nicegui import app
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import get_settings
from ..services import metrics
from .uploads import FILE_PATH

logger = logging.getLogger(__name__)

# `FileRequests` serves the upload file requests before Starlette's router, so no route object names them.
UPLOAD_FILE_ROUTE = '/api/uploads/{upload_id}/files/{index}'
# Any other method is counted as `other`, because a client may send any token as its method.
KNOWN_METHODS = frozenset({'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'})
# The status label of a request that ended without a response, such as one whose client went away.
NO_RESPONSE = 'none'
# At most one log line per this many seconds about rejected scrapes. The next line counts those in between.
REJECTION_LOG_INTERVAL_SECONDS = 60.0


def route_template(scope: Scope, path: str, root_path: str) -> str:
    """Return the template of the route that serves `path`, such as `/exams/{examination_id}`.

    `scope` is the request's scope after the app handled it. `path` and `root_path` are its values from
    before, because a mount (static files, for example) rewrites `root_path` for the app it wraps.
    """
    if FILE_PATH.fullmatch(path):
        return UPLOAD_FILE_ROUTE
    # FastAPI's router (0.165) stores the route it chose in the scope for its own routes, but not for
    # mounts and plain Starlette routes, which are looked up again here.
    route = scope.get('route')
    if route is None:
        route = _find_route({'type': 'http', 'path': path, 'root_path': root_path, 'method': scope['method']})
    return getattr(route, 'path_format', None) or metrics.UNMATCHED_ROUTE


def _find_route(scope: Scope) -> BaseRoute | None:
    """Return the route that Starlette's router picks for this scope: the first full match, else the first
    partial one, whose path matches but whose methods do not (a 405 response)."""
    partial = None
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


class RequestMetrics:
    """ASGI wrapper that counts every HTTP request by method, route template and status, and times it."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.inner(scope, receive, send)
            return
        started = time.perf_counter()
        path, root_path = scope['path'], scope.get('root_path', '')
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
            await send(message)

        try:
            await self.inner(scope, receive, send_noting_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            method = scope['method'] if scope['method'] in KNOWN_METHODS else 'other'
            metrics.record_request(method=method, route=route_template(scope, path, root_path),
                                   status=str(status) if status else NO_RESPONSE,
                                   seconds=time.perf_counter() - started)


class _RejectionLog:
    """Log rejected scrapes at most once per interval, with the count of those not logged in between."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unlogged = 0
        self.last_logged = float('-inf')

    def rejected(self, client: str) -> None:
        with self.lock:
            self.unlogged += 1
            now = time.monotonic()
            if now - self.last_logged < REJECTION_LOG_INTERVAL_SECONDS:
                return
            count, self.unlogged, self.last_logged = self.unlogged, 0, now
        logger.warning('GET /metrics from %s rejected: missing or wrong bearer token (%d rejection(s) since the '
                       'last line like this)', client, count)


_rejections = _RejectionLog()


def bearer_token_matches(authorization: str | None, expected: str) -> bool:
    """Tell whether an Authorization header carries the expected bearer token, comparing in constant time."""
    scheme, _, token = (authorization or '').partition(' ')
    if scheme.lower() != 'bearer':
        return False
    return hmac.compare_digest(token.strip().encode('utf-8'), expected.encode('utf-8'))


def register_metrics_route() -> None:
    @app.get('/metrics', include_in_schema=False)
    def scrape(request: Request) -> Response:
        # A plain `def`, so FastAPI runs it in its thread pool: the outbox count is a database query.
        token = get_settings().metrics_token
        expected = token.get_secret_value() if token is not None else ''
        if expected and not bearer_token_matches(request.headers.get('authorization'), expected):
            _rejections.rejected(request.client.host if request.client else 'an unknown address')
            return Response('A valid bearer token is required.\n', status_code=401, media_type='text/plain',
                            headers={'WWW-Authenticate': 'Bearer'})
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE,
                        headers={'Cache-Control': 'no-store'})


def install_request_metrics() -> None:
    """Wrap the app's middleware stack in `RequestMetrics`, once per process.

    NOTE: call this after `install_security_middleware`, so that this wrapper is the outermost one and
    also counts the responses that `SecurityMiddleware` sends itself (413, 404 for a foreign upload).
    """
    if getattr(app, '_has_request_metrics', False):
        return
    build_stack: Callable[[], ASGIApp] = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestMetrics(build_stack())  # type: ignore[method-assign]
    app._has_request_metrics = True  # type: ignore[attr-defined]
