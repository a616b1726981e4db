"""Translations and locale formatting: English source strings, a catalog per further language.

Every user-visible string is an English msgid passed through `_()` (or `ngettext()` where a count
decides the form). Placeholders are named, as in `_('Created {time}', time=...)`, so a translator
may reorder them. Strings defined at import time are marked with `N_()` and translated where they
are shown. Domain errors carry their msgid and placeholder values and are translated at display
(`error_message`).

The language of a piece of work is a context variable: pages set it from the signed-in user, the
`lang` cookie or the browser's Accept-Language (see pages/language.py), and emails, texts and
PDFs are rendered inside `use_language(recipient_language)`. Outside both, `_()` calls the
resolver that pages register (`set_fallback_resolver`), and else uses English.

The catalogs are the `.po` files under `locales/`, read with Babel when first used. No compiled
`.mo` files exist: the `.po` file is the only copy to review and change, and reading the small
catalogs once per process costs a few milliseconds.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency

logger = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent / 'locales'
DOMAIN = 'messages'
DEFAULT_LANGUAGE = 'en'
# Language code -> the language's own name, as the switchers show it.
LANGUAGES = {'en': 'English', 'tr': 'Türkçe'}
# Language code -> the Babel locale that formats its dates, times and amounts.
BABEL_LOCALES = {'en': 'en', 'tr': 'tr_TR'}
# Language code -> NiceGUI's (Quasar's) language, which also fills the `lang` attribute of <html>.
HTML_LANGUAGES = {'en': 'en-US', 'tr': 'tr'}
# CLDR date patterns: English keeps the app's "5 Dec 2026, 14:05", Turkish reads "5 Aralık 2026 14:05".
DATETIME_PATTERNS = {'en': 'd MMM y, HH:mm', 'tr': 'd MMMM y HH:mm'}
DATE_PATTERNS = {'en': 'd MMMM y', 'tr': 'd MMMM y'}
# English amounts keep the app's "1,234.50 CHF"; other languages use their locale's standard currency format.
MONEY_PATTERNS = {'en': '#,##0.00 ¤¤'}

PLACEHOLDER = re.compile(r'\{([A-Za-z_][A-Za-z0-9_]*)\}')

_language: ContextVar[str | None] = ContextVar('secondopinion_language', default=None)
_fallback_resolver: Callable[[], str | None] | None = None


def N_(message: str) -> str:  # noqa: N802 (the conventional gettext marker name)
    """Mark a string for translation without translating it, for constants translated where they are shown."""
    return message


def is_supported(code: str | None) -> bool:
    return code in LANGUAGES


def validate_language(code: str | None) -> str:
    """Return the language code when it is supported, else raise ValidationError (field "language")."""
    from ..services.errors import ValidationError

    if not is_supported(code):
        raise ValidationError(N_('Language "{code}" is not supported: choose one of {choices}.'),
                              field='language', code=code or '', choices=', '.join(LANGUAGES))
    return code  # type: ignore[return-value]


def negotiate(accept_language: str | None) -> str | None:
    """Return the supported language that an Accept-Language header prefers most, or None when it names none.

    Regions are ignored (tr-TR counts as tr); entries with q=0 are refused.
    """
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or '').split(',')):
        fields = part.strip().split(';')
        tag = fields[0].strip().lower()
        quality = 1.0
        for parameter in fields[1:]:
            name, _sep, value = parameter.strip().partition('=')
            if name.strip() == 'q':
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.split('-')[0]
        if quality > 0 and primary in LANGUAGES:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else None


# --- the active language -----------------------------------------------------------------------

def set_fallback_resolver(resolver: Callable[[], str | None]) -> None:
    """Register the function that names the language when no `use_language` or `set_language` is active."""
    global _fallback_resolver
    _fallback_resolver = resolver


def set_language(code: str | None) -> None:
    """Set the language of the current context (a request, a task); unsupported codes mean English."""
    _language.set(code if is_supported(code) else DEFAULT_LANGUAGE)


def current_language() -> str:
    code = _language.get()
    if code is None and _fallback_resolver is not None:
        code = _fallback_resolver()
    return code if is_supported(code) else DEFAULT_LANGUAGE


@contextmanager
def use_language(code: str | None) -> Iterator[str]:
    """Translate and format in `code` (English when unsupported) inside the block, e.g. for one recipient."""
    language = code if is_supported(code) else DEFAULT_LANGUAGE
    token = _language.set(language)
    try:
        yield language
    finally:
        _language.reset(token)


# --- catalogs ----------------------------------------------------------------------------------

def catalog_path(code: str) -> Path:
    return LOCALES_DIR / code / 'LC_MESSAGES' / f'{DOMAIN}.po'


@cache
def _translations(code: str) -> gettext_module.NullTranslations:
    """Read the `.po` catalog of a language once and return it as gettext translations (fuzzy entries skipped)."""
    if code == DEFAULT_LANGUAGE:
        return gettext_module.NullTranslations()
    path = catalog_path(code)
    with path.open('rb') as source:
        catalog = read_po(source, locale=code, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    logger.info('translation catalog %s read: %d messages', path.name, len(catalog))
    return gettext_module.GNUTranslations(buffer)


def _format(message: str, params: dict[str, Any]) -> str:
    if not params:
        return message
    # Only {name} placeholders are replaced, so other braces in a message need no escaping.
    return PLACEHOLDER.sub(lambda match: str(params[match.group(1)]) if match.group(1) in params
                           else match.group(0), message)


def gettext(message: str, **params: Any) -> str:
    """Translate `message` into the current language and fill its {named} placeholders from `params`."""
    return _format(_translations(current_language()).gettext(message), params)


def ngettext(singular: str, plural: str, count: int, **params: Any) -> str:
    """Translate the form for `count` and fill the placeholders; {count} is the count without digit grouping."""
    text = _translations(current_language()).ngettext(singular, plural, count)
    return _format(text, {'count': count, **params})


_ = gettext


class Message(str):
    """English text that keeps its msgid and placeholder values, for text composed before its language is known.

    It is a `str` whose value is the English text, so code that stores, compares or logs it works
    unchanged. `translate()` returns it in the current language, translating Message values too.
    """

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Message:
        message = super().__new__(cls, _format(msgid, params))
        message.msgid = msgid
        message.params = params
        return message

    def translate(self) -> str:
        return gettext(self.msgid, **{key: translate(value) for key, value in self.params.items()})


class JoinedMessage(Message):
    """Messages (or plain strings) joined by a separator, each translated on its own."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: list[str], separator: str = ' ') -> JoinedMessage:
        message = str.__new__(cls, separator.join(parts))
        message.msgid = str(message)
        message.params = {}
        message.parts = tuple(parts)
        message.separator = separator
        return message

    def translate(self) -> str:
        return self.separator.join(translate(part) for part in self.parts)


def translate(value: Any) -> Any:
    """Return a Message in the current language; any other value is returned unchanged."""
    return value.translate() if isinstance(value, Message) else value


def error_message(error: Exception) -> str:
    """Return a domain error's message in the current language, falling back to its English text."""
    msgid = getattr(error, 'msgid', None)
    if msgid is None:
        return str(error)
    params = {key: gettext(value) if key in getattr(error, 'translated_params', ()) else translate(value)
              for key, value in getattr(error, 'params', {}).items()}
    return gettext(msgid, **params)


# --- formatting --------------------------------------------------------------------------------

def babel_locale(code: str | None = None) -> str:
    return BABEL_LOCALES[code or current_language()]


def _as_utc(value: datetime) -> datetime:
    # The database layer returns aware UTC values; a naive value can only come from code that means UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def format_datetime(value: datetime | None, zone: ZoneInfo, *, with_zone: bool = True,
                    language: str | None = None) -> str:
    """Format a moment in `zone` and the language, e.g. "5 Dec 2026, 14:05 (Europe/Zurich)"; None gives "-"."""
    if value is None:
        return '-'
    code = language or current_language()
    local = _as_utc(value).astimezone(zone)
    text = babel_format_datetime(local, DATETIME_PATTERNS[code], tzinfo=zone, locale=BABEL_LOCALES[code])
    return f'{text} ({zone.key})' if with_zone else text


def format_date(value: date, *, language: str | None = None) -> str:
    """Format a calendar day, e.g. "5 December 2026" or "5 Aralık 2026"."""
    code = language or current_language()
    return babel_format_date(value, DATE_PATTERNS[code], locale=BABEL_LOCALES[code])


def format_money(cents: int | None, currency: str | None, *, language: str | None = None) -> str:
    """Format an amount in cents, e.g. "1,234.50 CHF" in English or "CHF 1.234,50" in Turkish; None gives "-"."""
    if cents is None:
        return '-'
    code = language or current_language()
    amount = Decimal(cents) / 100
    if not currency:
        return format_number(amount, language=code, decimals=2)
    return format_currency(amount, currency, format=MONEY_PATTERNS.get(code), locale=BABEL_LOCALES[code],
                           currency_digits=False)


def format_number(value: int | Decimal, *, language: str | None = None, decimals: int = 0) -> str:
    from babel.numbers import format_decimal

    code = language or current_language()
    pattern = '#,##0' + ('.' + '0' * decimals if decimals else '')
    return format_decimal(value, format=pattern, locale=BABEL_LOCALES[code])
