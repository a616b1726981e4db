"""Pages in Turkish: the patient's list, detail, new-examination form and profile, and the switcher."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from nicegui.testing import User

from secondopinion import i18n
from secondopinion.services import accounts, examinations, profile
from tests.services.flow import paid

from .helpers import open_page, set_value, sign_in


async def _turkish_patient(user: User, make_patient):  # noqa: ANN001, ANN202
    patient = make_patient('Şükrü Yılmaz', email='sukru@example.org')
    profile.set_language(actor=patient, language='tr')
    await sign_in(user, 'sukru@example.org')
    return accounts.get_actor(patient.user_id)


async def test_exam_list_in_turkish(user: User, make_patient):
    await _turkish_patient(user, make_patient)
    await user.should_see('Tetkiklerim')
    await user.should_see('Henüz tetkikiniz yok.')
    await user.should_see('Yeni tetkik başlat')
    await user.should_not_see('My examinations')
    answer = await open_page(user, '/exams')
    assert '<html lang="tr"' in answer.body


async def test_exam_detail_in_turkish(user: User, make_patient):
    patient = await _turkish_patient(user, make_patient)
    exam_id = paid(patient)
    exam = examinations.get_exam(actor=patient, examination_id=exam_id)

    await user.open('/exams')
    await user.should_see('Radyolog bekleniyor')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Ödendi. Vakanız bir radyoloğun üstlenmesini bekliyor.')
    await user.should_see('Zaman çizelgesi')
    await user.should_see('BT (bilgisayarlı tomografi)')
    await user.should_see(i18n.format_money(exam.price_cents, exam.currency, language='tr'))
    # Dates read as in Turkish, with the month's name: "5 Aralık 2026 14:30 (UTC)".
    paid_at = i18n.format_datetime(exam.paid_at, ZoneInfo('UTC'), language='tr')
    await user.should_see(paid_at)
    await user.should_see('Tetkiki iptal et')
    await user.should_not_see('Cancel examination')


async def test_new_exam_form_in_turkish(user: User, make_patient):
    await _turkish_patient(user, make_patient)
    await user.open('/exams/new')
    await user.should_see('Yeni tetkik')
    await user.should_see('Görüntüler')
    await user.should_see('Taslağı kaydet')
    await user.should_see('Görüntülerin bağlantısı')
    await user.should_see('Tetkik türü')
    await user.should_see('Acil (önce incelenir, ücreti daha yüksektir)')


async def test_profile_language_change(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.open('/profile')
    await user.should_see('Change your password')
    set_value(user, 'language', 'tr')
    user.find(marker='save-language').click()
    await user.should_see('Şifrenizi değiştirin')
    assert accounts.get_actor(patient.user_id).language == 'tr'

    await user.open('/exams')
    await user.should_see('Tetkiklerim')


async def test_public_switcher_and_registration(user: User):
    response = await user.http_client.get('/language/tr', params={'next': '/register'})
    assert response.status_code == 303
    assert response.headers['location'] == '/register'
    assert user.http_client.cookies.get('lang') == 'tr'

    await user.open('/register')
    await user.should_see('Hasta hesabı oluşturun')
    await user.should_see(marker='language-en')
    user.find(marker='name').type('Ayşe Kaya')
    user.find(marker='email').type('ayse@example.org')
    set_value(user, 'date_of_birth', '1985-01-02')
    user.find(marker='password').type('correct horse battery staple')
    user.find(marker='register').click()
    await user.should_see('Tetkiklerim')
    with_account = accounts.authenticate(email='ayse@example.org', password='correct horse battery staple')
    assert with_account.language == 'tr'


async def test_browser_language_chooses_turkish(user: User):
    user.http_client.headers['Accept-Language'] = 'tr-TR,tr;q=0.9,en;q=0.5'
    await user.open('/login')
    await user.should_see('Şifrenizi mi unuttunuz?')
    answer = await open_page(user, '/login')
    assert '<html lang="tr"' in answer.body


async def test_english_stays_default(user: User):
    await user.open('/login')
    await user.should_see('Forgot your password?')
    answer = await open_page(user, '/login')
    assert '<html lang="en-US"' in answer.body


async def test_unknown_language_rejected(user: User):
    response = await user.http_client.get('/language/de', params={'next': '/register'})
    assert response.status_code == 400
    assert 'Language "de" is not supported: choose one of en, tr.' in response.text
    assert user.http_client.cookies.get('lang') is None


async def test_switcher_ignores_foreign_next(user: User):
    response = await user.http_client.get('/language/tr', params={'next': '//evil.example/'})
    assert response.status_code == 303
    assert response.headers['location'] == '/'
