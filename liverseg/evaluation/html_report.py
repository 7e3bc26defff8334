"""A self-contained HTML results page: per case a slice scroller, statistics, the options used.

One file, no network access: every image is an embedded PNG (``data:`` URI),
the scroller is a few lines of inline script, the styles are inline. Per
case: axial slices of the CT in a soft-tissue window (level 40, width 400
HU) with the liver outlined in green and tumours in red (every slice holding
liver, at most ``max_slices`` of them, evenly spaced), the statistics table
(:mod:`liverseg.evaluation.statistics`) and, once for the run, the options
that produced the label maps.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.utils.atomic import atomic_write_text

WINDOW = (40.0, 400.0)  # level, width (HU)
LIVER_RGB = (40, 220, 90)
TUMOR_RGB = (240, 50, 50)


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def slice_png(hu_slice: np.ndarray, label_slice: np.ndarray, max_size: int = 320) -> bytes:
    """One axial slice ([x, y] in RAS order) as a PNG: windowed CT, liver and tumour outlines."""
    from PIL import Image

    level, width = WINDOW
    grey = np.clip((hu_slice.astype(np.float32) - (level - width / 2)) / width, 0, 1)
    # radiological view of RAS-ordered arrays: anterior up, the patient's right on the left
    rgb = np.repeat((grey[::-1, ::-1].T * 255).astype(np.uint8)[..., None], 3, axis=2)
    labels = label_slice[::-1, ::-1].T
    for value, colour in ((1, LIVER_RGB), (2, TUMOR_RGB)):
        mask = labels >= 1 if value == 1 else labels == 2
        rgb[_outline(mask)] = colour
    image = Image.fromarray(rgb)
    scale = max_size / max(image.size)
    if scale < 1:
        image = image.resize(
            (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))),
            Image.NEAREST,
        )
    elif scale > 1.5:
        factor = int(scale)
        image = image.resize((image.size[0] * factor, image.size[1] * factor), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _slices_to_show(labels: np.ndarray, axis: int, max_slices: int) -> list[int]:
    other = tuple(a for a in range(3) if a != axis)
    holding = np.flatnonzero((labels >= 1).any(axis=other))
    if holding.size == 0:
        holding = np.arange(labels.shape[axis])
    if holding.size > max_slices:
        holding = holding[np.linspace(0, holding.size - 1, max_slices).round().astype(int)]
    return [int(k) for k in holding]


def _table(stats: Mapping) -> str:
    rows = [
        ("Liver volume", f"{stats['liver_volume_ml']:.1f} ml"),
        ("Tumour volume", f"{stats['tumor_volume_ml']:.2f} ml"),
        ("Tumour burden", f"{100 * stats['tumor_burden']:.2f} %"),
        ("Lesions", str(stats["lesion_count"])),
    ]
    head = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    lesion_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                i,
                f"{x['volume_ml']:.3f}",
                f"{x['longest_diameter_mm']:.1f}",
                f"{x['perpendicular_diameter_mm']:.1f}",
                ", ".join(f"{c:.1f}" for c in x["centroid_mm"]),
                f"{x['mean_hu']:.0f} \u00b1 {x['std_hu']:.0f}" if "mean_hu" in x else "-",
            )
        )
        + "</tr>"
        for i, x in enumerate(stats["lesions"], start=1)
    )
    lesions = (
        "<table class='lesions'><tr><th>#</th><th>volume (ml)</th><th>longest axial "
        "diameter (mm)</th><th>perpendicular (mm)</th><th>centroid (mm)</th><th>HU</th></tr>"
        + lesion_rows
        + "</table>"
        if stats["lesions"]
        else "<p>No lesion.</p>"
    )
    return f"<table class='summary'>{head}</table>{lesions}"


_SCRIPT = """
function show(id, k) {
  const frames = document.querySelectorAll('#' + id + ' img');
  frames.forEach((img, i) => { img.style.display = (i == k) ? 'block' : 'none'; });
  document.getElementById(id + '-n').textContent = frames[k].dataset.slice;
}
"""

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
section { border-top: 1px solid #ccc; padding-top: 1em; margin-top: 1.5em; }
.case { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.scroller img { image-rendering: pixelated; border: 1px solid #444; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #bbb; padding: 2px 8px; text-align: left; font-size: 0.9em; }
.legend span { display: inline-block; width: 1em; height: 0.8em; margin: 0 0.3em; }
pre { background: #f4f4f4; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
"""


def to_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``data`` with its axes permuted and flipped to RAS order (x right, y anterior, z up)."""
    current = nib.orientations.io_orientation(np.asarray(affine, float))
    wanted = nib.orientations.axcodes2ornt("RAS")
    return nib.orientations.apply_orientation(
        data, nib.orientations.ornt_transform(current, wanted)
    )


def case_section(
    index: int,
    name: str,
    hu: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    stats: Mapping,
    max_slices: int = 48,
) -> str:
    """The HTML of one case: scroller (CT with outlines) and statistics."""
    hu = to_ras(np.asarray(hu), affine)
    labels = to_ras(np.asarray(labels), affine)
    shown = _slices_to_show(labels, 2, max_slices)
    frames = []
    for i, k in enumerate(shown):
        data = base64.b64encode(slice_png(hu[:, :, k], labels[:, :, k])).decode("ascii")
        style = "block" if i == len(shown) // 2 else "none"
        frames.append(
            f"<img src='data:image/png;base64,{data}' data-slice='{k}' "
            f"style='display:{style}' alt='slice {k}'>"
        )
    sid = f"case{index}"
    return f"""
<section>
<h2>{html.escape(name)}</h2>
<div class="case">
  <div>
    <div id="{sid}" class="scroller">{"".join(frames)}</div>
    <input type="range" min="0" max="{len(shown) - 1}" value="{len(shown) // 2}"
      oninput="show('{sid}', this.value)" style="width:100%">
    <div>slice <span id="{sid}-n">{shown[len(shown) // 2]}</span>
      ({len(shown)} shown) <span class="legend"><span style="background:rgb{LIVER_RGB}"></span>liver
      <span style="background:rgb{TUMOR_RGB}"></span>tumour</span></div>
  </div>
  <div>{_table(stats)}</div>
</div>
</section>"""


def write_html_report(
    path: str | os.PathLike,
    sections: Sequence[str],
    options: Mapping | None = None,
    title: str = "liverseg results",
) -> Path:
    """Writes the page from rendered case sections (:func:`case_section`)."""
    options_html = (
        f"<section><h2>Options of this run</h2><pre>{html.escape(json.dumps(options, indent=2))}"
        "</pre></section>"
        if options
        else ""
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(sections)} case(s). CT in a soft-tissue window (level {WINDOW[0]:.0f}, width
{WINDOW[1]:.0f} HU); liver outlined in green, tumours in red. Drag the slider to scroll.</p>
{"".join(sections)}{options_html}
</body></html>
"""
    final = Path(path)
    atomic_write_text(final, page, overwrite=True)
    return final


class RunPage:
    """The results page of a run, built one loaded case at a time (one volume in memory)."""

    def __init__(self):
        self.sections: list[str] = []

    def add(self, label_path: Path, ct_path: Path, labels, ct, stats: Mapping) -> None:
        name = stats["case"]
        self.sections.append(
            case_section(
                len(self.sections),
                f"{name} ({Path(ct_path).name})",
                ct.data,
                labels.data,
                labels.affine,
                stats,
            )
        )

    def write(self, path: str | os.PathLike, options: Mapping | None = None) -> Path:
        return write_html_report(path, self.sections, options)


def write_run_report(
    path: str | os.PathLike,
    cases: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    options: Mapping | None = None,
) -> Path:
    """The page for ``(label map, CT)`` pairs (CT: NIfTI file or DICOM series folder)."""
    from liverseg.evaluation.statistics import loaded_case_statistics

    page = RunPage()
    for label_path, ct_path in cases:
        labels, ct, stats = loaded_case_statistics(label_path, ct_path)
        page.add(Path(label_path), Path(ct_path), labels, ct, stats.to_dict())
    return page.write(path, options)
