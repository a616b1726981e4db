"""Benchmark: DICOM upload ingest against a plain file copy of the same bytes, measured in one run.

Run with `.venv/bin/python bench/ingest.py [--files N]`. It builds N copies of pydicom's CT_small.dcm
with distinct UIDs, then times (a) copying them into a folder and (b) `studies.add_files`, which
parses each file, stores it, renders one thumbnail per series and writes the rows. It prints both
times and their ratio; the ratio is the number to compare between changes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_files(folder: Path, count: int) -> list[Path]:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    template = dcmread(get_testdata_file('CT_small.dcm'))
    series_uid = generate_uid()
    paths = []
    for number in range(count):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.SeriesInstanceUID = series_uid
        template.InstanceNumber = number + 1
        path = folder / f'{number:05d}.dcm'
        template.save_as(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=300, help='number of DICOM files to ingest')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='bench-ingest-'))
    os.environ['SECONDOPINION_DATA_DIR'] = str(work / 'data')
    from secondopinion import db
    from secondopinion.services import accounts, examinations, studies

    db.migrate()
    (work / 'sources').mkdir()
    sources = make_files(work / 'sources', args.files)
    total_bytes = sum(path.stat().st_size for path in sources)

    copy_target = work / 'copy'
    copy_target.mkdir()
    started = time.perf_counter()
    for path in sources:
        shutil.copyfile(path, copy_target / path.name)
    copy_seconds = time.perf_counter() - started

    info = accounts.register_patient(full_name='Bench Patient', email='bench@example.org',
                                     password='benchmark password', date_of_birth=date(1980, 1, 1))
    actor = accounts.get_actor(info.user_id)
    assert actor is not None
    exam_id = examinations.create_draft(actor=actor)
    started = time.perf_counter()
    summary = studies.add_files(actor=actor, examination_id=exam_id,
                                files=[(path.name, path) for path in sources])
    ingest_seconds = time.perf_counter() - started
    assert summary.accepted == args.files

    print(f'files: {args.files}, {total_bytes / 1e6:.1f} MB')
    print(f'baseline copy: {copy_seconds:.3f} s')
    print(f'ingest:        {ingest_seconds:.3f} s ({args.files / ingest_seconds:.0f} files/s)')
    print(f'ratio ingest/copy: {ingest_seconds / copy_seconds:.1f}')
    db.dispose_engine()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
