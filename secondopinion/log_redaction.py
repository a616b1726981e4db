"""Keep link secrets out of the logs: the access log would otherwise show `?token=...` and `?ticket=...`."""

from __future__ import annotations

import logging
import re

_SECRET_PARAMETER = re.compile(r'([?&](?:token|ticket)=)[^&\s"]+')
REDACTED = 'REMOVED'
# uvicorn writes one line per request to this logger, with the path and query string among the arguments.
ACCESS_LOGGER = 'uvicorn.access'


def redact_url_secrets(text: str) -> str:
    return _SECRET_PARAMETER.sub(lambda match: match.group(1) + REDACTED, text)


class SecretParameterFilter(logging.Filter):
    """Replace the values of `token` and `ticket` query parameters in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_url_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url_secrets(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger once; later calls do nothing."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, SecretParameterFilter) for existing in logger.filters):
        logger.addFilter(SecretParameterFilter())
