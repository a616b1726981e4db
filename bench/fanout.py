"""Benchmark: how fast a newly paid case reaches many open doctor boards, and the server memory per board.

Run with `.venv/bin/python -m bench.fanout [--clients 100] [--rounds 5] [--pending 20]`. It starts the
app, seeds `pending` paid cases, and opens the doctor board (`/doctor`) `clients` times. Each is a
simulated browser tab: an HTTP GET of the page with a signed-in doctor's session cookie, then the
Socket.IO websocket connection that NiceGUI's page script opens, with the client id and handshake
from the page. No JavaScript runs, so a board costs the server what a real tab costs, and the
benchmark process stays light enough for 2 cores.

Each round pays one more case through `/_bench/pay` (bench/serve.py), which runs the test checkout
inside the server process. The time of a board is from just before that request to the first
`update` message whose content contains the new case's clinical question. It reports the median and
p95 over all boards and rounds (goal: p95 at most 1 s), and the server's resident memory growth per
connected board (goal: at most 2 MiB).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import socketio

from .common import (PASSWORD, AppServer, Result, cookie_header, format_table, median, percentile, register_patient,
                     rss_bytes, session_cookie, use_data_dir)

QUERY_PATTERN = re.compile(r'query: (\{.*?\}),\n')
SETTLE_SECONDS = 2.0


def create_doctor(email: str) -> int:
    from secondopinion.services import accounts

    admin_info = accounts.create_admin(full_name='Bench Admin', email=f'admin-{email}', password=PASSWORD)
    admin = accounts.get_actor(admin_info.user_id)
    assert admin is not None
    info = accounts.create_doctor(actor=admin, full_name='Dr. Bench', email=email, password=PASSWORD,
                                  license_number='BENCH-1', specialty='Radiology')
    return info.user_id


def prepare_checkout(patient_user_id: int, question: str) -> str:
    """Create a submitted case whose checkout is open and return the checkout's provider reference."""
    from secondopinion.services import accounts, examinations, payments

    patient = accounts.get_actor(patient_user_id)
    assert patient is not None
    exam_id = examinations.create_draft(actor=patient)
    examinations.add_link(actor=patient, examination_id=exam_id, url='https://images.example.org/study/1')
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question=question)
    examinations.submit(actor=patient, examination_id=exam_id)
    return payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]


class BoardTab:
    """One simulated browser tab on the doctor board: the page request, then NiceGUI's websocket."""

    def __init__(self, app_url: str, cookies: dict[str, str]) -> None:
        self.app_url = app_url
        self.cookies = cookies
        self.socket = socketio.AsyncClient(reconnection=False)
        self.watched: str | None = None
        self.seen = asyncio.Event()
        self.seen_at = 0.0
        self.socket.on('update', self._on_update)

    async def _on_update(self, message: dict) -> None:
        if self.watched is not None and not self.seen.is_set() and self.watched in json.dumps(message):
            self.seen_at = time.perf_counter()
            self.seen.set()

    def watch(self, text: str) -> None:
        self.watched = text
        self.seen.clear()

    async def open(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f'{self.app_url}/doctor', headers=cookie_header(self.cookies))
        response.raise_for_status()
        match = QUERY_PATTERN.search(response.text)
        if match is None:
            raise RuntimeError('the board page has no socket query; is the doctor signed in?')
        # NiceGUI writes the query as a Python dict literal, and the browser sends booleans as 'true'/'false'.
        query = {name: str(value).lower() if isinstance(value, bool) else value
                 for name, value in ast.literal_eval(match.group(1)).items()}
        query.update({'document_id': f'bench-{id(self)}', 'tab_id': f'bench-tab-{id(self)}', 'old_tab_id': ''})
        await self.socket.connect(f'{self.app_url}?{httpx.QueryParams(query)}', headers=cookie_header(self.cookies),
                                  transports=['websocket'], socketio_path='/_nicegui_ws/socket.io')
        if query.get('implicit_handshake') != 'true':
            if not await self.socket.call('handshake', query, timeout=10):
                raise RuntimeError('NiceGUI rejected the handshake of a board tab')

    async def close(self) -> None:
        await self.socket.disconnect()


async def measure(app: AppServer, doctor_user_id: int, patient_user_id: int, clients: int,
                  rounds: int) -> tuple[list[float], float]:
    tabs = [BoardTab(app.url, session_cookie(doctor_user_id)) for _ in range(clients)]
    checkouts = [(question, prepare_checkout(patient_user_id, question))
                 for question in (f'Fan-out round {number} marker' for number in range(rounds))]
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
        # One board first, so that the memory baseline includes what the first page load allocates once.
        first = BoardTab(app.url, session_cookie(doctor_user_id))
        await first.open(http)
        await asyncio.sleep(SETTLE_SECONDS)
        before = rss_bytes(app.pid)
        for tab in tabs:
            await tab.open(http)
        await asyncio.sleep(SETTLE_SECONDS)
        per_client = (rss_bytes(app.pid) - before) / clients
        try:
            for question, provider_ref in checkouts:
                for tab in tabs:
                    tab.watch(question)
                started = time.perf_counter()
                response = await http.post(f'{app.url}/_bench/pay/{provider_ref}',
                                           params={'user_id': patient_user_id})
                response.raise_for_status()
                paid = time.perf_counter() - started
                await asyncio.wait_for(asyncio.gather(*(tab.seen.wait() for tab in tabs)), timeout=60)
                latencies.extend(tab.seen_at - started for tab in tabs)
                print(f'fan-out round: payment request {paid * 1000:.0f} ms, boards median '
                      f'{median(latencies[-clients:]) * 1000:.0f} ms, max {max(latencies[-clients:]) * 1000:.0f} ms',
                      flush=True)
        finally:
            await asyncio.gather(*(tab.close() for tab in [first, *tabs]), return_exceptions=True)
    return latencies, per_client


def run(*, clients: int, rounds: int, pending: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-fanout-'))
    app: AppServer | None = None
    try:
        app = AppServer(work)
        use_data_dir(app.data_dir)
        from secondopinion.services import accounts, payments

        doctor_user_id = create_doctor('bench-doctor@example.org')
        patient_user_id = register_patient('bench-fanout@example.org')
        patient = accounts.get_actor(patient_user_id)
        for number in range(pending):
            payments.complete_test_checkout(actor=patient,
                                            provider_ref=prepare_checkout(patient_user_id, f'Seeded case {number}'))

        latencies, per_client = asyncio.run(measure(app, doctor_user_id, patient_user_id, clients, rounds))
        note = f'{clients} boards, {rounds} rounds, {pending} cases already on the board'
        return [
            Result('board fan-out', 'time to every board, median', median(latencies), 's', note=note),
            Result('board fan-out', 'time to every board, p95', percentile(latencies, 0.95), 's', None, 'max', 1.0),
            Result('board fan-out', 'server memory per board', per_client / 2**20, 'MiB', None, 'max', 2.0),
        ]
    finally:
        if app is not None:
            app.stop()
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clients', type=int, default=100, help='open board tabs')
    parser.add_argument('--rounds', type=int, default=5, help='cases paid one after the other')
    parser.add_argument('--pending', type=int, default=20, help='paid cases on the board before the rounds')
    args = parser.parse_args()
    print(format_table(run(clients=args.clients, rounds=args.rounds, pending=args.pending)))


if __name__ == '__main__':
    main()
