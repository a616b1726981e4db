"""Benchmark: a large study sent through the app's upload routes against a bare streaming endpoint, in one run.

Run with `.venv/bin/python -m bench.upload [--megabytes 1024] [--runs 3]`. It writes a synthetic CT
series of 512 x 512 slices. It starts the app and a bare Starlette app that streams each request body
to a file on the same disk, both on loopback. Then it sends the series to each with the same client,
three files at a time, as the page's uploader does. The app's last upload is then committed, which
parses, stores and indexes every file.

It reports, as medians over the runs: the send time to each server and their throughput ratio
(goal: app at least 0.8 of bare), the commit time, and the app's peak resident memory growth over
its memory before the first upload, sampled every 20 ms during sending and the commit (goal: below
100 MiB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .common import (AppServer, PeakMemory, Result, format_table, free_port, make_series, median, register_patient,
                     rss_bytes, session_cookie, stop_process, use_data_dir, wait_for)

CONCURRENCY = 3

BARE_APP = textwrap.dedent('''
    import sys
    from pathlib import Path
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    TARGET = Path(sys.argv[1])

    async def put_file(request):
        path = TARGET / request.path_params['index']
        with path.open('wb') as output:
            async for chunk in request.stream():
                output.write(chunk)
        return Response(status_code=204)

    app = Starlette(routes=[Route('/files/{index}', put_file, methods=['PUT'])])

    if __name__ == '__main__':
        import uvicorn
        uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')
''')


def send_all(paths: list[Path], url_for: Callable[[int], str], client: httpx.Client) -> float:
    """PUT every file, CONCURRENCY at a time, streaming each from disk; return the seconds taken."""
    def send(index: int) -> None:
        with paths[index].open('rb') as body:
            response = client.put(url_for(index), content=body,
                                  headers={'Content-Length': str(paths[index].stat().st_size)})
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, range(len(paths))))
    return time.perf_counter() - started


def start_upload(client: httpx.Client, app_url: str, examination_id: str, paths: list[Path]) -> str:
    """Announce the files to the app's upload route and return the upload id."""
    announced = {'folder': False, 'files': [{'name': path.name, 'size': path.stat().st_size} for path in paths]}
    response = client.post(f'{app_url}/api/exams/{examination_id}/uploads', json=announced)
    response.raise_for_status()
    return response.json()['upload_id']


def commit_upload(client: httpx.Client, app_url: str, upload_id: str, expected: int) -> float:
    """Commit an upload whose files were all sent; return the seconds the commit took."""
    started = time.perf_counter()
    response = client.post(f'{app_url}/api/uploads/{upload_id}/commit')
    response.raise_for_status()
    seconds = time.perf_counter() - started
    if response.json()['accepted'] != expected:
        raise RuntimeError(f'the app accepted {response.json()["accepted"]} of {expected} files: {response.text}')
    return seconds


def run(*, megabytes: int, runs: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-upload-'))
    servers: list[AppServer] = []
    bare: subprocess.Popen | None = None
    try:
        (work / 'series').mkdir()
        sources = make_series(work / 'series', megabytes=megabytes)
        total_bytes = sum(path.stat().st_size for path in sources)
        print(f'upload: series of {len(sources)} files, {total_bytes / 2**20:.0f} MiB', flush=True)

        app = AppServer(work, {'SECONDOPINION_MAX_FILES_PER_UPLOAD': str(len(sources) + 1)})
        servers.append(app)
        bare_port = free_port()
        (work / 'bare.py').write_text(BARE_APP)
        (work / 'bare-target').mkdir()
        bare = subprocess.Popen([sys.executable, str(work / 'bare.py'), str(work / 'bare-target'), str(bare_port)],
                                cwd=work)
        bare_url = f'http://127.0.0.1:{bare_port}'
        wait_for(f'{bare_url}/files/none', bare)

        use_data_dir(app.data_dir)
        from secondopinion.services import accounts, examinations

        user_id = register_patient('bench-upload@example.org')
        actor = accounts.get_actor(user_id)
        assert actor is not None

        bare_times: list[float] = []
        app_times: list[float] = []
        app_before = rss_bytes(app.pid)
        commit_seconds = 0.0
        with httpx.Client(timeout=600, cookies=session_cookie(user_id), trust_env=False) as client, \
                PeakMemory(app.pid) as memory:
            for run_number in range(runs):
                # Alternate which server goes first, and flush earlier writes before each timing, so
                # that neither pays for the other's dirty pages being written back.
                for target in (('bare', 'app') if run_number % 2 == 0 else ('app', 'bare')):
                    os.sync()
                    if target == 'bare':
                        bare_times.append(send_all(sources, lambda index: f'{bare_url}/files/{index}', client))
                        shutil.rmtree(work / 'bare-target')
                        (work / 'bare-target').mkdir()
                        continue
                    exam_id = examinations.create_draft(actor=actor)
                    upload_id = start_upload(client, app.url, exam_id, sources)
                    app_times.append(send_all(
                        sources, lambda index: f'{app.url}/api/uploads/{upload_id}/files/{index}', client))
                    if run_number == runs - 1:
                        os.sync()
                        commit_seconds = commit_upload(client, app.url, upload_id, len(sources))
                    else:
                        client.delete(f'{app.url}/api/uploads/{upload_id}').raise_for_status()
                print(f'upload run {run_number + 1}: bare {bare_times[-1]:.2f} s, app {app_times[-1]:.2f} s',
                      flush=True)

        mib = total_bytes / 2**20
        bare_rate, app_rate = mib / median(bare_times), mib / median(app_times)
        note = f'{len(sources)} files, {mib:.0f} MiB, median of {runs}'
        return [
            Result('upload', 'throughput', app_rate, 'MiB/s', bare_rate, 'higher', 0.8, note),
            Result('upload', 'peak server RSS growth', (memory.peak - app_before) / 2**20, 'MiB', None, 'max', 100,
                   f'before {app_before / 2**20:.0f} MiB'),
            Result('upload', 'commit (parse, store, index)', len(sources) / commit_seconds, 'files/s',
                   note=f'{commit_seconds:.1f} s'),
        ]
    finally:
        if bare is not None:
            stop_process(bare)
        for server in servers:
            server.stop()
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--megabytes', type=int, default=1024, help='size of the synthetic series in MiB')
    parser.add_argument('--runs', type=int, default=3, help='send runs per server; medians are reported')
    args = parser.parse_args()
    print(format_table(run(megabytes=args.megabytes, runs=args.runs)))


if __name__ == '__main__':
    main()
