"""A small fake of Stripe's HTTP API on loopback, for driving the real `stripe` library in tests.

It implements the calls the app makes: create and retrieve Checkout Sessions, and create refunds. It
checks the API key, honours idempotency keys, and returns errors in Stripe's JSON shape. Tests
complete a session as a paying patient would with `complete()`, which returns the
`checkout.session.completed` event that Stripe would send, ready to be signed with `sign()`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = 'sk_test_fake_secret_key'
WEBHOOK_SECRET = 'whsec_fake_webhook_secret'


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Return a Stripe-Signature header for the payload, as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f'{timestamp}.'.encode() + payload, hashlib.sha256).hexdigest()
    return f't={timestamp},v1={digest}'


def event(event_type: str, data_object: dict[str, Any], event_id: str | None = None) -> bytes:
    """Return the JSON body of a Stripe event of this type about this object."""
    body = {'id': event_id or f'evt_{uuid.uuid4().hex}', 'object': 'event', 'type': event_type,
            'api_version': '2025-01-27', 'created': int(time.time()), 'livemode': False,
            'data': {'object': data_object}, 'pending_webhooks': 1, 'request': {'id': None}}
    return json.dumps(body).encode()


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn Stripe's form encoding (line_items[0][price_data][currency]=eur) back into nested values."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace(']', '').split('[')
        node = root
        for part, following in zip(parts, parts[1:]):
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


@dataclass
class FakeStripe:
    """The fake's state: sessions by id, refunds, and every request it received."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)  # error statuses returned for the next requests, in order
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ''

    def complete(self, session_id: str, *, payment_status: str = 'paid') -> dict[str, Any]:
        """Mark a session as paid, as when the patient pays, and return the session object."""
        with self.lock:
            session = self.sessions[session_id]
            session.update(status='complete', payment_status=payment_status,
                           payment_intent=session['payment_intent'] or f'pi_{uuid.uuid4().hex[:24]}')
            return dict(session)

    def handle(self, method: str, path: str, form: dict[str, Any], idempotency_key: str | None) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, _error('api_error', f'Fake failure with status {status}.')
            if idempotency_key and (method, path, idempotency_key) in self.idempotent:
                return self.idempotent[(method, path, idempotency_key)]
            answer = self._route(method, path, form)
            if idempotency_key and answer[0] == 200:
                self.idempotent[(method, path, idempotency_key)] = answer
            return answer

    def _route(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, Any]:
        if method == 'POST' and path == '/v1/checkout/sessions':
            return 200, self._create_session(form)
        if method == 'GET' and path.startswith('/v1/checkout/sessions/'):
            session = self.sessions.get(path.rsplit('/', 1)[1])
            if session is None:
                return 404, _error('invalid_request_error', 'No such checkout.session')
            return 200, session
        if method == 'POST' and path.startswith('/v1/checkout/sessions/') and path.endswith('/expire'):
            session = self.sessions.get(path.split('/')[-2])
            if session is None or session['status'] != 'open':
                return 400, _error('invalid_request_error', 'Only Checkout Sessions with a status of open can be expired.')
            session['status'] = 'expired'
            return 200, session
        if method == 'POST' and path == '/v1/refunds':
            return self._create_refund(form)
        return 404, _error('invalid_request_error', f'Unrecognized request URL ({method}: {path}).')

    def _create_session(self, form: dict[str, Any]) -> dict[str, Any]:
        session_id = f'cs_test_{uuid.uuid4().hex}'
        items = form.get('line_items', {})
        total = sum(int(item['price_data']['unit_amount']) * int(item.get('quantity', 1)) for item in items.values())
        currency = next(iter(items.values()))['price_data']['currency'] if items else 'eur'
        session = {'id': session_id, 'object': 'checkout.session', 'mode': form.get('mode'),
                   'url': f'{self.base_url}/c/pay/{session_id}', 'status': 'open', 'payment_status': 'unpaid',
                   'amount_total': total, 'currency': currency, 'payment_intent': None,
                   'client_reference_id': form.get('client_reference_id'), 'metadata': form.get('metadata', {}),
                   'success_url': form.get('success_url'), 'cancel_url': form.get('cancel_url'),
                   'customer_email': form.get('customer_email'), 'line_items_sent': items}
        self.sessions[session_id] = session
        return session

    def _create_refund(self, form: dict[str, Any]) -> tuple[int, Any]:
        intent = form.get('payment_intent')
        paid = [session for session in self.sessions.values() if session['payment_intent'] == intent and intent]
        if not paid:
            return 400, _error('invalid_request_error', f'No such payment_intent: {intent}')
        refund = {'id': f're_{uuid.uuid4().hex[:24]}', 'object': 'refund', 'payment_intent': intent,
                  'amount': int(form.get('amount', paid[0]['amount_total'])), 'currency': paid[0]['currency'],
                  'status': 'succeeded'}
        self.refunds.append(refund)
        return 200, refund


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {'error': {'type': error_type, 'message': message}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def _answer(self, method: str) -> None:
        if self.headers.get('Authorization') != f'Bearer {API_KEY}':
            self._send(401, _error('invalid_request_error', 'Invalid API Key provided.'))
            return
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length).decode() if length else ''
        url = urlsplit(self.path)
        form = _nest(parse_qsl(body or url.query, keep_blank_values=True))
        status, answer = self.server.fake.handle(method, url.path, form, self.headers.get('Idempotency-Key'))
        self._send(status, answer)

    def _send(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Request-Id', f'req_{uuid.uuid4().hex[:14]}')
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        self._answer('GET')

    def do_POST(self) -> None:  # noqa: N802
        self._answer('POST')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe


def start_fake_stripe() -> tuple[FakeStripe, _Server]:
    """Serve a new FakeStripe on a free loopback port in a background thread; stop it with server.shutdown()."""
    server = _Server(('127.0.0.1', 0), _Handler)
    server.fake = FakeStripe(base_url=f'http://127.0.0.1:{server.server_address[1]}')
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.fake, server
