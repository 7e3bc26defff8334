"""Tissue classes of the training phantoms, the label each one gives, and the
narrow style's mean-HU table (portal venous phase)."""

from __future__ import annotations

import enum


class Tissue(enum.IntEnum):
    """Tissue classes painted into a phantom (``Phantom.tissue``)."""

    AIR = 0
    COUCH = 1
    SKIN = 2
    FAT = 3
    MUSCLE = 4
    LUNG = 5
    CORTICAL_BONE = 6
    CANCELLOUS_BONE = 7
    DISC = 8
    CSF = 9
    BOWEL_WALL = 10
    BOWEL_CONTENT = 11
    GAS = 12
    STOMACH_WALL = 13
    STOMACH_CONTENT = 14
    PANCREAS = 15
    LIVER = 16
    LIVER_VESSEL = 17
    GALLBLADDER = 18
    SPLEEN = 19
    KIDNEY = 20
    RENAL_SINUS = 21
    IVC = 22
    AORTA = 23
    TUMOUR = 24
    VESSEL = 25
    KIDNEY_MEDULLA = 26  # the tissues below appear in "wide" phantoms only
    TUMOUR_RIM = 27
    TUMOUR_NECROSIS = 28
    TUMOUR_HYPER = 29
    TUMOUR_CYST = 30
    ASCITES = 31


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL)
TUMOUR_TISSUES = (
    Tissue.TUMOUR,
    Tissue.TUMOUR_RIM,
    Tissue.TUMOUR_NECROSIS,
    Tissue.TUMOUR_HYPER,
    Tissue.TUMOUR_CYST,
)


# Mean HU ranges; one value per tissue is drawn for each phantom.
_HU_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000, -1000),
    Tissue.COUCH: (150, 300),
    Tissue.SKIN: (20, 40),
    Tissue.FAT: (-115, -85),
    Tissue.MUSCLE: (45, 60),
    Tissue.LUNG: (-870, -820),
    Tissue.CORTICAL_BONE: (750, 1000),
    Tissue.CANCELLOUS_BONE: (250, 350),
    Tissue.DISC: (70, 100),
    Tissue.CSF: (5, 15),
    Tissue.BOWEL_WALL: (45, 70),
    Tissue.BOWEL_CONTENT: (15, 35),
    Tissue.GAS: (-950, -850),
    Tissue.STOMACH_WALL: (45, 65),
    Tissue.STOMACH_CONTENT: (8, 25),
    Tissue.PANCREAS: (70, 95),
    Tissue.LIVER: (95, 115),
    Tissue.LIVER_VESSEL: (150, 190),
    Tissue.GALLBLADDER: (0, 15),
    Tissue.SPLEEN: (100, 122),
    Tissue.KIDNEY: (140, 190),
    Tissue.RENAL_SINUS: (-60, -20),
    Tissue.IVC: (100, 130),
    Tissue.AORTA: (140, 190),
    Tissue.TUMOUR: (25, 38),
    Tissue.VESSEL: (130, 170),
}
