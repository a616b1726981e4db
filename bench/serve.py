"""Serve the app for the benchmarks, with three routes under /_bench that the app itself never serves.

- `GET /_bench/queries?path=/doctor` returns how many SQL statements the last request for that path
  executed, counted by a SQLAlchemy `before_cursor_execute` listener while the request ran. Statements
  of background work (the notification scheduler, board timers) are not counted, because the count
  follows the request's context variables.
- `/_bench/bare` is a bare NiceGUI page (one heading and one button), the baseline for page timings.
- `/_bench/frame` is the app's page frame for a signed-in patient (session check, header, navigation,
  language menu) around one heading: what every app page costs before its own content.
- `POST /_bench/pay/{provider_ref}?user_id=N` completes a test checkout inside the server process, as
  the test checkout page does, so that the change event reaches the boards of this process.

Run by bench/common.py's AppServer with the same environment as `python main.py`.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nicegui import app, ui  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

_statements: ContextVar[list[int] | None] = ContextVar('bench_statements', default=None)
_counts_by_path: dict[str, int] = {}


@event.listens_for(Engine, 'before_cursor_execute')
def _count_statement(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
    counter = _statements.get()
    if counter is not None:
        counter[0] += 1


class StatementCounter:
    """ASGI middleware that counts the SQL statements of each HTTP request and keeps the last count per path."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http' or scope['path'].startswith('/_bench/queries'):
            await self.inner(scope, receive, send)
            return
        counter = [0]
        token = _statements.set(counter)
        try:
            await self.inner(scope, receive, send)
        finally:
            _statements.reset(token)
            _counts_by_path[scope['path']] = counter[0]


@app.get('/_bench/queries', include_in_schema=False)
def statement_count(path: str) -> dict[str, int | None]:
    return {'count': _counts_by_path.get(path)}


@ui.page('/_bench/bare')
def bare_page() -> None:
    ui.label('Bare page').classes('text-h5')
    ui.button('Button')


@ui.page('/_bench/frame')
def frame_page() -> None:
    from secondopinion.models import Role
    from secondopinion.pages.layout import frame, require_actor

    actor = require_actor(Role.PATIENT)
    if actor is None:
        return
    with frame('Frame', actor):
        ui.label('Frame only').classes('text-h5')


@app.post('/_bench/pay/{provider_ref}', include_in_schema=False)
def complete_payment(provider_ref: str, user_id: int) -> dict[str, str]:
    from secondopinion.services import accounts, payments

    actor = accounts.get_actor(user_id)
    assert actor is not None
    return {'examination_id': payments.complete_test_checkout(actor=actor, provider_ref=provider_ref)}


def _install_counter_after_setup() -> None:
    """Add the counter after the app's own middleware, so that it wraps them and counts their statements too."""
    from secondopinion import server

    original_setup = server.setup

    def setup() -> None:
        original_setup()
        app.add_middleware(StatementCounter)

    server.setup = setup


if __name__ in {'__main__', '__mp_main__'}:
    from secondopinion.cli import main

    _install_counter_after_setup()
    main()
