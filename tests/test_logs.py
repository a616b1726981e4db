"""Log output: JSON lines for log collectors, and the request id on responses and records."""

from __future__ import annotations

import json
import logging

from nicegui.testing import User

from secondopinion import logs


def _record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord('secondopinion.test', logging.ERROR, __file__, 1, message, args, exc_info)


def test_json_line_has_the_fields_and_the_exception():
    try:
        raise ValueError('broken upload')
    except ValueError as error:
        record = _record('upload %s failed', 'u1', exc_info=(type(error), error, error.__traceback__))
    logs.RequestIdFilter().filter(record)
    line = logs.JsonFormatter().format(record)
    assert '\n' not in line
    entry = json.loads(line)
    assert entry['level'] == 'ERROR'
    assert entry['logger'] == 'secondopinion.test'
    assert entry['message'] == 'upload u1 failed'
    assert entry['request_id'] == logs.NO_REQUEST
    assert entry['time'].endswith('+00:00')
    assert 'ValueError: broken upload' in entry['exception']


def test_incoming_request_id_kept_only_when_plain():
    assert logs.request_id_from('lb-7f3a.2') == 'lb-7f3a.2'
    for unsafe in ('', None, 'a' * 65, 'id with spaces', 'x\ny'):
        generated = logs.request_id_from(unsafe)
        assert generated != unsafe
        assert len(generated) == 32


async def test_responses_carry_a_request_id(user: User):
    first = await user.http_client.get('/healthz')
    second = await user.http_client.get('/healthz')
    assert len(first.headers['x-request-id']) == 32
    assert first.headers['x-request-id'] != second.headers['x-request-id']
    echoed = await user.http_client.get('/healthz', headers={'X-Request-ID': 'lb-12345'})
    assert echoed.headers['x-request-id'] == 'lb-12345'
    replaced = await user.http_client.get('/healthz', headers={'X-Request-ID': 'not <a> token'})
    assert replaced.headers['x-request-id'] != 'not <a> token'


async def test_records_logged_while_serving_carry_its_id(user: User, caplog):
    caplog.handler.addFilter(logs.RequestIdFilter())
    with caplog.at_level(logging.INFO, logger='secondopinion.services.sessions'):
        response = await user.http_client.get('/auth/session?ticket=made-up', headers={'X-Request-ID': 'req-42'})
    assert response.headers['x-request-id'] == 'req-42'
    rejected = [record for record in caplog.records if 'ticket rejected' in record.getMessage()]
    assert [record.request_id for record in rejected] == ['req-42']
