"""The translation catalogs against the code: every msgid translated, with the same placeholders.

The msgids come from the same extraction as scripts/update_translations.py, so a failure here
is fixed by running that script and translating the new entries of each messages.po.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from secondopinion import i18n

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = [code for code in i18n.LANGUAGES if code != i18n.DEFAULT_LANGUAGE]
MARKERS = {'_', 'N_', 'gettext', 'ngettext'}


def _load_script():
    spec = importlib.util.spec_from_file_location('update_translations', ROOT / 'scripts' / 'update_translations.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def template():
    return _load_script().extract_template()


def _placeholders(text: str) -> set[str]:
    return set(i18n.PLACEHOLDER.findall(text))


def test_extraction_finds_known_msgids(template):
    ids = {message.id for message in template if message.id}
    assert 'My examinations' in ids
    assert ('{count} image', '{count} images') in ids
    assert 'Your second opinion report is ready' in ids
    assert 'Findings' in ids


@pytest.mark.parametrize('language', LANGUAGES)
def test_catalog_translates_every_msgid(template, language):
    with i18n.catalog_path(language).open('rb') as source:
        catalog = read_po(source, locale=language)
    missing, fuzzy, mismatched = [], [], []
    for message in template:
        if not message.id:
            continue
        entry = catalog.get(message.id)
        if entry is None or not (entry.string if isinstance(entry.string, str) else all(entry.string)):
            missing.append(message.id)
            continue
        if entry.fuzzy:
            fuzzy.append(message.id)
        if isinstance(message.id, tuple):
            expected = _placeholders(message.id[0]) | _placeholders(message.id[1])
            translations = entry.string
        else:
            expected = _placeholders(message.id)
            translations = (entry.string,)
        for translation in translations:
            # A singular form may leave out {count} ("one image" style), but no form may add or lose another name.
            found = _placeholders(translation)
            if found - expected or (expected - {'count'}) - found:
                mismatched.append((message.id, translation))
    assert not missing, f'{language} catalog lacks translations (run scripts/update_translations.py): {missing}'
    assert not fuzzy, f'{language} catalog has fuzzy entries to review: {fuzzy}'
    assert not mismatched, f'{language} translations with other placeholders than the msgid: {mismatched}'


def test_no_formatted_strings_as_msgids():
    """An f-string or a %-formatted string passed to _() cannot be found in a catalog."""
    offenders = []
    for path in sorted((ROOT / 'secondopinion').rglob('*.py')):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MARKERS \
                    and node.args and isinstance(node.args[0], (ast.JoinedStr, ast.BinOp)):
                offenders.append(f'{path.relative_to(ROOT)}:{node.lineno}')
    assert not offenders, f'pass named placeholders instead of formatted strings: {offenders}'


@pytest.mark.parametrize('language', LANGUAGES)
def test_catalog_loads_and_translates(language):
    with i18n.use_language(language):
        assert i18n.gettext('My examinations') != 'My examinations'
        assert i18n.current_language() == language
