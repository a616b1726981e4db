"""The settings table of the Azure deployment guide, compared with the Settings class.

The table lists one row per setting: the environment variable, its default and what it does. Defaults
are written with `render_default`, so a failure here prints the exact cell (or whole row) to put in.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from secondopinion.config import Settings

GUIDE = Path(__file__).resolve().parents[1] / 'docs' / 'deploy-azure.md'
TABLE_HEADING = '## Every setting'
TABLE_HEADER = ['variable', 'default', 'meaning']
ENV_PREFIX = Settings.model_config['env_prefix']

# How the table writes a default: a value in backticks, exactly as it would be set in the environment,
# or one of these words.
EMPTY = 'empty'  # None or the empty string: the variable is unset, which turns the feature off
REQUIRED = 'required'  # a field without a default


def render_default(value: Any) -> str:
    """Render a field default as the table's default cell.

    Booleans are written as true or false, dicts as JSON, floats without a needless `.0`, and paths and
    numbers as text. None and the empty string become the word `empty`. A SecretStr is written as its
    value, because the only secret with a default is the development storage secret, which is public.
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == '':
        return EMPTY
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, dict):
        text = json.dumps(value)
    elif isinstance(value, float):
        text = f'{value:g}'
    else:
        text = str(value)
    return f'`{text}`'


def env_name(field_name: str) -> str:
    return f'{ENV_PREFIX}{field_name}'.upper()


def field_default_cell(field_name: str) -> str:
    field = Settings.model_fields[field_name]
    if field.is_required():
        return REQUIRED
    return render_default(field.get_default(call_default_factory=True))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def read_table() -> list[tuple[str, str, str]]:
    """Return the (variable, default, meaning) rows of the first table under TABLE_HEADING in the guide."""
    lines = GUIDE.read_text(encoding='utf-8').splitlines()
    assert TABLE_HEADING in lines, f'{GUIDE.name} has no line "{TABLE_HEADING}" above the settings table'
    start = lines.index(TABLE_HEADING) + 1
    while start < len(lines) and not lines[start].startswith('|'):
        assert not lines[start].startswith('#'), f'no table between "{TABLE_HEADING}" and the next heading'
        start += 1
    table = []
    for line in lines[start:]:
        if not line.startswith('|'):
            break
        table.append(line)
    assert len(table) >= 2, f'the table under "{TABLE_HEADING}" has no header and separator rows'
    assert [cell.lower() for cell in _cells(table[0])] == TABLE_HEADER, f'table header: {table[0]}'

    rows = []
    for line in table[2:]:
        cells = _cells(line)
        assert len(cells) == 3, f'this row must have three cells (a "|" inside a cell splits it): {line}'
        variable, default, meaning = cells
        match = re.fullmatch(r'`([A-Z0-9_]+)`', variable)
        assert match, f'write the variable in backticks, like `SECONDOPINION_HOST`, in this row: {line}'
        rows.append((match[1], default, meaning))
    return rows


def suggested_row(field_name: str) -> str:
    description = Settings.model_fields[field_name].description or 'what it does'
    return f'| `{env_name(field_name)}` | {field_default_cell(field_name)} | {description} |'


def test_table_lists_every_setting():
    listed = {variable for variable, _, _ in read_table()}
    missing = [name for name in Settings.model_fields if env_name(name) not in listed]
    rows_to_add = '\n'.join(suggested_row(name) for name in missing)
    assert not missing, f'add these rows to the table in {GUIDE.name}:\n{rows_to_add}'


def test_table_lists_only_settings():
    variables = {env_name(name) for name in Settings.model_fields}
    unknown = [variable for variable, _, _ in read_table() if variable not in variables]
    assert not unknown, f'these rows of {GUIDE.name} name no field of Settings: {unknown}'


def test_table_lists_each_setting_once():
    listed = [variable for variable, _, _ in read_table()]
    repeated = sorted({variable for variable in listed if listed.count(variable) > 1})
    assert not repeated


def test_table_defaults_match_settings():
    wrong = []
    for variable, default, _ in read_table():
        field_name = variable.removeprefix(ENV_PREFIX).lower()
        if field_name in Settings.model_fields and default != field_default_cell(field_name):
            wrong.append(f'{variable}: the table has {default}, Settings has {field_default_cell(field_name)}')
    assert not wrong, '\n'.join(wrong)


def test_every_row_says_what_it_does():
    unexplained = [variable for variable, _, meaning in read_table() if len(meaning.split()) < 3]
    assert not unexplained


def test_table_defaults_set_in_environment_give_defaults(monkeypatch):
    """An operator who copies a default from the table into the environment gets the app's default."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    copied = {}
    for variable, default, _ in read_table():
        if default.startswith('`') and default.endswith('`'):
            monkeypatch.setenv(variable, default[1:-1])
            copied[variable.removeprefix(ENV_PREFIX).lower()] = variable
    assert copied, 'no row has a default in backticks'

    settings = Settings(_env_file=None)
    for field_name, variable in copied.items():
        value = getattr(settings, field_name)
        expected = Settings.model_fields[field_name].get_default(call_default_factory=True)
        if isinstance(value, SecretStr):
            value, expected = value.get_secret_value(), expected.get_secret_value()
        assert value == expected, variable


def test_guide_names_only_existing_settings():
    """Every SECONDOPINION_ variable the guide's text and commands mention exists, so a typo cannot slip in."""
    mentioned = set(re.findall(rf'\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]\b', GUIDE.read_text(encoding='utf-8')))
    unknown = sorted(mentioned - {env_name(name) for name in Settings.model_fields})
    assert not unknown


@pytest.mark.parametrize(('value', 'cell'), [
    (None, 'empty'),
    ('', 'empty'),
    (SecretStr('development value'), '`development value`'),
    (False, '`false`'),
    (True, '`true`'),
    ({'CT': 15000}, '`{"CT": 15000}`'),
    (5.0, '`5`'),
    (0.2, '`0.2`'),
    (1073741824, '`1073741824`'),
    (Path('data'), '`data`'),
])
def test_render_default(value, cell):
    assert render_default(value) == cell
