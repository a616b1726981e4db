"""Security headers and a request id on every HTTP response, a request body limit for each route, and the
session check of the upload route that NiceGUI creates for each `ui.upload`.

`SecurityMiddleware` is a plain ASGI wrapper instead of Starlette's BaseHTTPMiddleware, so request and
response bodies pass through it chunk by chunk, without buffering and without an extra task per request.
It wraps the whole app, including the upload file requests that `uploads.FileRequests` serves in front
of NiceGUI's middleware.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Callable

from nicegui import Client, app
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from ..config import Settings, get_settings
from ..services import sessions
from ..services.studies import MAX_PRIOR_REPORT_BYTES
from .uploads import FILE_PATH

logger = logging.getLogger(__name__)

# The browser tests fail on any violation that Chromium reports in the console, and with NiceGUI 3.18
# they needed every source below except ws: and wss:. NiceGUI's page template has inline scripts and
# styles, and Quasar and Tailwind add styles at run time, hence 'unsafe-inline'. Vue compiles the
# element templates in the browser, hence 'unsafe-eval'. Quasar's uploader previews a chosen image as a
# blob: URL. Chromium lets 'self' cover the page's own websocket, but MDN's connect-src page notes that
# not every browser does, so ws: and wss: are listed too. The web app manifest and the service worker
# (api/pwa.py) come from the app's own origin, and manifest-src and worker-src allow nothing else.
CONTENT_SECURITY_POLICY = '; '.join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' blob:",
    "font-src 'self'",
    "connect-src 'self' ws: wss:",
    "manifest-src 'self'",
    "worker-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
    "form-action 'self'",
])
SECURITY_HEADERS = {
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'x-frame-options': 'DENY',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
}
# Sent only on responses to HTTPS requests, because browsers ignore it over plain HTTP.
STRICT_TRANSPORT_SECURITY = 'max-age=31536000; includeSubDomains'

# Request body limits in bytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
STRIPE_WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
# ui.upload sends one file as multipart/form-data, so the body is the file plus the part headers and
# boundaries. 64 KiB of room also covers a long file name.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Each announced file is a JSON object with its name and size. For a CD whose folders and files are named
# after three 50-character DICOM UIDs, the object takes about 211 bytes, so 5,000 of them are 1.05 MB,
# just over the default limit. 1 KiB per file leaves room for longer names.
ANNOUNCED_FILE_BYTES = 1024
ANNOUNCEMENT_ENVELOPE_BYTES = 1024

NICEGUI_UPLOAD_PATH = re.compile(r'/_nicegui/client/(?P<client_id>[^/]+)/upload/[^/]+')
START_UPLOAD_PATH = re.compile(r'/api/exams/[^/]+/uploads')
STRIPE_WEBHOOK_PATH = '/api/stripe/webhook'


def max_body_bytes(path: str, settings: Settings) -> int:
    """Return the largest request body in bytes that the route at `path` accepts."""
    if FILE_PATH.fullmatch(path):
        return settings.max_file_bytes
    if NICEGUI_UPLOAD_PATH.fullmatch(path):
        # NOTE: every ui.upload gets this limit. Only the prior-report upload on the examination form exists now.
        return MAX_PRIOR_REPORT_BYTES + MULTIPART_OVERHEAD_BYTES
    if START_UPLOAD_PATH.fullmatch(path):
        return settings.max_files_per_upload * ANNOUNCED_FILE_BYTES + ANNOUNCEMENT_ENVELOPE_BYTES
    if path == STRIPE_WEBHOOK_PATH:
        return STRIPE_WEBHOOK_MAX_BODY_BYTES
    return DEFAULT_MAX_BODY_BYTES


def is_https(scope: Scope, headers: Headers, settings: Settings) -> bool:
    """Tell whether the browser sent the request over HTTPS, to this server or to the trusted proxy in front."""
    if scope.get('scheme') == 'https':
        return True
    if not settings.behind_https_proxy:
        return False
    # A proxy that appends to the list puts its value last, so the last value comes from the proxy next to us.
    forwarded = headers.get('x-forwarded-proto', '').split(',')[-1].strip().lower()
    return forwarded == 'https'


def _content_length(headers: Headers) -> int | None:
    value = headers.get('content-length')
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _too_large_response(limit: int) -> JSONResponse:
    return JSONResponse({'detail': f'The request body is larger than the limit of {limit:,} bytes.'},
                        status_code=413)


class SecurityMiddleware:
    """ASGI wrapper that adds the security headers to HTTP responses and enforces the body limit of each route."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.inner(scope, receive, send)
            return
        token = logs.request_id_var.set(None)
        try:
            await self._serve(scope, receive, send)
        finally:
            logs.request_id_var.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        headers = Headers(scope=scope)
        request_id = logs.request_id_from(headers.get(logs.REQUEST_ID_HEADER))
        logs.request_id_var.set(request_id)
        added = [(name.encode('latin-1'), value.encode('latin-1')) for name, value in SECURITY_HEADERS.items()]
        added.append((logs.REQUEST_ID_HEADER.encode('latin-1'), request_id.encode('latin-1')))
        if is_https(scope, headers, settings):
            added.append((b'strict-transport-security', STRICT_TRANSPORT_SECURITY.encode('latin-1')))

        async def send_with_headers(message: Message) -> None:
            if message['type'] == 'http.response.start':
                present = {name.lower() for name, _ in message.get('headers', [])}
                missing = [(name, value) for name, value in added if name not in present]
                message['headers'] = [*message.get('headers', []), *missing]
            await send(message)

        upload = NICEGUI_UPLOAD_PATH.fullmatch(scope['path'])
        if upload and not await _upload_comes_from_page_session(upload['client_id'], scope):
            await JSONResponse({'detail': 'Not found'}, status_code=404)(scope, receive, send_with_headers)
            return

        limit = max_body_bytes(scope['path'], settings)
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            logger.warning('%s %s rejected: the body of %d bytes is larger than the limit of %d bytes',
                           scope['method'], scope['path'], declared, limit)
            await _too_large_response(limit)(scope, receive, send_with_headers)
            return

        await LimitedRequest(self.inner, limit)(scope, receive, send_with_headers)


async def _upload_comes_from_page_session(client_id: str, scope: Scope) -> bool:
    """Tell whether a file sent to a page's ui.upload comes with that page's own, still live, session.

    NiceGUI routes such a file to the page by the client id in the URL alone, and the page's handler
    then acts as the page's signed-in user. So the request must carry the same session cookie as the
    request that opened the page, and that session must not have ended since.
    """
    client = Client.instances.get(client_id)
    page_request = client.request if client is not None else None
    page_token = page_request.cookies.get(sessions.COOKIE_NAME) if page_request is not None else None
    caller_token = Request(scope).cookies.get(sessions.COOKIE_NAME)
    if not page_token or not caller_token or not hmac.compare_digest(page_token, caller_token):
        logger.warning('upload to page %s rejected: the request does not come from the page\'s session', client_id)
        return False
    if await asyncio.to_thread(sessions.resolve, caller_token) is None:
        logger.info('upload to page %s rejected: its session has ended', client_id)
        return False
    return True


class LimitedRequest:
    """One request whose body is cut off once it grows beyond `limit` bytes while it streams in.

    At that point the client gets a 413 response (unless the app already started its response), and
    the app receives `http.disconnect`, as if the client had gone away. So the app stops reading and
    cleans up as it does for a lost connection, and its own response is dropped.
    """

    def __init__(self, inner: ASGIApp, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.received_bytes = 0
        self.cut_off = False
        self.response_started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def limited_receive() -> Message:
            if self.cut_off:
                return {'type': 'http.disconnect'}
            message = await receive()
            if message['type'] != 'http.request':
                return message
            self.received_bytes += len(message.get('body', b''))
            if self.received_bytes <= self.limit:
                return message
            await self._cut_off(scope, receive, send)
            return {'type': 'http.disconnect'}

        async def app_send(message: Message) -> None:
            if self.cut_off:
                return  # the client already has the 413 response, or a truncated one
            if message['type'] == 'http.response.start':
                self.response_started = True
            await send(message)

        try:
            await self.inner(scope, limited_receive, app_send)
        except ClientDisconnect:
            if not self.cut_off:
                raise

    async def _cut_off(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.cut_off = True
        logger.warning('%s %s cut off: the body grew beyond the limit of %d bytes while streaming',
                       scope['method'], scope['path'], self.limit)
        if not self.response_started:
            await _too_large_response(self.limit)(scope, receive, send)


def install_security_middleware() -> None:
    """Wrap the app's middleware stack in `SecurityMiddleware`, once per process.

    NOTE: call this after `register_upload_routes`, which wraps the stack in `FileRequests`, so that
    `SecurityMiddleware` is the outer wrapper and also covers the upload file requests.
    """
    if getattr(app, '_has_security_middleware', False):
        return
    build_stack: Callable[[], ASGIApp] = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityMiddleware(build_stack())  # type: ignore[method-assign]
    app._has_security_middleware = True  # type: ignore[attr-defined]
