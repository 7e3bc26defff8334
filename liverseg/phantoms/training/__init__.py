"""Synthetic abdominal CT phantoms in LiTS format, for tests and demos.

Two styles share one anatomy engine. ``style="narrow"`` (the default) is the
original generator and stays byte-identical; ``style="wide"`` draws from a far
wider distribution (domain randomisation in the spirit of SynthSeg, Billot et
al. 2023), so that networks trained on it learn the liver rather than the
generator. docs/PHANTOMS.md lists every distribution with an image.

Narrow. Each phantom is an axial slab of a contrast-enhanced (portal venous)
abdomen: air and a CT couch outside an elliptical body; skin, subcutaneous fat
and an abdominal muscle wall; visceral fat with mesenteric vessels; lung bases
and ribs in the upper slices; a vertebra (cortical and cancellous bone, discs,
spinal canal, posterior elements), paraspinal and psoas muscles; aorta and
inferior vena cava; kidneys, spleen, stomach (wall, fluid, gas), pancreas,
small bowel and colon; a liver (label 1) made of three smoothly perturbed
lobes, with enhanced vessels and a gallbladder beside it; and 0-4 hypodense
round-ish tumours (label 2) placed inside the final liver mask (after the
other organs have carved it), so they never leave the liver.

Intensities (HU, jittered per phantom) are chosen so that intensity alone
cannot separate the targets: the spleen and the inferior vena cava overlap
the enhanced liver (95-115 HU, portal venous phase) and fluid in the stomach,
bowel, gallbladder and spinal canal overlaps the tumours (25-38 HU). Images
get a slight blur (partial volume) and correlated Gaussian noise (10-20 HU),
and are stored as int16 HU.

Geometry and orientation (LiTS-like): array axis 0 runs from the patient's
right to left, axis 1 from anterior to posterior, axis 2 from inferior to
superior; the affine is ``diag(-s, -s, dz)`` plus a translation. Displaying
``data[:, :, k].T`` gives the radiological view, with the liver on the
image's left. The in-plane spacing is 0.6-0.9 mm scaled by 512/X, so every
image size shows a body about 30-36 cm wide; the slice thickness (1-5 mm) is
picked so the slab covers about 18-26 cm where it can. Along z the anatomy
is laid out relative to the slab, not in millimetres: the liver always spans
about 60-80% of the slices (the first and last slices never hold liver), so
small phantoms stay useful whatever their slice thickness.

Wide. The same organs, redrawn per phantom (each range and its reason):

* Contrast phase (what the scanner timing does to every organ): non-contrast
  20% (liver 45-65 HU, liver vessels 0-15 below it, spleen 40-55, kidneys
  30-40, aorta/IVC 35-50), arterial 25% (aorta 250-350, liver 60-80, spleen
  100-150 with a 20-45 HU moire pattern, renal cortex 180-260 over a 60-100
  medulla, IVC 50-90 unopacified), portal venous 35% (the narrow table but
  for the tumours) and delayed 20% (liver 80-100, vessels within -5..+15 of
  it, spleen 80-100, aorta 90-130). Muscle, pancreas, bowel and stomach walls
  follow the phase; each value is drawn uniformly in its range per phantom,
  and the liver gets a 0-6 HU mottle. Spleen, IVC, muscle or bowel wall lie
  within about 15 HU of the liver in every phase; fluids overlap hypodense
  tumours.
* Liver (real livers vary): typical 40%, small 20% (x0.68-0.85, half of
  them with perihepatic fluid), large 20% (x1.12-1.35, clipped by the wall),
  left-lobe-dominant 20% (a left lobe 0.34-0.48 body half-widths wide, well
  across the midline); shifted by up to 6% of the body; 35% abut the
  abdominal wall (no fat gap), the others keep a 1-4 mm gap.
* Tumours (from none to many, small to large): 0 (25%), 1-3 (35%), 4-7
  (20%), 8-15 (20%) per phantom; diameters 2-40 mm log-uniform (the first,
  the index lesion, 10-40 mm: a liver with tumours in LiTS has at least one
  lesion of a centimetre or more), in mm at the
  phantom's spacing (a tiny one may cover no voxel: labels are what the
  rasterisation gives); kinds hypodense, rim-enhancing (bright rim, necrotic
  5-35 HU centre), hyperdense (above the liver, strongest when arterial) and
  cystic (0-15 HU, round, sharp), mostly the phantom's main kind. One in
  five sits on the liver's edge; all are clipped to the liver, so label 2
  lies only inside it.
* Habitus and field of view (patients and reconstructions differ): thin 25%
  (body 25-30 cm wide, little fat, thin muscle), average 50% (29-36 cm, the
  narrow body), obese 25% (36-51 cm: 15-35% of a body half-axis of extra
  subcutaneous fat, thick perirenal fat, fewer bowel loops so visceral fat
  shows); field of view 30-45 cm (up to 50 cm to hold an obese body) or, in
  15%, 70-95% of the body width so the body crosses the image edge; the body
  is offset at random within the room left.
* Image quality (scanners and kernels differ): noise sd 5-40 HU
  (log-uniform) at a LiTS-like 0.75 x 0.75 x 2.5 mm voxel, scaled to the
  phantom's voxel (the standard deviation falls with the square root of the
  voxel volume: 40 HU is 7.5 HU in a 4 x 4 x 2.5 mm voxel), in-plane blur
  0.35-1 pixel, slice thickness 0.7-5 mm.
  Along z the anatomy is 200-260 mm long (in millimetres, unlike narrow):
  the slab is centred in the liver (3 in 4) or hangs over its dome or tip
  (10-40% liver-free slices), and a long one may hold all of it.
* Storage (LiTS volumes are stored flipped and transposed): any of the 8
  flips/transposes of the two in-plane axes (the in-plane size is kept) and
  a flipped z in 20%; the affine follows, so ``nibabel.aff2axcodes`` gives
  the true anatomical directions (``Phantom.storage``). Pixels stay square.

Phantom ``i`` of seed ``s`` depends only on ``(s, i, shape, style)``; files
are byte-identical across runs (gzip with mtime 0).

Modules: ``tissues`` (tissue classes, labels, the narrow HU table), ``shapes``
(waves, blobs, the slice canvas), ``anatomy`` (the frame and the narrow
organs), ``paint`` (one slice's tissue ids), ``tumours`` (placement in the
liver), ``wide`` (the wide style's redraw), ``render`` (HU, noise, blur),
``storage`` (affine, flips and transposes), ``generate`` (``make_phantom``)
and ``write`` (LiTS files).
"""

from liverseg.phantoms.training.generate import MIN_SHAPE, STYLES, Phantom, make_phantom
from liverseg.phantoms.training.tissues import LIVER_TISSUES, TUMOUR_TISSUES, Tissue
from liverseg.phantoms.training.tumours import TUMOUR_KINDS
from liverseg.phantoms.training.wide import (
    HABITUS,
    LIVER_SHAPES,
    NOISE_REFERENCE_VOXEL_MM,
    PHASES,
    noise_scale_for_voxel,
)
from liverseg.phantoms.training.write import phantom_paths, write_phantoms

__all__ = [
    "HABITUS",
    "LIVER_SHAPES",
    "LIVER_TISSUES",
    "MIN_SHAPE",
    "NOISE_REFERENCE_VOXEL_MM",
    "PHASES",
    "STYLES",
    "TUMOUR_KINDS",
    "TUMOUR_TISSUES",
    "Phantom",
    "Tissue",
    "make_phantom",
    "noise_scale_for_voxel",
    "phantom_paths",
    "write_phantoms",
]
