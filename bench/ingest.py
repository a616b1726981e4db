"""Benchmark: ingest of a CT series by the app against Orthanc receiving the same files, in one run.

Run with `.venv/bin/python -m bench.ingest [--files 300] [--runs 3]`. It writes a synthetic series of
512 x 512 CT slices and starts the app and Orthanc (bench/orthanc.py) on loopback. Each run sends
the series to both with the same HTTP client, three requests at a time:

- to the app through its upload routes (announce, one PUT per file, commit), where the commit parses,
  stores and indexes every file and renders the series thumbnail;
- to Orthanc as one `POST /instances` per file, which parses, stores and indexes each file; each run
  starts a fresh Orthanc, so that no instance is already stored.

It reports the median instances per second of each and their ratio (goal: the app at least as fast).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .common import (AppServer, Result, format_table, make_series, median, register_patient, session_cookie,
                     use_data_dir)
from .orthanc import OrthancServer
from .upload import CONCURRENCY, commit_upload, send_all, start_upload


def post_to_orthanc(orthanc_url: str, paths: list[Path], client: httpx.Client) -> float:
    """POST every file to Orthanc, CONCURRENCY at a time; return the seconds taken."""
    def post(path: Path) -> None:
        response = client.post(f'{orthanc_url}/instances', content=path.read_bytes(),
                               headers={'Content-Type': 'application/dicom'})
        response.raise_for_status()
        if response.json().get('Status') != 'Success':
            raise RuntimeError(f'Orthanc did not store {path.name}: {response.text}')

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(post, paths))
    return time.perf_counter() - started


def run(*, files: int, runs: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-ingest-'))
    app: AppServer | None = None
    try:
        (work / 'series').mkdir()
        sources = make_series(work / 'series', count=files)
        app = AppServer(work)
        use_data_dir(app.data_dir)
        from secondopinion.services import accounts, examinations

        user_id = register_patient('bench-ingest@example.org')
        actor = accounts.get_actor(user_id)
        assert actor is not None

        app_times: list[float] = []
        orthanc_times: list[float] = []
        with httpx.Client(timeout=600, cookies=session_cookie(user_id), trust_env=False) as client:
            for run_number in range(runs):
                orthanc = OrthancServer(work / f'orthanc-{run_number}')
                try:
                    for target in (('orthanc', 'app') if run_number % 2 == 0 else ('app', 'orthanc')):
                        os.sync()
                        if target == 'orthanc':
                            orthanc_times.append(post_to_orthanc(orthanc.url, sources, client))
                            continue
                        exam_id = examinations.create_draft(actor=actor)
                        upload_id = start_upload(client, app.url, exam_id, sources)
                        started = time.perf_counter()
                        send_all(sources, lambda index: f'{app.url}/api/uploads/{upload_id}/files/{index}', client)
                        commit_upload(client, app.url, upload_id, len(sources))
                        app_times.append(time.perf_counter() - started)
                finally:
                    orthanc.stop()
                print(f'ingest run {run_number + 1}: orthanc {orthanc_times[-1]:.2f} s, app {app_times[-1]:.2f} s',
                      flush=True)

        note = f'{files} files of 512 x 512, median of {runs}'
        return [Result('ingest', 'instances per second vs Orthanc 1.10', files / median(app_times), 'inst/s',
                       files / median(orthanc_times), 'higher', 1.0, note)]
    finally:
        if app is not None:
            app.stop()
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=300, help='number of DICOM files in the series')
    parser.add_argument('--runs', type=int, default=3, help='runs per server; medians are reported')
    args = parser.parse_args()
    print(format_table(run(files=args.files, runs=args.runs)))


if __name__ == '__main__':
    main()
