"""An instance that cannot finish starting exits instead of serving half started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from secondopinion.app import STARTUP_FAILED_EXIT_CODE
from tests.browser.conftest import _free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_unreachable_database_stops_the_instance(tmp_path):
    closed_port = _free_port()  # nothing listens there
    env = {name: value for name, value in os.environ.items()
           if name != 'PYTEST_CURRENT_TEST' and not name.startswith(('NICEGUI_', 'SECONDOPINION_'))}
    env.update({'SECONDOPINION_HOST': '127.0.0.1', 'SECONDOPINION_PORT': str(_free_port()),
                'SECONDOPINION_DATA_DIR': str(tmp_path / 'data'),
                'SECONDOPINION_DATABASE_URL': f'postgresql+psycopg://postgres@127.0.0.1:{closed_port}/none'})
    finished = subprocess.run([sys.executable, str(REPO_ROOT / 'main.py')], env=env, cwd=REPO_ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
    output = finished.stdout + finished.stderr
    assert finished.returncode == STARTUP_FAILED_EXIT_CODE, output[-3000:]
    assert 'SecondOpinion failed to start; exiting' in output
    assert 'SecondOpinion started' not in output
