"""The report as markdown beside the HTML, its figures linked from ``figures/``.

Every text is escaped with :func:`simstudy.escape.markdown_text`: names and levels from the
config and data stay text (a ``|`` cannot split a cell, ``<script>`` cannot become HTML).
"""

from __future__ import annotations

from collections.abc import Sequence

from simstudy.escape import markdown_text
from simstudy.report.document import Block, Figure, Heading, KeyValues, Paragraph, Table


def _text(text: str) -> str:
    """Escaped text, with the summary's file name as a relative link."""
    return markdown_text(text).replace("summary.parquet", "[summary.parquet](summary.parquet)")


def _table(t: Table) -> str:
    align = ["---:" if c in t.numeric else "---" for c in t.columns]
    lines = [
        f"**{markdown_text(t.caption)}**",
        "",
        "| " + " | ".join(markdown_text(c) for c in t.columns) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(markdown_text(v) for v in row) + " |" for row in t.rows),
    ]
    if t.note:
        lines += ["", f"*{_text(t.note)}*"]
    return "\n".join(lines)


def render_block(block: Block) -> str:
    """One block as markdown."""
    if isinstance(block, Heading):
        return "#" * block.level + " " + markdown_text(block.text)
    if isinstance(block, Paragraph):
        return _text(block.text)
    if isinstance(block, KeyValues):
        return "\n".join(f"- **{markdown_text(k)}**: {_text(v)}" for k, v in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return (
            f"![{markdown_text(block.caption)}](figures/{block.name}.png)\n\n"
            f"{_text(block.caption)} ([PDF](figures/{block.name}.pdf))"
        )
    raise TypeError(f"not a report block: {block!r}")


def render(title: str, subtitle: str, blocks: Sequence[Block]) -> str:
    """The whole report as markdown."""
    parts = [f"# {markdown_text(title)}", _text(subtitle), *(render_block(b) for b in blocks)]
    return "\n\n".join(parts) + "\n"
