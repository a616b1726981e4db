"""Run every benchmark on loopback and print one table of figures, baselines, ratios and goals.

Run with `.venv/bin/python -m bench` (4 to 10 minutes on a shared 2-core machine, most of it the
1 GiB upload) or `.venv/bin/python -m bench --quick` for tiny inputs (about 30 s), which checks that
every benchmark still runs, not the figures. `--only NAME` runs some of them. The Orthanc baselines
(ingest, preview) need `apt-get install orthanc orthanc-gdcm`; without Orthanc they are skipped with
a message.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from . import fanout, ingest, pages, preview, report, upload
from .common import Result, format_table
from .orthanc import orthanc_binary

# Full size and quick size of each benchmark.
BENCHMARKS: dict[str, tuple[Callable[[], list[Result]], Callable[[], list[Result]]]] = {
    'upload': (lambda: upload.run(megabytes=1024, runs=3), lambda: upload.run(megabytes=2, runs=1)),
    'ingest': (lambda: ingest.run(files=300, runs=3), lambda: ingest.run(files=4, runs=1)),
    'preview': (lambda: preview.run(size=512, slices=30, repeat=30),
                lambda: preview.run(size=64, slices=2, repeat=2)),
    'fanout': (lambda: fanout.run(clients=100, rounds=5, pending=20),
               lambda: fanout.run(clients=3, rounds=1, pending=1)),
    'pages': (lambda: pages.run(examinations=10_000, patient_examinations=20, repeat=20),
              lambda: pages.run(examinations=100, patient_examinations=5, repeat=2)),
    'report': (lambda: report.run(repeat=10), lambda: report.run(repeat=1)),
}
NEEDS_ORTHANC = {'ingest', 'preview'}


def run_benchmarks(names: list[str], *, quick: bool) -> list[Result]:
    results: list[Result] = []
    for name in names:
        if name in NEEDS_ORTHANC and orthanc_binary() is None:
            print(f'{name}: skipped, because Orthanc is not installed (apt-get install orthanc orthanc-gdcm)')
            continue
        started = time.perf_counter()
        full, small = BENCHMARKS[name]
        results.extend((small if quick else full)())
        print(f'{name}: done in {time.perf_counter() - started:.0f} s', flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='tiny inputs: checks that each benchmark runs')
    parser.add_argument('--only', action='append', choices=list(BENCHMARKS),
                        help='run only this benchmark; repeat the option for several')
    args = parser.parse_args()
    print(format_table(run_benchmarks(args.only or list(BENCHMARKS), quick=args.quick)))


if __name__ == '__main__':
    main()
