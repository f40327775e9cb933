"""The report's residual diagnostics: the figures ``simstudy diagnose`` left under diagnostics/.

``simstudy diagnose`` (:mod:`simstudy.diagnostics.latent_residuals`) writes
``diagnostics/residuals-<condition>-<rep>.png``, ``.pdf`` and ``.parquet``; the report copies
the figures into ``figures/`` (its links point there) and captions them from the Parquet file
(the curvature statistic of each model, the imputations, the true interaction).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from simstudy.report.document import Figure

#: The prefix of the diagnostics' files (and of their copies in figures/).
PREFIX = "residuals-"
_NAME = re.compile(rf"^{PREFIX}(?P<condition>.+)-(?P<rep>\d+)$")


def _caption(stem: str, parquet: Path) -> str:
    match = _NAME.match(stem)
    where = f"condition {match['condition']}, rep {match['rep']}" if match else stem
    text = (
        f"Residuals against predicted values of eta_y's structural regression without (left) "
        f"and with (right) the product term, {where}, each point a person's means over the "
        "imputations of the latent scores, the line binned means ± 2 SE"
    )
    try:
        table = pq.read_table(parquet)
    except (OSError, pa.ArrowInvalid):
        return text + "."
    meta = json.loads((table.schema.metadata or {}).get(b"simstudy.residuals", b"{}"))
    models = table.to_pandas().drop_duplicates("model").set_index("model")
    if "imputations" in meta:
        text += f" (M = {meta['imputations']})"
    parts = []
    for model, label in (("linear", "without"), ("product", "with")):
        if model in models.index and "curvature" in models.columns:
            r = models.loc[model]
            parts.append(
                f"{r['curvature']:+.3f} [{r['curvature_lower']:+.3f}, "
                f"{r['curvature_upper']:+.3f}] {label} the product"
            )
    if parts:
        text += "; curvature (z² coefficient, Rubin-pooled): " + ", ".join(parts)
    if meta.get("true_interaction") is not None:
        text += f"; true interaction {meta['true_interaction']:g}"
    return text + "."


def _order(path: Path) -> tuple[str, int, str]:
    match = _NAME.match(path.stem)
    return (match["condition"], int(match["rep"]), "") if match else ("", 0, path.stem)


def residual_figures(study_dir: Path, figures_dir: Path) -> list[Figure]:
    """The residual figures under ``study_dir/diagnostics``, copied into ``figures_dir``.

    Sorted by condition and rep; none (an empty list) when there is no such directory.
    """
    source = Path(study_dir) / "diagnostics"
    if not source.is_dir():
        return []
    out = []
    for png in sorted(source.glob(f"{PREFIX}*.png"), key=_order):
        figures_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".png", ".pdf"):
            if png.with_suffix(suffix).is_file():
                shutil.copyfile(png.with_suffix(suffix), figures_dir / f"{png.stem}{suffix}")
        caption = _caption(png.stem, png.with_suffix(".parquet"))
        out.append(Figure(png.stem, caption, png.read_bytes()))
    return out
