"""A data frame as a markdown table (pandas' to_markdown needs tabulate, not a dependency)."""

from __future__ import annotations

import pandas as pd


def frame_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """Numbers to ``digits`` decimals (NaN as a dash), text as is."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "–" if v != v else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")  # a pipe would end the cell

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = (
        "| " + " | ".join("---:" if frame[c].dtype.kind in "fiu" else "---" for c in frame) + " |"
    )
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
