"""Benchmark: rendering one CT slice at a given window, against Orthanc's rendering of the same instance.

Run with `.venv/bin/python -m bench.preview [--size 512] [--repeat 30]`. It writes one CT slice of
size x size pixels twice, uncompressed and JPEG 2000 lossless, and stores both in the app (as a
patient who uploaded and paid) and in Orthanc. For each file and each image format (PNG and JPEG) it
times, as the median of `repeat` runs:

- the app: `viewer.render_slice` with window center 40 and width 400 (soft tissue), in this process
  and with empty caches before each run, so each run reads the stored file, decodes it, windows and
  encodes it;
- Orthanc: `GET /instances/{id}/rendered?window-center=40&window-width=400` over loopback HTTP, with
  an Accept header for the format. Orthanc keeps recently read files parsed in memory (a cache
  of 128 MB, fixed before Orthanc 1.13, which made its size the DicomParserCacheSize option), so
  repeated requests for one instance do not read and parse the file again, unlike the app's cold runs.

The app's time has no HTTP request in it, Orthanc's has one on loopback (about 1 ms), which favours
the app slightly. It also reports the app's time with the decoded frame cached, which is what
scrolling back and changing the window cost in the viewer.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from .common import Result, format_table, make_series, median_seconds, register_patient, use_data_dir
from .orthanc import OrthancServer

WINDOW_CENTER, WINDOW_WIDTH = 40.0, 400.0
SYNTAXES = {'uncompressed': 'uncompressed', 'jpeg2000': 'JPEG 2000'}
MEDIA_TYPES = {'PNG': 'image/png', 'JPEG': 'image/jpeg'}


def store_in_app(sources: dict[str, Path]) -> tuple[object, dict[str, tuple[str, int]]]:
    """Upload and pay one examination per file as a patient; return the patient and each file's exam and series."""
    from secondopinion.services import accounts, examinations, payments, studies, viewer

    patient = accounts.get_actor(register_patient('bench-preview@example.org'))
    assert patient is not None
    located = {}
    for syntax, path in sources.items():
        exam_id = examinations.create_draft(actor=patient)
        studies.add_files(actor=patient, examination_id=exam_id, files=[(path.name, path)])
        examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                    clinical_question='Benchmark')
        examinations.submit(actor=patient, examination_id=exam_id)
        url = payments.start_checkout(actor=patient, examination_id=exam_id)
        payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
        located[syntax] = (exam_id, viewer.list_viewer_series(actor=patient, examination_id=exam_id)[0].id)
    return patient, located


def run(*, size: int, repeat: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-preview-'))
    orthanc: OrthancServer | None = None
    try:
        use_data_dir(work / 'data')
        from secondopinion.services import viewer

        sources = {}
        for syntax in SYNTAXES:
            (work / syntax).mkdir()
            sources[syntax] = make_series(work / syntax, count=1, size=size, transfer_syntax=syntax)[0]
        patient, located = store_in_app(sources)

        orthanc = OrthancServer(work / 'orthanc')
        results = []
        with httpx.Client(timeout=60, trust_env=False) as client:
            orthanc_ids = {}
            for syntax, path in sources.items():
                response = client.post(f'{orthanc.url}/instances', content=path.read_bytes())
                response.raise_for_status()
                orthanc_ids[syntax] = response.json()['ID']

            for syntax, label in SYNTAXES.items():
                exam_id, series_id = located[syntax]
                for image_format, media_type in MEDIA_TYPES.items():
                    def render(image_format: str = image_format) -> bytes:
                        return viewer.render_slice(actor=patient, examination_id=exam_id, series_id=series_id,
                                                   index=0, window_center=WINDOW_CENTER, window_width=WINDOW_WIDTH,
                                                   image_format=image_format)

                    def fetch(media_type: str = media_type, syntax: str = syntax) -> bytes:
                        response = client.get(f'{orthanc.url}/instances/{orthanc_ids[syntax]}/rendered',
                                              params={'window-center': WINDOW_CENTER, 'window-width': WINDOW_WIDTH},
                                              headers={'Accept': media_type})
                        response.raise_for_status()
                        if response.headers['content-type'] != media_type:
                            raise RuntimeError(f'Orthanc returned {response.headers["content-type"]}, not {media_type}')
                        return response.content

                    fetch()  # the first request opens the connection and warms Orthanc's caches of the index
                    orthanc_seconds = median_seconds(fetch, repeat)
                    cold = median_seconds(render, repeat, before=viewer.clear_caches)
                    render()
                    warm = median_seconds(render, repeat)
                    results.append(Result('preview', f'{label} slice to {image_format}, cold', cold * 1000, 'ms',
                                          orthanc_seconds * 1000, 'lower', 1.0,
                                          f'{size} x {size}, warm {warm * 1000:.1f} ms, median of {repeat}'))
                    print(f'preview {label} {image_format}: orthanc {orthanc_seconds * 1000:.1f} ms, '
                          f'app cold {cold * 1000:.1f} ms, warm {warm * 1000:.1f} ms', flush=True)
        return results
    finally:
        if orthanc is not None:
            orthanc.stop()
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='rows and columns of the CT slice, in pixels')
    parser.add_argument('--repeat', type=int, default=30, help='timed runs per measurement; the median is reported')
    args = parser.parse_args()
    started = time.perf_counter()
    print(format_table(run(size=args.size, repeat=args.repeat)))
    print(f'took {time.perf_counter() - started:.0f} s')


if __name__ == '__main__':
    main()
