"""Benchmark: rendering CT slices at a given window, against Orthanc's rendering of the same instances.

Run with `.venv/bin/python -m bench.preview [--size 512] [--slices 30] [--repeat 30]`. It writes a CT
series of `slices` slices of size x size pixels twice, uncompressed and JPEG 2000 lossless, and
stores both series in the app (as a patient who uploaded and paid) and in Orthanc. The app renders
with `viewer.render_slice` in this process, Orthanc with `GET /instances/{id}/rendered` over
loopback HTTP, both at window center 40 and width 400 (soft tissue) and with an Accept header for
the image format on Orthanc's side. For each series and each image format (PNG and JPEG) it times
two regimes, and judges the goal (the app at most as slow as Orthanc) for each:

- first view: each side renders every slice of the series once, in order, and the figure is the
  median time per slice. The two sides take turns slice by slice, so that load from other
  processes falls on both. The app's caches are emptied before the pass, so every render reads the
  stored file, parses its header, decodes the frame, windows and encodes it. Orthanc is restarted
  before the pass on its stored files, so it has read none of the instances since it started.
- repeat view: each side renders the first slice `repeat` times after one untimed render, taking
  turns as above, and the figure is the median. The app then takes the decoded frame from its
  cache, and Orthanc serves the instance from its own caches.

What each side caches between requests:

- the app: decoded frames (windowed on each request, at most 256 MB) and the frame count of each
  stored file (`viewer.clear_caches` empties both). It caches no encoded image.
- Orthanc 1.10: its index, an SQLite database with each instance's tags, read without opening the
  file. It also keeps the most recently parsed DICOM files (128 MB, fixed before Orthanc 1.13,
  which made it the DicomParserCacheSize option). For JPEG 2000, the GDCM plugin keeps the decoder
  of the last file it decoded (GdcmDecoderCache in the plugin's sources, keyed by the file's MD5).

Neither side caches the file bytes itself, but both read from the operating system's page cache,
because the files were written just before.

The app's time has no HTTP request in it, Orthanc's has one on loopback (under 1 ms), which favours
the app slightly.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from .common import Result, format_table, make_series, median, register_patient, use_data_dir
from .orthanc import OrthancServer

WINDOW_CENTER, WINDOW_WIDTH = 40.0, 400.0
SYNTAXES = {'uncompressed': 'uncompressed', 'jpeg2000': 'JPEG 2000'}
MEDIA_TYPES = {'PNG': 'image/png', 'JPEG': 'image/jpeg'}


def store_in_app(series: dict[str, list[Path]]) -> tuple[object, dict[str, tuple[str, int]]]:
    """Upload and pay one examination per series as a patient; return the patient and each series' exam and id."""
    from secondopinion.services import accounts, examinations, payments, studies, viewer

    patient = accounts.get_actor(register_patient('bench-preview@example.org'))
    assert patient is not None
    located = {}
    for syntax, paths in series.items():
        exam_id = examinations.create_draft(actor=patient)
        studies.add_files(actor=patient, examination_id=exam_id, files=[(path.name, path) for path in paths])
        examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                    clinical_question='Benchmark')
        examinations.submit(actor=patient, examination_id=exam_id)
        url = payments.start_checkout(actor=patient, examination_id=exam_id)
        payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
        located[syntax] = (exam_id, viewer.list_viewer_series(actor=patient, examination_id=exam_id)[0].id)
    return patient, located


def store_in_orthanc(folder: Path, series: dict[str, list[Path]]) -> dict[str, list[str]]:
    """POST every file to an Orthanc on `folder` and stop it; return each series' Orthanc ids in slice order."""
    orthanc = OrthancServer(folder)
    try:
        ids: dict[str, list[str]] = {}
        with httpx.Client(timeout=60, trust_env=False) as client:
            for syntax, paths in series.items():
                ids[syntax] = []
                for path in paths:
                    response = client.post(f'{orthanc.url}/instances', content=path.read_bytes())
                    response.raise_for_status()
                    ids[syntax].append(response.json()['ID'])
        return ids
    finally:
        orthanc.stop()


def timed_pairs(app_action, orthanc_action, count: int) -> tuple[list[float], list[float]]:
    """Run app_action(i) and orthanc_action(i) alternately for i in range(count); return the seconds of each run.

    Alternating puts both sides under the same load from other processes, on a shared machine.
    """
    app_times, orthanc_times = [], []
    for index in range(count):
        for action, times in ((app_action, app_times), (orthanc_action, orthanc_times)):
            started = time.perf_counter()
            action(index)
            times.append(time.perf_counter() - started)
    return app_times, orthanc_times


def run(*, size: int, slices: int, repeat: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-preview-'))
    try:
        use_data_dir(work / 'data')
        from secondopinion.services import viewer

        series = {}
        for syntax in SYNTAXES:
            (work / syntax).mkdir()
            series[syntax] = make_series(work / syntax, count=slices, size=size, transfer_syntax=syntax)
        patient, located = store_in_app(series)
        orthanc_ids = store_in_orthanc(work / 'orthanc', series)

        results = []
        for syntax, label in SYNTAXES.items():
            exam_id, series_id = located[syntax]
            for image_format, media_type in MEDIA_TYPES.items():
                def render(index: int, image_format: str = image_format) -> bytes:
                    return viewer.render_slice(actor=patient, examination_id=exam_id, series_id=series_id,
                                               index=index, window_center=WINDOW_CENTER, window_width=WINDOW_WIDTH,
                                               image_format=image_format)

                # A fresh Orthanc process on the stored files, so that its caches are empty.
                orthanc = OrthancServer(work / 'orthanc')
                try:
                    with httpx.Client(timeout=60, trust_env=False) as client:
                        def fetch(index: int, media_type: str = media_type, syntax: str = syntax) -> bytes:
                            response = client.get(f'{orthanc.url}/instances/{orthanc_ids[syntax][index]}/rendered',
                                                  params={'window-center': WINDOW_CENTER,
                                                          'window-width': WINDOW_WIDTH},
                                                  headers={'Accept': media_type})
                            response.raise_for_status()
                            if response.headers['content-type'] != media_type:
                                raise RuntimeError(f'Orthanc returned {response.headers["content-type"]}, '
                                                   f'not {media_type}')
                            return response.content

                        client.get(f'{orthanc.url}/system').raise_for_status()  # opens the connection
                        viewer.clear_caches()
                        app_times, orthanc_times = timed_pairs(render, fetch, slices)
                        app_first, orthanc_first = median(app_times), median(orthanc_times)
                        render(0)
                        fetch(0)
                        app_times, orthanc_times = timed_pairs(lambda _: render(0), lambda _: fetch(0), repeat)
                        app_repeat, orthanc_repeat = median(app_times), median(orthanc_times)
                finally:
                    orthanc.stop()

                results.append(Result('preview', f'{label} slice to {image_format}, first view', app_first * 1000,
                                      'ms', orthanc_first * 1000, 'lower', 1.0,
                                      f'{size} x {size}, median of {slices} slices each rendered once'))
                results.append(Result('preview', f'{label} slice to {image_format}, repeat view', app_repeat * 1000,
                                      'ms', orthanc_repeat * 1000, 'lower', 1.0,
                                      f'{size} x {size}, one slice, median of {repeat}'))
                print(f'preview {label} {image_format}: first view app {app_first * 1000:.2f} ms, '
                      f'orthanc {orthanc_first * 1000:.2f} ms; repeat view app {app_repeat * 1000:.2f} ms, '
                      f'orthanc {orthanc_repeat * 1000:.2f} ms', flush=True)
        return results
    finally:
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='rows and columns of each CT slice, in pixels')
    parser.add_argument('--slices', type=int, default=30,
                        help='slices per series, each rendered once in the first-view regime')
    parser.add_argument('--repeat', type=int, default=30,
                        help='timed renders of one slice in the repeat-view regime; the median is reported')
    args = parser.parse_args()
    started = time.perf_counter()
    print(format_table(run(size=args.size, slices=args.slices, repeat=args.repeat)))
    print(f'took {time.perf_counter() - started:.0f} s')


if __name__ == '__main__':
    main()
