"""Log output: plain text or one JSON object per line, and the id of the HTTP request each record belongs to.

Every HTTP request gets an id: the caller's `X-Request-ID` header when it is a short plain token (as a
load balancer sends), else a new random one. The response carries it back in `X-Request-ID`, and
every record logged while the request is served carries it as `request_id`. Records logged outside
a request (websocket events, scheduler jobs) have `-`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID_HEADER = 'x-request-id'
TEXT_FORMAT = '%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s'
# The form an incoming request id must have; any other is replaced, so ids stay safe to log.
VALID_REQUEST_ID = re.compile(r'[A-Za-z0-9._-]{1,64}')
NO_REQUEST = '-'

request_id_var: ContextVar[str | None] = ContextVar('request_id', default=None)


def request_id_from(incoming: str | None) -> str:
    """Return the caller's request id when it is a plain token of at most 64 characters, else a new one."""
    if incoming and VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or NO_REQUEST
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON: time (UTC), level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            'time': datetime.fromtimestamp(record.created, UTC).isoformat(timespec='milliseconds'),
            'level': record.levelname,
            'logger': record.name,
            'message': record.getMessage(),
            'request_id': getattr(record, 'request_id', NO_REQUEST),
        }
        if record.exc_info:
            entry['exception'] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str = 'text') -> None:
    """Send every record of level INFO and above to standard error, as text or as JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == 'json' else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
