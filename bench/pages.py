"""Benchmark: first render of the patient dashboard and the doctor board with many examinations in the database.

Run with `.venv/bin/python -m bench.pages [--examinations 10000] [--patient-examinations 20] [--repeat 20]`.
It starts the app, seeds the examinations with SQLAlchemy bulk inserts (spread over 500 patients,
40 % of them paid and waiting on the board, the rest in other states), and gives the measured patient
`patient-examinations` of them. Then it requests, in turn and `repeat` times each:

- `/_bench/bare`, a bare NiceGUI page served by the same app process (bench/serve.py), the baseline;
- `/_bench/frame`, the app's page frame (session check, header and navigation) around one heading,
  which shows how much of a page's time is the frame that every app page has;
- `/exams`, the patient dashboard, as the measured patient;
- `/doctor`, the doctor board (first page of 50 cases), as a doctor.

The time is that of the HTTP response, which NiceGUI sends once the page function has built the page.
It reports the medians and their ratio to the bare page (goal: at most 2), and the SQL statements the
server executed for one request of each page (goal: a count that does not grow with the rows shown).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

from .common import (AppServer, Result, cookie_header, format_table, median, register_patient, session_cookie,
                     use_data_dir)
from .fanout import create_doctor

OTHER_PATIENTS = 500
PAID_SHARE = 0.4
BATCH = 2000


def seed_examinations(patient_user_id: int, doctor_user_id: int, total: int, for_patient: int) -> None:
    """Insert `total` examinations with bulk inserts; `for_patient` of them belong to the measured patient."""
    from sqlalchemy import insert, select

    from secondopinion import db
    from secondopinion.models import Doctor, Examination, ExamStatus, Patient, User
    from secondopinion.models.base import new_id, utcnow

    rng = random.Random(7)
    now = utcnow()
    with db.session_scope() as session:
        session.execute(insert(User), [
            {'email': f'seeded{number}@example.org', 'role': 'patient', 'full_name': f'Seeded Patient {number}',
             'password_hash': None} for number in range(OTHER_PATIENTS)])
        user_ids = session.scalars(select(User.id).where(User.email.like('seeded%@example.org'))).all()
        session.execute(insert(Patient), [{'user_id': user_id, 'date_of_birth': date(1970, 1, 1)}
                                          for user_id in user_ids])
        patient_ids = session.scalars(select(Patient.id)).all()
        own_patient_id = session.scalar(select(Patient.id).where(Patient.user_id == patient_user_id))
        doctor_id = session.scalar(select(Doctor.id).where(Doctor.user_id == doctor_user_id))

    others = [status for status in ExamStatus if status != ExamStatus.PENDING]
    rows = []
    for number in range(total):
        paid = rng.random() < PAID_SHARE
        status = ExamStatus.PENDING if paid else rng.choice(others)
        created = now - timedelta(minutes=rng.randint(60, 60 * 24 * 365))
        rows.append({
            'id': new_id(), 'patient_id': own_patient_id if number < for_patient else rng.choice(patient_ids),
            'doctor_id': doctor_id if status in {ExamStatus.UNDER_REVIEW, ExamStatus.REPORTED,
                                                 ExamStatus.COMPLETED} else None,
            'status': status, 'modality': rng.choice(['CT', 'MR', 'XR']), 'body_part': rng.choice(['Chest', 'Knee']),
            'clinical_question': f'Seeded question {number}', 'urgency': rng.choice(['routine', 'urgent']),
            'price_cents': 15000, 'currency': 'EUR', 'created_at': created,
            'submitted_at': None if status == ExamStatus.DRAFT else created,
            'paid_at': created + timedelta(minutes=5) if status not in {ExamStatus.DRAFT,
                                                                        ExamStatus.AWAITING_PAYMENT} else None,
        })
    for start in range(0, len(rows), BATCH):
        with db.session_scope() as session:
            session.execute(insert(Examination), rows[start:start + BATCH])


def run(*, examinations: int, patient_examinations: int, repeat: int) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix='bench-pages-'))
    app: AppServer | None = None
    try:
        app = AppServer(work)
        use_data_dir(app.data_dir)
        doctor_user_id = create_doctor('bench-pages-doctor@example.org')
        patient_user_id = register_patient('bench-pages@example.org')
        started = time.perf_counter()
        seed_examinations(patient_user_id, doctor_user_id, examinations, patient_examinations)
        print(f'pages: seeded {examinations} examinations in {time.perf_counter() - started:.1f} s', flush=True)

        pages = {'bare': ('/_bench/bare', patient_user_id), 'frame': ('/_bench/frame', patient_user_id),
                 'patient dashboard': ('/exams', patient_user_id),
                 'doctor board': ('/doctor', doctor_user_id)}
        cookies = {name: session_cookie(user_id) for name, (_, user_id) in pages.items()}
        times: dict[str, list[float]] = {name: [] for name in pages}
        statements: dict[str, int] = {}
        with httpx.Client(timeout=60, trust_env=False) as client:
            for round_number in range(repeat + 1):
                for name, (path, _) in pages.items():
                    began = time.perf_counter()
                    response = client.get(f'{app.url}{path}', headers=cookie_header(cookies[name]))
                    elapsed = time.perf_counter() - began
                    response.raise_for_status()
                    if 'Sign in' in response.text and name != 'bare':
                        raise RuntimeError(f'{path} showed the sign-in page: the session cookie was not accepted')
                    if round_number == 0:
                        # The first request of each page imports and compiles lazily; it is not timed.
                        count = client.get(f'{app.url}/_bench/queries', params={'path': path}).json()['count']
                        statements[name] = count
                        continue
                    times[name].append(elapsed)

        bare = median(times['bare']) * 1000
        note = f'{examinations} examinations, median of {repeat}'
        results = [Result('pages', 'bare NiceGUI page', bare, 'ms', note=f'{statements["bare"]} SQL statements'),
                   Result('pages', "app's page frame around one heading", median(times['frame']) * 1000, 'ms', bare,
                          note=f'signed-in patient, {statements["frame"]} SQL statements')]
        for name in ('patient dashboard', 'doctor board'):
            shown = f'{patient_examinations} shown' if name == 'patient dashboard' else '50 shown'
            results.append(Result('pages', f'{name} first render', median(times[name]) * 1000, 'ms', bare, 'lower',
                                  2.0, f'{note}, {shown}'))
            results.append(Result('pages', f'{name} SQL statements per load', statements[name], 'statements',
                                  note=shown))
        return results
    finally:
        if app is not None:
            app.stop()
        from secondopinion import db

        db.dispose_engine()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--examinations', type=int, default=10_000, help='examinations in the database')
    parser.add_argument('--patient-examinations', type=int, default=20,
                        help='examinations of the patient whose dashboard is measured')
    parser.add_argument('--repeat', type=int, default=20, help='timed requests per page; the median is reported')
    args = parser.parse_args()
    print(format_table(run(examinations=args.examinations, patient_examinations=args.patient_examinations,
                           repeat=args.repeat)))


if __name__ == '__main__':
    main()
