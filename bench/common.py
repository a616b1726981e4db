"""Helpers shared by the benchmarks: ports, processes, memory sampling, synthetic CT series, results."""

from __future__ import annotations

import copy
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PASSWORD = 'benchmark password'


@dataclass(frozen=True)
class Result:
    """One line of the results table: a figure of the app, its baseline in the same run, and the goal."""

    benchmark: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    # 'higher' when value / baseline should be at least `goal`, 'lower' when it should be at most `goal`,
    # or 'max' when the value itself should be at most `goal`.
    goal_kind: str = ''
    goal: float | None = None
    note: str = ''

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        if self.goal_kind == 'max':
            return self.value <= self.goal
        ratio = self.ratio
        if ratio is None:
            return None
        return ratio >= self.goal if self.goal_kind == 'higher' else ratio <= self.goal


def format_table(results: list[Result]) -> str:
    """Format results as a Markdown table, so that the output can be pasted into docs/benchmarks.md."""
    lines = ['| benchmark | figure | app | baseline | ratio | goal | met |', '|---|---|---|---|---|---|---|']
    for result in results:
        baseline = '' if result.baseline is None else f'{result.baseline:.4g} {result.unit}'
        ratio = '' if result.ratio is None else f'{result.ratio:.2f}'
        goal = ''
        if result.goal is not None:
            goal = {'higher': f'ratio >= {result.goal:g}', 'lower': f'ratio <= {result.goal:g}',
                    'max': f'<= {result.goal:g} {result.unit}'}[result.goal_kind]
        met = {None: '', True: 'yes', False: 'NO'}[result.met]
        figure = f'{result.figure} ({result.note})' if result.note else result.figure
        lines.append(f'| {result.benchmark} | {figure} | {result.value:.4g} {result.unit} | {baseline} | {ratio} '
                     f'| {goal} | {met} |')
    return '\n'.join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile, for example fraction 0.95 for p95."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median_seconds(action: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> float:
    """Return the median wall time of action over repeat runs. The before callable runs untimed ahead of each run."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until url returns any HTTP status; raise when the process exits or the timeout passes."""
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
    raise TimeoutError(f'{url} did not respond within {timeout:.0f} s')


def stop_process(process: subprocess.Popen) -> None:
    """Send SIGTERM to one process started by a benchmark, and SIGKILL when it has not exited after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


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


# --- synthetic CT series ----------------------------------------------------------------------------------------


def make_series(folder: Path, *, count: int | None = None, megabytes: int | None = None, size: int = 512,
                transfer_syntax: str = 'uncompressed') -> list[Path]:
    """Write a CT series of size x size 16-bit slices: `count` files, or files until they add up to `megabytes` MiB.

    transfer_syntax is 'uncompressed' (Explicit VR Little Endian) or 'jpeg2000' (JPEG 2000 lossless,
    encoded by pylibjpeg-openjpeg). The pixels are CT_small.dcm's resized to size x size, shifted by one
    row per slice, so that every slice differs and a window shows anatomy-like structure.
    """
    import numpy as np
    from PIL import Image
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import JPEG2000Lossless, generate_uid

    if (count is None) == (megabytes is None):
        raise ValueError('give either count or megabytes')
    template = dcmread(get_testdata_file('CT_small.dcm'))
    resized = Image.fromarray(template.pixel_array.astype(np.int32)).resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized).astype(np.int16)
    template.Rows = template.Columns = size
    template.StudyInstanceUID, template.SeriesInstanceUID = generate_uid(), generate_uid()
    paths: list[Path] = []
    total = 0
    while (count is not None and len(paths) < count) or (megabytes is not None and total < megabytes * 2**20):
        dataset = copy.deepcopy(template)
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = len(paths) + 1
        dataset.PixelData = np.roll(pixels, len(paths), axis=0).tobytes()
        if transfer_syntax == 'jpeg2000':
            dataset.compress(JPEG2000Lossless, encoding_plugin='pylibjpeg')
        elif transfer_syntax != 'uncompressed':
            raise ValueError(f'unknown transfer syntax {transfer_syntax!r}: use uncompressed or jpeg2000')
        path = folder / f'IM{len(paths) + 1:06d}'
        dataset.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
        paths.append(path)
    return paths


# --- the app under test -----------------------------------------------------------------------------------------


def app_environment(data_dir: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of an app server: a fresh data folder with its SQLite database, on loopback."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(('SECONDOPINION_', 'NICEGUI_')) and name != 'PYTEST_CURRENT_TEST'}
    env.update({'SECONDOPINION_DATA_DIR': str(data_dir), 'SECONDOPINION_HOST': '127.0.0.1',
                'SECONDOPINION_PORT': str(port), 'SECONDOPINION_DATABASE_URL': ''})
    env.update(extra or {})
    return env


def use_data_dir(data_dir: Path) -> None:
    """Point this process's services at the app server's data folder, so both share database and storage."""
    from secondopinion import db
    from secondopinion.config import reset_settings

    os.environ['SECONDOPINION_DATA_DIR'] = str(data_dir)
    os.environ['SECONDOPINION_DATABASE_URL'] = ''
    reset_settings()
    db.dispose_engine()
    db.migrate()


class AppServer:
    """The app started by bench/serve.py on a free loopback port, with the benchmark-only routes."""

    def __init__(self, work: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = work / 'data'
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log_path = work / f'app-{self.port}.log'
        log = self.log_path.open('wb')
        self.process = subprocess.Popen([sys.executable, str(REPO_ROOT / 'bench' / 'serve.py')],
                                        env=app_environment(self.data_dir, self.port, extra_env), cwd=REPO_ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for(f'{self.url}/healthz', self.process)
        except (RuntimeError, TimeoutError):
            stop_process(self.process)
            raise RuntimeError(f'the app did not start; its log:\n{self.log_path.read_text(errors="replace")}')

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process)


def session_cookie(user_id: int) -> dict[str, str]:
    """Sign the user in as the sign-in page does and return the session cookie, without a browser."""
    from secondopinion import db
    from secondopinion.services import sessions

    with db.session_scope() as session:
        ticket = sessions.start(session, user_id, method='password', client_address='127.0.0.1')
    activation = sessions.activate(ticket, client_address='127.0.0.1', user_agent='benchmark')
    if activation is None:
        raise RuntimeError(f'signing in user {user_id} failed')
    return {sessions.COOKIE_NAME: activation.token}


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    """Return a Cookie request header, for clients whose requests sign in as different users."""
    return {'Cookie': '; '.join(f'{name}={value}' for name, value in cookies.items())}


def register_patient(email: str, full_name: str = 'Bench Patient') -> int:
    """Register a patient with a confirmed email address, as the link in the welcome email does; return the user id."""
    from datetime import date

    from secondopinion import db
    from secondopinion.models import User
    from secondopinion.models.base import utcnow
    from secondopinion.services import accounts

    info = accounts.register_patient(full_name=full_name, email=email, password=PASSWORD,
                                     date_of_birth=date(1980, 1, 1))
    with db.session_scope() as session:
        user = session.get(User, info.user_id)
        assert user is not None
        user.email_verified_at = utcnow()
    return info.user_id
