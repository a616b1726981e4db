"""Two patients, two doctors and an admin try every page and route with each other's ids.

Each route's rule (who may open it for which object) is written out once below. The test opens
every route for every persona and object. It checks that exactly those personas get through, and
that everyone else gets the same "not found", with the same status and body, as for an id that does
not exist. A last test fails when the app gains a route that this matrix does not cover.
"""

from __future__ import annotations

from collections.abc import Callable
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from nicegui import app
from nicegui.testing import User
from pydicom.data import get_testdata_file

from secondopinion.models import ExamStatus
from secondopinion.services import examinations, payments, reports, sessions, studies, uploads
from secondopinion.services.actors import Actor
from tests.conftest import open_session
from tests.services.flow import paid

from .helpers import PageAnswer, open_page

MISSING = 'f' * 32
# Each page response contains its own client id and event listener ids, all of them UUIDs.
UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
PDF = b'%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n'
REPORT = {'findings': 'Solid nodule, 6 mm.', 'impression': 'Probably benign.', 'recommendations': ''}


@dataclass
class Case:
    """An examination in a known state, with the ids its routes need."""

    name: str
    exam_id: str
    owner: str
    status: str
    doctor: str | None = None
    series_id: int = 0
    prior_file_id: int = 0
    checkout_ref: str = ''
    upload_id: str = ''


@dataclass
class World:
    actors: dict[str, Actor]
    tokens: dict[str, str]
    cases: list[Case]


def _with_image(patient: Actor, exam_id: str) -> None:
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[('CT_small.dcm', Path(get_testdata_file('CT_small.dcm')))])


def _fill_ids(case: Case, actor: Actor, tmp_path: Path) -> None:
    summary = studies.get_study_summary(actor=actor, examination_id=case.exam_id)
    if summary.studies:
        case.series_id = summary.studies[0].series[0].id
    if summary.prior_reports:
        case.prior_file_id = summary.prior_reports[0].id


@pytest.fixture
def world(make_patient, make_doctor, admin, tmp_path) -> World:
    actors = {'alice': make_patient('Alice Persona', email='alice@example.org'),
              'bob': make_patient('Bob Persona', email='bob@example.org'),
              'doc1': make_doctor('Dr. One', email='doc1@example.org'),
              'doc2': make_doctor('Dr. Two', email='doc2@example.org'),
              'admin': admin}
    alice, bob, doc1 = actors['alice'], actors['bob'], actors['doc1']
    prior = tmp_path / 'prior.pdf'
    prior.write_bytes(PDF)

    draft = examinations.create_draft(actor=alice)
    _with_image(alice, draft)
    studies.add_prior_report_file(actor=alice, examination_id=draft, filename='prior.pdf', path=prior)
    upload_id = uploads.start_upload(actor=alice, examination_id=draft, files=[uploads.AnnouncedFile('a.dcm', 10)],
                                     session_id='alice-browser', folder=False)

    unpaid = examinations.create_draft(actor=bob)
    examinations.update_details(actor=bob, examination_id=unpaid, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    _with_image(bob, unpaid)
    examinations.submit(actor=bob, examination_id=unpaid)
    checkout_ref = payments.start_checkout(actor=bob, examination_id=unpaid).rsplit('/', 1)[1]

    pending = paid(bob)
    pending_with_image = examinations.create_draft(actor=bob)
    examinations.update_details(actor=bob, examination_id=pending_with_image, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    _with_image(bob, pending_with_image)
    studies.add_prior_report_file(actor=bob, examination_id=pending_with_image, filename='prior.pdf', path=prior)
    examinations.submit(actor=bob, examination_id=pending_with_image)
    ref = payments.start_checkout(actor=bob, examination_id=pending_with_image).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=bob, provider_ref=ref)

    reported = examinations.create_draft(actor=alice)
    examinations.update_details(actor=alice, examination_id=reported, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    _with_image(alice, reported)
    examinations.submit(actor=alice, examination_id=reported)
    ref = payments.start_checkout(actor=alice, examination_id=reported).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=alice, provider_ref=ref)
    examinations.accept(actor=doc1, examination_id=reported)
    reports.finalize(actor=doc1, examination_id=reported, **REPORT)

    cases = [Case('alice draft', draft, 'alice', ExamStatus.DRAFT, upload_id=upload_id),
             Case('bob unpaid', unpaid, 'bob', ExamStatus.AWAITING_PAYMENT, checkout_ref=checkout_ref),
             Case('bob pending, link only', pending, 'bob', ExamStatus.PENDING),
             Case('bob pending', pending_with_image, 'bob', ExamStatus.PENDING),
             Case('alice reported by doc1', reported, 'alice', ExamStatus.REPORTED, doctor='doc1')]
    for case in cases:
        _fill_ids(case, actors[case.owner], tmp_path)
    tokens = {name: open_session(actor.user_id) for name, actor in actors.items()}
    return World(actors, tokens, cases)


# Who may see an examination at all, and its images: the owner, an admin, every doctor while it
# waits for one, and the doctor who accepted it.
def sees(persona: str, case: Case) -> bool:
    if persona == 'admin' or persona == case.owner:
        return True
    return persona.startswith('doc') and (case.status == ExamStatus.PENDING or case.doctor == persona)


def is_owner(persona: str, case: Case) -> bool:
    return persona == case.owner


@dataclass(frozen=True)
class Route:
    template: str
    method: str
    path: Callable[[Case], str | None]  # None: the case has no such object
    allowed: Callable[[str, Case], bool]
    page: bool = False


ROUTES = [
    Route('/exams/{examination_id}', 'GET', lambda c: f'/exams/{c.exam_id}',
          lambda p, c: p == 'admin' or is_owner(p, c), page=True),
    # The owner of a submitted examination is sent on to its page.
    Route('/exams/{examination_id}/edit', 'GET', lambda c: f'/exams/{c.exam_id}/edit', is_owner, page=True),
    Route('/doctor/cases/{examination_id}', 'GET', lambda c: f'/doctor/cases/{c.exam_id}',
          lambda p, c: c.doctor == p, page=True),
    Route('/doctor/cases/{examination_id}/viewer', 'GET', lambda c: f'/doctor/cases/{c.exam_id}/viewer',
          lambda p, c: p.startswith('doc') and sees(p, c), page=True),
    Route('/checkout/test/{provider_ref}', 'GET', lambda c: f'/checkout/test/{c.checkout_ref}' if c.checkout_ref
          else None, is_owner, page=True),
    Route('/api/exams/{examination_id}/images.zip', 'GET', lambda c: f'/api/exams/{c.exam_id}/images.zip'
          if c.series_id else None, sees),
    Route('/api/exams/{examination_id}/report.pdf', 'GET', lambda c: f'/api/exams/{c.exam_id}/report.pdf'
          if c.status == ExamStatus.REPORTED else None, lambda p, c: p in {'admin', c.owner, c.doctor}),
    # The report in exchange formats: an encapsulated-PDF DICOM object and a FHIR DiagnosticReport.
    Route('/api/exams/{examination_id}/report.dcm', 'GET', lambda c: f'/api/exams/{c.exam_id}/report.dcm'
          if c.status == ExamStatus.REPORTED else None, lambda p, c: p in {'admin', c.owner, c.doctor}),
    Route('/api/exams/{examination_id}/report.fhir.json', 'GET', lambda c: f'/api/exams/{c.exam_id}/report.fhir.json'
          if c.status == ExamStatus.REPORTED else None, lambda p, c: p in {'admin', c.owner, c.doctor}),
    Route('/api/exams/{examination_id}/series/{series_id}/thumbnail.png', 'GET',
          lambda c: f'/api/exams/{c.exam_id}/series/{c.series_id}/thumbnail.png' if c.series_id else None, sees),
    Route('/api/exams/{examination_id}/series/{series_id}/slices/{index}.png', 'GET',
          lambda c: f'/api/exams/{c.exam_id}/series/{c.series_id}/slices/0.png' if c.series_id else None, sees),
    Route('/api/exams/{examination_id}/prior-report/{file_id}', 'GET',
          lambda c: f'/api/exams/{c.exam_id}/prior-report/{c.prior_file_id}' if c.prior_file_id else None, sees),
    Route('/api/exams/{examination_id}/uploads', 'POST', lambda c: f'/api/exams/{c.exam_id}/uploads'
          if c.status == ExamStatus.DRAFT else None, is_owner),
    Route('/api/uploads/{upload_id}/commit', 'POST',
          lambda c: f'/api/uploads/{c.upload_id}/commit' if c.upload_id else None, is_owner),
]

# Pages without ids, by the roles that may open them.
ROLE_PAGES = {'/exams': {'patient'}, '/exams/new': {'patient'}, '/profile': {'patient', 'doctor', 'admin'},
              '/doctor': {'doctor'},
              '/doctor/cases': {'doctor'}, '/admin': {'admin'}}
# Routes anyone may call, each checked by its own tests (sign-in, sessions, webhook, health).
PUBLIC_ROUTES = {'/', '/login', '/register', '/healthz', '/auth/session', '/auth/activity', '/auth/signed-out',
                 '/api/stripe/webhook', '/favicon.ico', '/assets/{path:path}',
                 # Sign-in with Microsoft or Google, and the page that completes a new patient's account.
                 '/auth/oidc/{provider}/start', '/auth/oidc/{provider}/callback', '/auth/oidc/finish',
                 '/register/complete',
                 # Prometheus scrapes it. It needs a bearer token when SECONDOPINION_METRICS_TOKEN is set (test_metrics.py).
                 '/metrics',
                 # Links from emails and the pages around them, each checked by the account tests.
                 '/forgot-password', '/reset-password', '/verify-email', '/invite', '/account-deleted',
                 # Installing the app: the same files for everyone, with no patient data (test_pwa_routes.py).
                 '/manifest.webmanifest', '/sw.js', '/offline',
                 # The language switcher of public pages: it only sets the `lang` cookie (test_languages.py).
                 '/language/{code}'}
# DELETE /api/uploads/{upload_id} returns 204 to anyone, because it only removes the caller's own upload.
# GET /api/me/export.zip takes no id: it serves the signed-in patient's own data, and 404 to anyone else.
OWN_ONLY_ROUTES = {'/api/uploads/{upload_id}', '/api/me/export.zip'}
# Share links: no sign-in, the secret in the address (and an optional access code) decides
# (tests/services/test_sharing.py and tests/pages/test_sharing_pages.py).
SHARE_ROUTES = {'/shared/{token}', '/api/shared/{grant}/report.pdf', '/api/shared/{grant}/images.zip',
                '/api/shared/{grant}/series/{series_id}/slices/{index}.png'}


def _role(persona: str) -> str:
    if persona.startswith('doc'):
        return 'doctor'
    if persona == 'admin':
        return 'admin'
    return 'patient'


def _missing_path(path: str, case: Case) -> str:
    """Return the path with the case's ids replaced by an id that exists nowhere."""
    for known in (case.exam_id, case.upload_id, case.checkout_ref):
        if known:
            path = path.replace(known, MISSING)
    return path


def _comparable(answer: PageAnswer) -> tuple[int, str]:
    return answer.status, UUID.sub('<uuid>', answer.body)


def _page_outcome(user: User) -> str:
    markers = {marker for element in user.current_layout.descendants() for marker in element._markers}
    if 'not-found' in markers:
        return 'not found'
    if 'sign-in' in markers:
        return 'sign-in page'
    return 'shown'


async def _as(user: User, world: World, persona: str) -> None:
    user.http_client.cookies.set(sessions.COOKIE_NAME, world.tokens[persona])


async def _call(user: User, route: Route, path: str) -> tuple[int, bytes]:
    if route.method == 'POST':
        body = {'folder': False, 'files': [{'name': 'a.dcm', 'size': 10}]} if path.endswith('/uploads') else None
        response = await user.http_client.post(path, json=body)
    else:
        response = await user.http_client.get(path)
    return response.status_code, response.content


async def test_every_route_for_every_persona(user: User, world: World):
    await user.open('/')
    not_found_api = None
    not_found_page: PageAnswer | None = None
    mistakes = []
    for persona in world.actors:
        await _as(user, world, persona)
        for route in ROUTES:
            for case in world.cases:
                path = route.path(case)
                if path is None:
                    continue
                expected = route.allowed(persona, case)
                if route.page:
                    answer = await open_page(user, path)
                    outcome = _page_outcome(user)
                    allowed = outcome == 'shown'
                    if not allowed and outcome != 'not found':
                        mistakes.append(f'{persona} {path}: {outcome}')
                    if outcome == 'not found':
                        missing = await open_page(user, _missing_path(path, case))
                        not_found_page = not_found_page or missing
                        if _comparable(answer) != _comparable(missing):
                            mistakes.append(f'{persona} {path}: status {answer.status} and body differ from a '
                                            f'missing id (status {missing.status})')
                else:
                    status, body = await _call(user, route, path)
                    # Any answer but 404 means the object was reached (an upload whose files did not
                    # arrive answers 400 to its owner, for example).
                    allowed = status != 404
                    if not allowed:
                        missing = await _call(user, route, _missing_path(path, case))
                        not_found_api = not_found_api or missing
                        if (status, body) != missing:
                            mistakes.append(f'{persona} {path}: {status} {body[:80]!r} differs from a missing id '
                                            f'{missing[0]} {missing[1][:80]!r}')
                if allowed != expected:
                    mistakes.append(f'{persona} ({case.name}) {route.method} {route.template}: '
                                    f'{"allowed" if allowed else "refused"}, expected '
                                    f'{"allowed" if expected else "refused"}')
    assert mistakes == [], '\n'.join(mistakes)
    assert not_found_api is not None
    assert not_found_api[0] == 404
    assert not_found_page is not None
    assert not_found_page.status == 404


async def test_role_pages_for_every_persona(user: User, world: World):
    mistakes = []
    for persona in world.actors:
        await _as(user, world, persona)
        for path, roles in ROLE_PAGES.items():
            answer = await open_page(user, path)
            outcome = _page_outcome(user)
            expected = 'shown' if _role(persona) in roles else 'not found'
            if outcome != expected:
                mistakes.append(f'{persona} {path}: {outcome}, expected {expected}')
            expected_status = 200 if expected == 'shown' else 404
            if answer.status != expected_status:
                mistakes.append(f'{persona} {path}: status {answer.status}, expected {expected_status}')
    assert mistakes == []


async def test_unknown_path_not_found(user: User, world: World):
    for persona in (None, *world.actors):
        if persona is None:
            user.http_client.cookies.delete(sessions.COOKIE_NAME)
        else:
            await _as(user, world, persona)
        answer = await open_page(user, '/no/such/page')
        assert answer.status == 404, persona
        assert _page_outcome(user) == 'not found', persona
        # The app's own frame, with the navigation of the persona's role, not NiceGUI's error page.
        await user.should_see('SecondOpinion')
        await user.should_see('Sign out' if persona else 'Sign in')

    response = await user.http_client.get('/api/no/such/route')
    assert response.status_code == 404
    assert response.json() == {'detail': 'Not found'}


async def test_signed_out_routes_refused(user: User, world: World):
    user.http_client.cookies.delete(sessions.COOKIE_NAME)
    for route in ROUTES:
        for case in world.cases:
            path = route.path(case)
            if path is None:
                continue
            if route.page:
                await user.open(path)
                await user.should_see(marker='sign-in')
            else:
                assert (await _call(user, route, path))[0] == 404, path


def test_matrix_covers_every_route(user: User):
    covered = ({route.template for route in ROUTES} | set(ROLE_PAGES) | PUBLIC_ROUTES | OWN_ONLY_ROUTES
               | SHARE_ROUTES)
    served = {route.path for route in app.routes if hasattr(route, 'path') and not route.path.startswith('/_nicegui')}
    assert served - covered == set(), 'routes missing from the persona matrix'
