"""External-validation CT phantoms, built independently of the training generator.

This family exists to measure generalisation: never train on it and never tune
the training generator (or any hyper-parameter) against it. It shares no code
with ``liverseg.phantoms.training``, only the LiTS file layout.

Construction: every phantom is an abdomen built in 3D, in millimetres of a
body frame with RAS axes (+x the patient's right, +y anterior, +z superior,
origin on the midline at the height of the right hemidiaphragm's dome). Each
organ is an approximate signed-distance function (superellipses, ellipsoids,
smooth unions of lobes, capsule chains and z-swept tubes for vessels and bowel),
some displaced along their normals by low-frequency 3D noise. The functions are
evaluated on their bounding boxes of the voxel grid; voxels near a surface are
supersampled (1-3 samples per axis, by voxel size) for partial-volume edges. Organs are laid down in a fixed
priority (a later organ carves the earlier ones), each with a mean HU drawn
for the contrast phase and a smooth texture. The image is then blurred by an
anisotropic point-spread function, given correlated noise and quantised, and
stored with a random axis order / flips (with the matching affine), data type
and suffix. See ``docs/EXTERNAL_PHANTOMS.md`` for every distribution.

Phantom ``index`` of ``seed`` depends only on ``(seed, index, options)``;
files are byte-identical across runs.

Modules: ``draws`` (options and random streams), ``fields`` (smooth random
fields), ``sdf`` (implicit shapes), ``body`` (outline, diaphragm, landmarks),
``grid`` (the scan's geometry), ``contrast`` (phase, HU, textures), ``layers``
(the organ layer), ``abdomen`` and ``torso`` (the organs), ``render``
(compositing), ``tumours``, ``scan`` (blur, noise), ``storage`` (orientation,
data type, affine), ``generate`` (``make_external_phantom``) and ``write``
(the files).
"""

from liverseg.phantoms.external.contrast import (
    EXCRETION_HU,
    PHASE_HU,
    PHASE_WEIGHTS,
    PHASES,
    STATIC_HU,
)
from liverseg.phantoms.external.generate import Drawn, ExternalPhantom, make_external_phantom
from liverseg.phantoms.external.grid import COMMON_THICKNESSES
from liverseg.phantoms.external.scan import HU_MAX, HU_MIN
from liverseg.phantoms.external.storage import DTYPE_WEIGHTS, DTYPES, SUFFIXES
from liverseg.phantoms.external.tumours import TUMOUR_KINDS, TUMOUR_WEIGHTS
from liverseg.phantoms.external.write import write_external_phantoms, write_phantom

__all__ = [
    "COMMON_THICKNESSES",
    "DTYPES",
    "DTYPE_WEIGHTS",
    "EXCRETION_HU",
    "HU_MAX",
    "HU_MIN",
    "PHASES",
    "PHASE_HU",
    "PHASE_WEIGHTS",
    "STATIC_HU",
    "SUFFIXES",
    "TUMOUR_KINDS",
    "TUMOUR_WEIGHTS",
    "Drawn",
    "ExternalPhantom",
    "make_external_phantom",
    "write_external_phantoms",
    "write_phantom",
]
