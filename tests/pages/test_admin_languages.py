"""The admin panel in Turkish: tabs, examinations, incomes, audit log and patients."""

from __future__ import annotations

from datetime import date

from nicegui.testing import User

from secondopinion import i18n
from secondopinion.services import profile
from tests.services.flow import paid

from .helpers import set_value, sign_in


async def _turkish_admin(user: User, admin) -> None:  # noqa: ANN001
    profile.set_language(actor=admin, language='tr')
    await sign_in(user, 'admin@example.org')
    await user.should_see('Yönetim paneli')


async def test_admin_tabs_in_turkish(user: User, admin):
    await _turkish_admin(user, admin)
    for label in ('Doktorlar', 'Hastalar', 'Tetkikler', 'Gelirler', 'Bildirimler', 'Denetim kaydı'):
        await user.should_see(label)
    await user.should_see('Doktor hesabı oluştur')
    await user.should_not_see('Create a doctor account')
    await user.should_not_see('Audit log')


async def test_examinations_tab_in_turkish(user: User, admin, make_patient):
    paid(make_patient('Dora Hasta', email='dora@example.org'))
    await _turkish_admin(user, admin)
    user.find('Tetkikler').click()
    await user.should_see('Radyolog bekleniyor: 1')
    await user.should_see('Söz verilen rapor süresini aşanlar')
    await user.should_see('Söz verilen süreyi aşan vaka yok.')
    await user.should_not_see('Waiting for a radiologist: 1')


async def test_incomes_tab_in_turkish(user: User, admin, make_patient):
    paid(make_patient('Dora Hasta', email='dora@example.org'))
    await _turkish_admin(user, admin)
    user.find('Gelirler').click()
    await user.should_see(marker='ledger-totals-EUR')
    await user.should_see('Gelir (iadeler düşüldükten sonra)')
    await user.should_see('Doktor hakedişleri')
    await user.should_see('Hesap hareketleri')
    # Amounts in the Turkish locale's format, "€45,00", not the English "45.00 EUR".
    await user.should_see(i18n.format_money(4500, 'EUR', language='tr'))
    await user.should_not_see('45.00 EUR')
    await user.should_not_see('Doctor payouts')


async def test_audit_tab_in_turkish(user: User, admin, make_patient):
    make_patient('Bea Hasta', email='bea@example.org')
    await _turkish_admin(user, admin)
    user.find('Denetim kaydı').click()
    await user.should_see(marker='audit-table')
    user.find(marker='audit-user').type('bea@example.org')
    user.find(marker='audit-search').click()
    await user.should_see('Sayfa 1 / 1 (1 olay)')
    await user.should_see('CSV olarak dışa aktar')

    set_value(user, 'audit-from', '2026-13-40')
    await user.should_see('"başlangıç" tarihi "2026-13-40" geçersiz: tarihi YYYY-AA-GG biçiminde seçin.')


async def test_patients_tab_in_turkish(user: User, admin, make_patient):
    paid(make_patient('Dora Hasta', email='dora@example.org'))
    await _turkish_admin(user, admin)
    user.find('Hastalar').click()
    await user.should_see(marker='patient-dora@example.org')
    details = user.find(marker='patient-details-dora@example.org').elements.pop().text
    assert f'doğum tarihi {i18n.format_date(date(1980, 5, 17), language="tr")}' in details
    assert '17 Mayıs 1980' in details
    assert '1 tetkik' in details
    assert 'kayıt ' in details
    await user.should_see('1 hasta')
    await user.should_see('Devre dışı bırak')
    await user.should_not_see('1 examination')

    user.find(marker='toggle-patient-dora@example.org').click()
    await user.should_see('Dora Hasta adlı kullanıcının hesabı devre dışı bırakılsın mı?')
    await user.should_see('Hesabın tetkikleri ve raporları olduğu gibi kalır.')
