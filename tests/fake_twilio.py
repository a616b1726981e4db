"""A small fake of Twilio's Messages API on loopback, for driving the real `twilio` library in tests.

It checks the account's basic authentication, records each message and responds as Twilio does
(201 with the message resource). Statuses queued in `fail_next` are returned instead, in Twilio's
error shape, to test retries.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_SID = 'AC' + '0' * 32
AUTH_TOKEN = 'fake-twilio-auth-token'
SENDER = '+41445551234'


@dataclass
class FakeTwilio:
    messages: list[dict[str, str]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_POST(self) -> None:  # noqa: N802 (the base class's name)
        expected = 'Basic ' + base64.b64encode(f'{ACCOUNT_SID}:{AUTH_TOKEN}'.encode()).decode()
        if self.headers.get('Authorization') != expected:
            self._send(401, {'code': 20003, 'message': 'Authenticate', 'status': 401})
            return
        if self.path != f'/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json':
            self._send(404, {'code': 20404, 'message': 'The requested resource was not found', 'status': 404})
            return
        length = int(self.headers.get('Content-Length') or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        fake = self.server.fake
        with fake.lock:
            if fake.fail_next:
                status = fake.fail_next.pop(0)
                self._send(status, {'code': 20500, 'message': 'Internal Server Error', 'status': status})
                return
            message = {'sid': 'SM' + uuid.uuid4().hex, 'account_sid': ACCOUNT_SID, 'to': form.get('To', ''),
                       'from': form.get('From', ''), 'body': form.get('Body', ''), 'status': 'queued',
                       'messaging_service_sid': form.get('MessagingServiceSid')}
            fake.messages.append(message)
        self._send(201, message)

    def _send(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTwilio


def start_fake_twilio() -> tuple[FakeTwilio, _Server, str]:
    """Serve a FakeTwilio on a free loopback port; return it, the server (stop with shutdown()) and its base URL."""
    server = _Server(('127.0.0.1', 0), _Handler)
    server.fake = FakeTwilio()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.fake, server, f'http://127.0.0.1:{server.server_address[1]}'
