"""Benchmark: rendering a CT slice with `viewer.render_slice`, cold and cached, against a plain PNG encode.

Run with `.venv/bin/python bench/render_slice.py [--size N] [--repeat R]`. It writes one CT file of
N x N pixels built from pydicom's CT_small.dcm, and uploads and pays for it as a patient. Then it
times three things. The baseline (a) is Pillow encoding the windowed 8-bit array of that slice
as PNG. Then (b) is render_slice with empty caches, which reads the blob, decodes and windows the
frame, and (c) is render_slice with the decoded frame cached. Each time is the median of R runs. It prints the
times and their ratios to the baseline, and the ratios are the numbers to compare between changes.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_ct(path: Path, size: int) -> None:
    """Write CT_small.dcm's pixels resized to size x size, so the slice has the size of a clinical CT."""
    import numpy as np
    from PIL import Image
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    dataset = dcmread(get_testdata_file('CT_small.dcm'))
    resized = Image.fromarray(dataset.pixel_array.astype(np.int32)).resize((size, size), Image.Resampling.BILINEAR)
    dataset.PixelData = np.asarray(resized).astype(np.int16).tobytes()
    dataset.Rows = dataset.Columns = size
    dataset.save_as(path)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='rows and columns of the CT slice, in pixels')
    parser.add_argument('--repeat', type=int, default=30,
                        help='timed runs per measurement, of which the median is printed')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='bench-render-'))
    os.environ['SECONDOPINION_DATA_DIR'] = str(work / 'data')
    import numpy as np
    from PIL import Image

    from secondopinion import db
    from secondopinion.services import accounts, examinations, payments, studies, viewer

    db.migrate()
    source = work / 'ct.dcm'
    make_ct(source, args.size)

    info = accounts.register_patient(full_name='Bench Patient', email='bench@example.org',
                                     password='benchmark password', date_of_birth=date(1980, 1, 1))
    patient = accounts.get_actor(info.user_id)
    assert patient is not None
    exam_id = examinations.create_draft(actor=patient)
    studies.add_files(actor=patient, examination_id=exam_id, files=[('ct.dcm', source)])
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Benchmark')
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    series_id = viewer.list_viewer_series(actor=patient, examination_id=exam_id)[0].id

    def render() -> bytes:
        return viewer.render_slice(actor=patient, examination_id=exam_id, series_id=series_id, index=0,
                                   preset='soft_tissue')

    with Image.open(io.BytesIO(render())) as rendered:
        gray = np.asarray(rendered).copy()

    def encode() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, format='PNG')
        return buffer.getvalue()

    baseline = median_seconds(encode, args.repeat)
    cold = median_seconds(render, args.repeat, before=viewer.clear_caches)
    render()
    warm = median_seconds(render, args.repeat)

    print(f'slice: {args.size} x {args.size} CT, soft tissue window, median of {args.repeat} runs')
    print(f'baseline PNG encode: {baseline * 1000:.1f} ms')
    print(f'render cold:         {cold * 1000:.1f} ms (ratio {cold / baseline:.1f})')
    print(f'render warm:         {warm * 1000:.1f} ms (ratio {warm / baseline:.1f})')
    db.dispose_engine()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
