"""Refresh the message template and the translation catalogs from the code.

    python scripts/update_translations.py

Extracts every string passed to `_()`, `N_()`, `gettext()` and `ngettext()` under secondopinion/
into secondopinion/i18n/locales/messages.pot, then merges the template into each language's
messages.po: new msgids arrive untranslated, changed ones are marked fuzzy (and not used until a
translator confirms them), and removed ones are kept as obsolete entries at the end of the file.
tests/test_translations.py fails while a catalog lacks a translation or changes a placeholder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from secondopinion import i18n  # noqa: E402 (after the path set-up)

logger = logging.getLogger('update_translations')

PACKAGE = ROOT / 'secondopinion'
TEMPLATE = i18n.LOCALES_DIR / f'{i18n.DOMAIN}.pot'
# Function name -> the positions of its msgid arguments, as Babel's extractor expects them.
KEYWORDS = {'_': None, 'N_': None, 'gettext': None, 'ngettext': (1, 2)}


def extract_template() -> Catalog:
    """Return a catalog of every msgid in the package, with the files and lines that use it."""
    template = Catalog(project='SecondOpinion', domain=i18n.DOMAIN, charset='utf-8', fuzzy=False)
    method_map = [('**.py', 'python')]
    for filename, lineno, message, comments, context in extract_from_dir(
            PACKAGE, method_map, keywords=KEYWORDS, comment_tags=('Translators:',), strip_comment_tags=True):
        template.add(message, None, [(f'secondopinion/{filename}', lineno)], auto_comments=comments,
                     context=context)
    return template


def update_catalog(template: Catalog, language: str) -> Path:
    """Merge the template into one language's catalog and write it back."""
    path = i18n.catalog_path(language)
    if path.exists():
        with path.open('rb') as source:
            catalog = read_po(source, locale=language, domain=i18n.DOMAIN)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, domain=i18n.DOMAIN, project='SecondOpinion')
    catalog.update(template, update_header_comment=False)
    with path.open('wb') as target:
        write_po(target, catalog, width=100, sort_output=False, include_previous=True)
    return path


def main() -> int:
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    template = extract_template()
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    with TEMPLATE.open('wb') as target:
        write_po(target, template, width=100, omit_header=False)
    logger.info('%s: %d msgids', TEMPLATE.relative_to(ROOT), len(template))
    for language in i18n.LANGUAGES:
        if language == i18n.DEFAULT_LANGUAGE:
            continue
        path = update_catalog(template, language)
        logger.info('%s updated', path.relative_to(ROOT))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
