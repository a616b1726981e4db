"""De-identification of DICOM headers with the Basic Application Confidentiality Profile.

The profile is the one of DICOM PS3.15 Annex E (Table E.1-1), with the Retain Patient
Characteristics Option, so that PatientAge, PatientSex, PatientSize and PatientWeight stay.
Every function works on a dataset in memory: nothing here reads or writes storage, and the pixel
data is never changed.

Actions are the profile's codes: X removes the element, Z replaces it with an empty value,
D replaces it with a dummy value, U replaces a UID with a new one, and K keeps it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
from collections.abc import Callable
from typing import BinaryIO

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

REMOVE, EMPTY, DUMMY, KEEP = 'X', 'Z', 'D', 'K'

# The identifying attributes of PS3.15 Table E.1-1 by keyword, with the action chosen where the
# table allows several (X/Z/D: the first one that keeps a type 1 or 2 attribute valid). Elements
# that the table does not list here are still handled by the rules by VR in `_action_for`: every
# other person name and date or time is removed and every non-standard UID is replaced.
BASIC_PROFILE: dict[str, str] = {
    # Patient identification, addresses and contacts
    'PatientName': EMPTY, 'PatientID': EMPTY, 'PatientBirthDate': EMPTY, 'PatientBirthTime': REMOVE,
    'IssuerOfPatientID': REMOVE, 'IssuerOfPatientIDQualifiersSequence': REMOVE,
    'OtherPatientIDs': REMOVE, 'OtherPatientIDsSequence': REMOVE, 'OtherPatientNames': REMOVE,
    'PatientBirthName': REMOVE, 'PatientMotherBirthName': REMOVE, 'PatientAddress': REMOVE,
    'PatientTelephoneNumbers': REMOVE, 'PatientTelecomInformation': REMOVE, 'CountryOfResidence': REMOVE,
    'RegionOfResidence': REMOVE, 'MilitaryRank': REMOVE, 'BranchOfService': REMOVE,
    'MedicalRecordLocator': REMOVE, 'PatientInsurancePlanCodeSequence': REMOVE,
    'PatientPrimaryLanguageCodeSequence': REMOVE, 'PatientReligiousPreference': REMOVE,
    'EthnicGroup': REMOVE, 'Occupation': REMOVE, 'ResponsiblePerson': REMOVE, 'ResponsibleOrganization': REMOVE,
    'PatientComments': REMOVE, 'AdditionalPatientHistory': REMOVE, 'MedicalAlerts': REMOVE, 'Allergies': REMOVE,
    'SmokingStatus': REMOVE, 'PregnancyStatus': REMOVE, 'LastMenstrualDate': REMOVE,
    'SpecialNeeds': REMOVE, 'PatientState': REMOVE, 'ReferencedPatientSequence': REMOVE,
    'ReferencedPatientPhotoSequence': REMOVE, 'PatientBirthDateInAlternativeCalendar': REMOVE,
    'PatientDeathDateInAlternativeCalendar': REMOVE, 'PatientAlternativeCalendar': REMOVE,
    # Patient characteristics kept by the Retain Patient Characteristics Option
    'PatientAge': KEEP, 'PatientSex': KEEP, 'PatientSize': KEEP, 'PatientWeight': KEEP,
    # Visit, admission and request
    'AdmissionID': REMOVE, 'IssuerOfAdmissionIDSequence': REMOVE, 'AdmittingDiagnosesDescription': REMOVE,
    'AdmittingDiagnosesCodeSequence': REMOVE, 'CurrentPatientLocation': REMOVE, 'PatientInstitutionResidence': REMOVE,
    'VisitComments': REMOVE, 'ServiceEpisodeID': REMOVE, 'ServiceEpisodeDescription': REMOVE,
    'AccessionNumber': EMPTY, 'IssuerOfAccessionNumberSequence': REMOVE, 'StudyID': EMPTY,
    'RequestAttributesSequence': REMOVE, 'RequestedProcedureID': REMOVE, 'RequestedProcedureDescription': REMOVE,
    'RequestedProcedureComments': REMOVE, 'ReasonForTheRequestedProcedure': REMOVE,
    'ReasonForStudy': REMOVE, 'RequestingService': REMOVE, 'PlacerOrderNumberImagingServiceRequest': REMOVE,
    'FillerOrderNumberImagingServiceRequest': REMOVE, 'ImagingServiceRequestComments': REMOVE,
    'ScheduledProcedureStepID': REMOVE, 'ScheduledProcedureStepDescription': REMOVE,
    'PerformedProcedureStepID': REMOVE, 'PerformedProcedureStepDescription': REMOVE,
    'PerformedProcedureStepStartDate': REMOVE, 'PerformedProcedureStepStartTime': REMOVE,
    'PerformedProcedureStepEndDate': REMOVE, 'PerformedProcedureStepEndTime': REMOVE,
    'ReferencedPerformedProcedureStepSequence': REMOVE, 'ReferencedStudySequence': REMOVE,
    'ProcedureCodeSequence': REMOVE, 'RequestedContrastAgent': REMOVE,
    # Staff and institution
    'ReferringPhysicianName': EMPTY, 'ReferringPhysicianAddress': REMOVE,
    'ReferringPhysicianTelephoneNumbers': REMOVE, 'ReferringPhysicianIdentificationSequence': REMOVE,
    'ConsultingPhysicianName': REMOVE, 'ConsultingPhysicianIdentificationSequence': REMOVE,
    'PhysiciansOfRecord': REMOVE, 'PhysiciansOfRecordIdentificationSequence': REMOVE,
    'PerformingPhysicianName': REMOVE, 'PerformingPhysicianIdentificationSequence': REMOVE,
    'NameOfPhysiciansReadingStudy': REMOVE, 'PhysiciansReadingStudyIdentificationSequence': REMOVE,
    'RequestingPhysician': REMOVE, 'ScheduledPerformingPhysicianName': REMOVE,
    'OperatorsName': REMOVE, 'OperatorIdentificationSequence': REMOVE,
    'InstitutionName': REMOVE, 'InstitutionAddress': REMOVE, 'InstitutionCodeSequence': REMOVE,
    'InstitutionalDepartmentName': REMOVE, 'InstitutionalDepartmentTypeCodeSequence': REMOVE,
    'StationName': REMOVE, 'DeviceSerialNumber': REMOVE, 'DeviceUID': REMOVE, 'PlateID': REMOVE,
    'DetectorID': REMOVE, 'GantryID': REMOVE, 'CassetteID': REMOVE, 'GeneratorID': REMOVE,
    'ContentCreatorName': EMPTY, 'VerifyingObserverName': DUMMY, 'PersonName': DUMMY,
    'PersonAddress': REMOVE, 'PersonTelephoneNumbers': REMOVE, 'OrderEnteredBy': REMOVE,
    'OrderEntererLocation': REMOVE, 'OrderCallbackPhoneNumber': REMOVE,
    # Free text that may name the patient
    'StudyDescription': REMOVE, 'SeriesDescription': REMOVE, 'ProtocolName': REMOVE,
    'ImageComments': REMOVE, 'StudyComments': REMOVE, 'InterpretationText': REMOVE,
    'DerivationDescription': REMOVE, 'AcquisitionComments': REMOVE, 'TextString': REMOVE, 'TextValue': REMOVE,
    'TopicTitle': REMOVE, 'TopicSubject': REMOVE, 'TopicAuthor': REMOVE, 'TopicKeywords': REMOVE,
    'IdentifyingComments': REMOVE, 'FrameComments': REMOVE, 'DischargeDiagnosisDescription': REMOVE,
    'ModifiedAttributesSequence': REMOVE, 'OriginalAttributesSequence': REMOVE,
    'DigitalSignaturesSequence': REMOVE, 'DataSetTrailingPadding': REMOVE,
    # Dates and times of the study. Type 2 ones stay present but empty.
    'StudyDate': EMPTY, 'StudyTime': EMPTY, 'ContentDate': EMPTY, 'ContentTime': EMPTY,
    'InstanceCreationDate': REMOVE, 'InstanceCreationTime': REMOVE,
}

# DeidentificationMethodCodeSequence items (CID 7050): the profile and the option applied.
METHOD_CODES = (('113100', 'Basic Application Confidentiality Profile'),
                ('113108', 'Retain Patient Characteristics Option'))
METHOD_TEXT = 'PS3.15 E.1 Basic Profile, Retain Patient Characteristics'  # LO: 64 at most
DUMMY_VALUES = {'PN': 'ANONYMOUS', 'LO': 'ANONYMOUS', 'SH': 'ANONYMOUS', 'DA': '19000101', 'TM': '000000'}
DATE_TIME_VRS = ('DA', 'DT', 'TM')
# Elements kept whatever their VR, because the file cannot be read without them.
ALWAYS_KEEP = {'SpecificCharacterSet', 'SOPClassUID', 'TransferSyntaxUID', 'PixelData', 'FloatPixelData',
               'DoubleFloatPixelData'}

UidMapper = Callable[[str], str]

# Modalities whose images usually carry text in the pixels (ultrasound screens, screenshots and
# scanned documents), so a file of one of them counts as having burned-in text unless its
# BurnedInAnnotation is NO.
BURNED_IN_MODALITIES = frozenset({'US', 'SC', 'OT', 'DOC', 'XC'})
# The Secondary Capture Image Storage SOP classes (PS3.4 A.8), which are screenshots and scans.
SECONDARY_CAPTURE_SOP_CLASSES = frozenset({
    '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.5.1.4.1.1.7.1', '1.2.840.10008.5.1.4.1.1.7.2',
    '1.2.840.10008.5.1.4.1.1.7.3', '1.2.840.10008.5.1.4.1.1.7.4',
})


def uid_mapper(secret: bytes, scope: str) -> UidMapper:
    """Return a function that maps an original UID to a new 2.25 UID, the same one for the same scope.

    The new UID is an HMAC-SHA-256 of the scope (an examination id) and the original UID, cut to 128
    bits as the 2.25 form requires. Files of one examination keep their study and series grouping,
    and nobody without the secret can test a guessed original UID against the new one.
    """
    def replace(original: str) -> str:
        digest = hmac.new(secret, f'{scope}\x00{original}'.encode(), hashlib.sha256).digest()
        return f'2.25.{int.from_bytes(digest[:16], "big")}'
    return replace


def deidentify_dataset(dataset: Dataset, map_uid: UidMapper) -> Dataset:
    """Apply the Basic Profile to a dataset in place (including every sequence item) and return it.

    PatientAge is computed from the birth date and the study (or series or acquisition) date before
    the dates go, when the file has no age of its own.
    """
    _fill_patient_age(dataset)
    dataset.remove_private_tags()
    _clean(dataset, map_uid)

    dataset.PatientIdentityRemoved = 'YES'
    dataset.DeidentificationMethod = METHOD_TEXT
    dataset.DeidentificationMethodCodeSequence = Sequence([_code(value, meaning) for value, meaning in METHOD_CODES])
    # NOTE: the Clean Pixel Data Option (PS3.15 E.3.1) is not applied: text burned into the pixels
    # stays, and BurnedInAnnotation is left as the modality wrote it. Files for which
    # `burned_in_text_reason` returns a reason are flagged to the doctor on the case page and in the zip.
    meta = getattr(dataset, 'file_meta', None)
    if isinstance(meta, FileMetaDataset):
        if 'SOPInstanceUID' in dataset:
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        if 'SourceApplicationEntityTitle' in meta:
            del meta.SourceApplicationEntityTitle
    return dataset


def burned_in_text_reason(dataset: Dataset) -> str:
    """Return why the pixels of this image may show identifying text, or '' when nothing suggests it.

    Header changes cannot remove such text. BurnedInAnnotation YES always counts and NO always clears the
    image. Without the attribute, the modality and the SOP class decide.
    """
    burned_in = str(dataset.get('BurnedInAnnotation', '') or '').strip().upper()
    if burned_in == 'YES':
        return 'the image states that text is burned into its pixels'
    if burned_in == 'NO':
        return ''
    modality = str(dataset.get('Modality', '') or '').strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f'{modality} images often show text in their pixels'
    if str(dataset.get('SOPClassUID', '') or '') in SECONDARY_CAPTURE_SOP_CLASSES:
        return 'secondary captures often show text in their pixels'
    return ''


def deidentify_file(source: BinaryIO, map_uid: UidMapper) -> bytes:
    """Read a DICOM file, de-identify a copy in memory and return the new file's bytes.

    The whole file is held in memory once while it is rewritten, in its own transfer syntax.
    """
    return deidentify_file_flagged(source, map_uid)[0]


def deidentify_file_flagged(source: BinaryIO, map_uid: UidMapper) -> tuple[bytes, str]:
    """Return the de-identified copy of a DICOM file as `deidentify_file` does, and its burned-in text reason."""
    dataset = pydicom.dcmread(source, force=True)
    reason = burned_in_text_reason(dataset)
    deidentify_dataset(dataset, map_uid)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue(), reason


def _clean(dataset: Dataset, map_uid: UidMapper) -> None:
    for element in list(dataset):
        if element.VR == 'SQ':
            action = _action_for(element)
            if action == REMOVE:
                del dataset[element.tag]
                continue
            if action == EMPTY:
                element.value = Sequence()
                continue
            for item in element.value:
                _clean(item, map_uid)
            continue
        _apply(dataset, element, _action_for(element), map_uid)


def _action_for(element: DataElement) -> str:
    keyword = element.keyword
    if keyword in ALWAYS_KEEP:
        return KEEP
    if keyword in BASIC_PROFILE:
        return BASIC_PROFILE[keyword]
    group = element.tag.group
    if 0x5000 <= group <= 0x50FF:
        return REMOVE  # curve data (retired), which may hold annotations
    if 0x6000 <= group <= 0x60FF and element.tag.element in (0x3000, 0x4000):
        return REMOVE  # overlay data and overlay comments may hold burned-in text
    if element.VR == 'UI':
        return 'U'
    if element.VR == 'PN' or element.VR in DATE_TIME_VRS:
        return REMOVE
    return KEEP


def _apply(dataset: Dataset, element: DataElement, action: str, map_uid: UidMapper) -> None:
    if action == REMOVE:
        del dataset[element.tag]
    elif action == EMPTY:
        element.value = None
    elif action == DUMMY:
        element.value = DUMMY_VALUES.get(element.VR, '')
    elif action == 'U':
        element.value = _map_uids(element.value, map_uid)


def _map_uids(value: object, map_uid: UidMapper) -> object:
    """Replace instance UIDs and keep registered ones (SOP classes, transfer syntaxes, coding schemes)."""
    if value is None or value == '':
        return value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [_map_one(str(item), map_uid) for item in value]
    return _map_one(str(value), map_uid)


def _map_one(uid: str, map_uid: UidMapper) -> str:
    return uid if uid in UID_dictionary else map_uid(uid)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = 'DCM'
    item.CodeMeaning = meaning
    return item


def _fill_patient_age(dataset: Dataset) -> None:
    if str(dataset.get('PatientAge') or '').strip():
        return
    birth = _parse_date(dataset.get('PatientBirthDate'))
    on = next((date for date in (_parse_date(dataset.get(name))
                                 for name in ('StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate'))
               if date is not None), None)
    if birth is None or on is None or on < birth:
        return
    dataset.PatientAge = age_string(birth, on)


def age_string(birth: dt.date, on: dt.date) -> str:
    """Return the DICOM Age String (AS) for a birth date on a day: years, or months or days for infants."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    if years >= 2:
        return f'{min(years, 999):03d}Y'
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    if months >= 1:
        return f'{months:03d}M'
    return f'{(on - birth).days:03d}D'


def _parse_date(value: object) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(value or '').strip()[:8], '%Y%m%d').date()
    except ValueError:
        return None

