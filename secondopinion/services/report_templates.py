"""Starting texts for the report editor, per modality. A doctor starts from one and edits every line."""

from __future__ import annotations

from dataclasses import dataclass

from ..i18n import N_


@dataclass(frozen=True)
class ReportTemplate:
    """A starting text for one kind of study.

    `name` is an English msgid that the editor translates. The section texts stay English, because they
    are clinical text that the doctor edits into the report.
    """

    name: str
    technique: str
    findings: str
    impression: str


TEMPLATES: dict[str, tuple[ReportTemplate, ...]] = {
    'CT': (
        ReportTemplate(N_('CT chest'), 'Multidetector CT of the chest, axial images with multiplanar reconstructions. '
                       'Contrast: [none / intravenous].',
                       'Lungs: [ ]\nPleura: [ ]\nMediastinum and hila: [ ]\nHeart and great vessels: [ ]\n'
                       'Upper abdomen: [ ]\nBones and soft tissues: [ ]',
                       '1. [ ]'),
        ReportTemplate(N_('CT abdomen and pelvis'), 'Multidetector CT of the abdomen and pelvis. Contrast: [ ].',
                       'Liver: [ ]\nGallbladder and bile ducts: [ ]\nPancreas: [ ]\nSpleen: [ ]\n'
                       'Kidneys and adrenals: [ ]\nBowel: [ ]\nPelvic organs: [ ]\nLymph nodes: [ ]\nBones: [ ]',
                       '1. [ ]'),
        ReportTemplate(N_('CT head'), 'Non-contrast CT of the head.',
                       'Brain parenchyma: [ ]\nVentricles and sulci: [ ]\nExtra-axial spaces: [ ]\n'
                       'Skull and sinuses: [ ]',
                       '1. [ ]'),
    ),
    'MR': (
        ReportTemplate(N_('MRI brain'), 'MRI of the brain: sagittal T1, axial T2, FLAIR, DWI/ADC, SWI. '
                       'Contrast: [none / gadolinium].',
                       'Brain parenchyma: [ ]\nDiffusion: [ ]\nVentricles: [ ]\nPosterior fossa: [ ]\n'
                       'Vessels (flow voids): [ ]',
                       '1. [ ]'),
        ReportTemplate(N_('MRI knee'), 'MRI of the [left / right] knee in three planes, PD fat-saturated and T1.',
                       'Menisci: [ ]\nCruciate ligaments: [ ]\nCollateral ligaments: [ ]\nCartilage: [ ]\n'
                       'Bone marrow: [ ]\nEffusion: [ ]',
                       '1. [ ]'),
        ReportTemplate(N_('MRI lumbar spine'), 'MRI of the lumbar spine: sagittal T1 and T2, axial T2.',
                       'Alignment: [ ]\nVertebral bodies: [ ]\nDiscs by level: [ ]\nSpinal canal and foramina: [ ]\n'
                       'Conus: [ ]',
                       '1. [ ]'),
    ),
    'CR': (
        ReportTemplate(N_('Chest radiograph'), 'Chest radiograph, [PA and lateral / AP] projection.',
                       'Lungs: [ ]\nHeart size: [ ]\nMediastinum: [ ]\nPleura: [ ]\nBones: [ ]',
                       '1. [ ]'),
    ),
    'US': (
        ReportTemplate(N_('Abdominal ultrasound'), 'Ultrasound of the abdomen.',
                       'Liver: [ ]\nGallbladder: [ ]\nBile ducts: [ ]\nPancreas: [ ]\nSpleen: [ ]\nKidneys: [ ]',
                       '1. [ ]'),
    ),
    'MG': (
        ReportTemplate(N_('Mammography'), 'Digital mammography, CC and MLO views of both breasts.',
                       'Breast composition (ACR): [ ]\nMasses: [ ]\nCalcifications: [ ]\nAsymmetries: [ ]\n'
                       'Lymph nodes: [ ]',
                       'BI-RADS [ ]: [ ]'),
    ),
}
TEMPLATES['DX'] = TEMPLATES['CR']
GENERAL = ReportTemplate(N_('General'), 'Modality and protocol: [ ].', 'Findings: [ ]', '1. [ ]')


def templates_for(modality: str) -> tuple[ReportTemplate, ...]:
    """Return the templates for a modality (e.g. "CT"), followed by the general one."""
    return (*TEMPLATES.get((modality or '').upper(), ()), GENERAL)
