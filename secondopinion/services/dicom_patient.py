"""Patient attributes of a DICOM header in readable form: name, sex and age. No database access.

Each function returns '' for a missing or invalid value and leaves the reading of the file to
dicom.parse_dicom, which keeps a file whose patient attributes are unreadable.
"""

from __future__ import annotations

import datetime as dt
import re

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

# An Age String (VR AS) is three digits and a unit: D days, W weeks, M months or Y years. One or
# two digits are accepted too, because some writers drop the leading zeros.
AGE_PATTERN = re.compile(r'(\d{1,3})([DWMY])')
AGE_UNITS = {'D': 'day', 'W': 'week', 'M': 'month', 'Y': 'year'}
# A birth date that gives an older age is taken as a placeholder (pydicom's chrJapMulti.dcm test file
# has 1800-01-01) and gives no age. NOTE: 130 years is a chosen bound above the oldest recorded human
# age (122), not a DICOM rule.
MAX_AGE_YEARS = 130
SEX_CODES = {'M': 'M', 'F': 'F', 'O': 'O', 'MALE': 'M', 'FEMALE': 'F', 'OTHER': 'O'}
PERSON_NAME_COMPONENTS = 5  # family, given, middle, prefix and suffix, separated by "^"


def patient_name(dataset: Dataset) -> str:
    """Return the Patient's Name decoded with the file's Specific Character Set, for display.

    The first non-empty component group (normally the alphabetic one) is shown as "Family, Given
    Middle Prefix Suffix". The other non-empty groups (ideographic and phonetic, as Japanese, Korean
    and Chinese files write them) follow in brackets with their components separated by spaces, so
    "Yamada^Tarou=山田^太郎=やまだ^たろう" becomes "Yamada, Tarou (山田 太郎, やまだ たろう)".
    """
    value = dataset.get('PatientName')
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    if isinstance(value, str):
        value = PersonName(value)  # a file that writes the name with another VR than PN
    if not isinstance(value, PersonName):
        return ''
    groups = [_components(group) for group in value.components]
    groups = [group for group in groups if any(group)]
    if not groups:
        return ''
    first = _format_first_group(groups[0])
    others = [' '.join(part for part in group if part) for group in groups[1:]]
    return f'{first} ({", ".join(others)})' if others else first


def _components(group: str) -> list[str]:
    parts = [part.replace('\x00', '').strip() for part in group.split('^')]
    return (parts + [''] * PERSON_NAME_COMPONENTS)[:PERSON_NAME_COMPONENTS]


def _format_first_group(group: list[str]) -> str:
    family, given, middle, prefix, suffix = group
    rest = ' '.join(part for part in (given, middle, prefix, suffix) if part)
    if family and rest:
        return f'{family}, {rest}'
    return family or rest


def patient_sex(dataset: Dataset) -> str:
    """Return Patient's Sex as M, F or O, also when written as MALE, FEMALE or OTHER, or '' for any other value."""
    value = str(dataset.get('PatientSex', '') or '').replace('\x00', '').strip().upper()
    return SEX_CODES.get(value, '')


def patient_age(dataset: Dataset, study_date: str) -> str:
    """Return the patient's age at the study as an Age String such as '045Y', or ''.

    Patient's Age is used when valid. Otherwise the age is computed from Patient's Birth Date and
    `study_date` (YYYYMMDD): in years from one year on, else in months, else in days.
    """
    text = str(dataset.get('PatientAge', '') or '').replace('\x00', '').strip().upper()
    match = AGE_PATTERN.fullmatch(text)
    if match:
        return f'{int(match.group(1)):03d}{match.group(2)}'
    birth_text = ''.join(character for character in str(dataset.get('PatientBirthDate', '') or '')
                         if character.isdigit())
    return age_between(birth_text[:8], study_date)


def age_between(birth_date: str, study_date: str) -> str:
    """Return the age on study_date of someone born on birth_date, both YYYYMMDD, as an Age String, or ''."""
    birth = _parse_date(birth_date)
    study = _parse_date(study_date)
    if birth is None or study is None or birth > study:
        return ''
    before_birthday = (study.month, study.day) < (birth.month, birth.day)
    years = study.year - birth.year - before_birthday
    if years > MAX_AGE_YEARS:
        return ''
    if years >= 1:
        return f'{years:03d}Y'
    months = (study.year - birth.year) * 12 + study.month - birth.month - (study.day < birth.day)
    if months >= 1:
        return f'{months:03d}M'
    return f'{(study - birth).days:03d}D'


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, '%Y%m%d').date()
    except ValueError:
        return None


def format_age(value: str) -> str:
    """Turn an Age String such as '045Y' into '45 years', or '' when it is not a valid Age String."""
    match = AGE_PATTERN.fullmatch(value or '')
    if not match:
        return ''
    number = int(match.group(1))
    unit = AGE_UNITS[match.group(2)]
    return f'{number} {unit}' if number == 1 else f'{number} {unit}s'
