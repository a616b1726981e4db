"""Smoke test of the benchmarks: each runs on tiny inputs and returns its figures.

The figures themselves are not checked, because tiny inputs on a shared machine show nothing about
speed. The Orthanc parts are skipped only when Orthanc is not installed (`apt-get install orthanc
orthanc-gdcm`), and the whole quick run takes about 30 s on a 2-core machine.
"""

from __future__ import annotations

import math

import pytest

from bench import run_all
from bench.orthanc import orthanc_binary

# The pages benchmark has a test of its own below, which also checks its statement count.
WITHOUT_ORTHANC = sorted(set(run_all.BENCHMARKS) - run_all.NEEDS_ORTHANC - {'pages'})


def check_results(results: list, benchmark: str) -> None:
    assert results, f'{benchmark} returned no figures'
    for result in results:
        assert math.isfinite(result.value), f'{result.figure} is {result.value}'
        assert result.value > 0 or 'statements' in result.unit, f'{result.figure} is {result.value}'


@pytest.mark.parametrize('benchmark', WITHOUT_ORTHANC)
def test_benchmark_runs_quick(benchmark: str) -> None:
    check_results(run_all.run_benchmarks([benchmark], quick=True), benchmark)


@pytest.mark.skipif(orthanc_binary() is None, reason='Orthanc is not installed (apt-get install orthanc)')
@pytest.mark.parametrize('benchmark', sorted(run_all.NEEDS_ORTHANC))
def test_orthanc_benchmark_runs_quick(benchmark: str) -> None:
    check_results(run_all.run_benchmarks([benchmark], quick=True), benchmark)


def test_pages_counts_statements() -> None:
    results = {result.figure: result for result in run_all.run_benchmarks(['pages'], quick=True)}
    board = results['doctor board SQL statements per load']
    # The board shows up to 50 cases, so a query per case would make this count grow past 50.
    assert 0 < board.value < 20, f'the board page ran {board.value} SQL statements'
