"""Benchmark: a large study sent through the app's upload routes against a bare streaming endpoint, in one run.

Run with `.venv/bin/python bench/upload.py [--megabytes 1024] [--runs 3]`. It writes a synthetic CT
series of 512 x 512 slices. It starts the app (`main.py`) and a bare Starlette app that streams each
request body to a file on the same disk, both on loopback. Then it sends the series to each with the
same client, three files at a time, as the page's uploader does. The app's upload is then committed
once, which parses, stores and indexes every file.

It prints, as medians over the runs: the send time to each server and their throughput ratio
(app / bare, 1.0 means as fast), the commit time, and the app's peak resident memory growth over
its memory before the upload, sampled every 20 ms, during sending and the commit.
Signing in needs Debian's Chromium and the playwright package, as the browser tests do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SLICE_PIXELS = 512
CONCURRENCY = 3
PASSWORD = 'benchmark password'
EMAIL = 'bench-upload@example.org'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']

BARE_APP = textwrap.dedent('''
    import os, sys
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


def make_series(folder: Path, megabytes: int) -> list[Path]:
    """Write 512 x 512 16-bit CT slices until they add up to `megabytes` MiB."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    template = dcmread(get_testdata_file('CT_small.dcm'))
    template.Rows = template.Columns = SLICE_PIXELS
    template.StudyInstanceUID, template.SeriesInstanceUID = generate_uid(), generate_uid()
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 2000, size=(SLICE_PIXELS, SLICE_PIXELS), dtype=np.int16)
    paths: list[Path] = []
    total = 0
    while total < megabytes * 1024 * 1024:
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        template.InstanceNumber = len(paths) + 1
        template.PixelData = np.roll(pixels, len(paths), axis=0).tobytes()
        path = folder / f'IM{len(paths) + 1:06d}'
        template.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'{process.args} exited with code {process.returncode}')
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # the server is up, even if this path returns an error status
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f'{url} did not answer within {timeout:.0f} s')


def rss_bytes(pid: int) -> int:
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Sample a process's resident memory in a thread and keep the highest value seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


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


def session_cookies(base_url: str) -> dict[str, str]:
    """Sign in as the benchmark patient in headless Chromium and return the session cookies."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path='/usr/bin/chromium', headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(base_url=base_url)
            page.goto('/login')
            page.get_by_label('Email').fill(EMAIL)
            page.get_by_label('Password', exact=True).fill(PASSWORD)
            page.locator('.q-card').get_by_role('button', name='Sign in').click()
            page.wait_for_url(lambda url: '/login' not in url)
            return {cookie['name']: cookie['value'] for cookie in page.context.cookies()}
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--megabytes', type=int, default=1024, help='size of the synthetic series in MiB')
    parser.add_argument('--runs', type=int, default=3, help='send runs per server; medians are reported')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='bench-upload-'))
    processes: list[subprocess.Popen] = []
    try:
        (work / 'series').mkdir()
        sources = make_series(work / 'series', args.megabytes)
        total_bytes = sum(path.stat().st_size for path in sources)
        print(f'series: {len(sources)} files, {total_bytes / 2**20:.0f} MiB')

        data_dir = work / 'data'
        env = {name: value for name, value in os.environ.items() if not name.startswith(('SECONDOPINION_', 'NICEGUI_'))}
        app_port, bare_port = free_port(), free_port()
        env.update({'SECONDOPINION_DATA_DIR': str(data_dir), 'SECONDOPINION_HOST': '127.0.0.1',
                    'SECONDOPINION_PORT': str(app_port), 'SECONDOPINION_DATABASE_URL': '',
                    'SECONDOPINION_MAX_FILES_PER_UPLOAD': str(len(sources) + 1)})
        app_log = (work / 'app.log').open('wb')
        app = subprocess.Popen([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                               stdout=app_log, stderr=subprocess.STDOUT)
        processes.append(app)
        (work / 'bare.py').write_text(BARE_APP)
        (work / 'bare-target').mkdir()
        bare = subprocess.Popen([sys.executable, str(work / 'bare.py'), str(work / 'bare-target'), str(bare_port)],
                                cwd=work)
        processes.append(bare)
        app_url, bare_url = f'http://127.0.0.1:{app_port}', f'http://127.0.0.1:{bare_port}'
        wait_for(f'{app_url}/healthz', app)
        wait_for(f'{bare_url}/files/none', bare)

        os.environ['SECONDOPINION_DATA_DIR'] = str(data_dir)
        os.environ['SECONDOPINION_DATABASE_URL'] = ''
        from secondopinion.services import accounts, examinations

        info = accounts.register_patient(full_name='Bench Patient', email=EMAIL, password=PASSWORD,
                                         date_of_birth=date(1980, 1, 1))
        actor = accounts.get_actor(info.user_id)
        cookies = session_cookies(app_url)

        announced = {'folder': False, 'files': [{'name': path.name, 'size': path.stat().st_size} for path in sources]}
        bare_times, app_times = [], []
        app_before = rss_bytes(app.pid)
        commit_seconds = 0.0
        with httpx.Client(timeout=600, cookies=cookies, trust_env=False) as client, PeakMemory(app.pid) as memory:
            for run in range(args.runs):
                # Alternate which server goes first, and flush earlier writes before each timing, so
                # that neither pays for the other's dirty pages being written back.
                for target in (('bare', 'app') if run % 2 == 0 else ('app', 'bare')):
                    os.sync()
                    if target == 'bare':
                        bare_times.append(send_all(sources, lambda index: f'{bare_url}/files/{index}', client))
                        shutil.rmtree(work / 'bare-target')
                        (work / 'bare-target').mkdir()
                        continue
                    exam_id = examinations.create_draft(actor=actor)
                    started = client.post(f'{app_url}/api/exams/{exam_id}/uploads', json=announced)
                    started.raise_for_status()
                    upload_id = started.json()['upload_id']
                    app_times.append(send_all(
                        sources, lambda index: f'{app_url}/api/uploads/{upload_id}/files/{index}', client))
                    if run == args.runs - 1:
                        os.sync()
                        began = time.perf_counter()
                        committed = client.post(f'{app_url}/api/uploads/{upload_id}/commit')
                        committed.raise_for_status()
                        commit_seconds = time.perf_counter() - began
                        assert committed.json()['accepted'] == len(sources), committed.text
                    else:
                        client.delete(f'{app_url}/api/uploads/{upload_id}').raise_for_status()
                print(f'run {run + 1}: bare {bare_times[-1]:.2f} s, app {app_times[-1]:.2f} s')

        bare_median, app_median = statistics.median(bare_times), statistics.median(app_times)
        mib = total_bytes / 2**20
        print(f'send, bare Starlette endpoint: {bare_median:.2f} s ({mib / bare_median:.0f} MiB/s)')
        print(f'send, app upload route:        {app_median:.2f} s ({mib / app_median:.0f} MiB/s)')
        print(f'throughput ratio app/bare:     {bare_median / app_median:.2f}')
        print(f'commit (parse, store, index):  {commit_seconds:.1f} s ({len(sources) / commit_seconds:.0f} files/s)')
        print(f'app memory: {app_before / 2**20:.0f} MiB before, peak {memory.peak / 2**20:.0f} MiB, '
              f'growth {(memory.peak - app_before) / 2**20:.0f} MiB')
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
