"""The report as one self-contained HTML file: inline CSS, images as base64 PNG data URIs.

Nothing is fetched from the network: no external stylesheet, script, font or image. The one
inline script marks ``<body data-images-loaded="true">`` once every image has decoded (a
``naturalWidth`` above 0), which a headless browser's ``--dump-dom`` can check.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from simstudy.report.document import Block, Figure, Heading, KeyValues, Paragraph, Table

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  margin: 0 auto; max-width: 1400px; padding: 1rem 1.5rem 4rem; color: #1b1b1b;
  line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.35rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin-top: 1.4rem; }
nav ul { columns: 2; padding-left: 1.2rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .82rem; margin: .4rem 0; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; white-space: nowrap; }
th, td { border-bottom: 1px solid #ddd; padding: .2rem .5rem; white-space: nowrap; }
th { background: #f3f3f3; text-align: left; white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #f7f9fc; }
.note, figcaption, .meta { color: #555; font-size: .85rem; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
""".strip()

#: Marks the body once every image has loaded and has a size (checked by the browser test).
SCRIPT = """
(function () {
  function check() {
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
    document.body.setAttribute('data-images-loaded', ok ? 'true' : 'false');
    document.body.setAttribute('data-images', String(imgs.length));
  }
  if (document.readyState === 'complete') { check(); }
  else { window.addEventListener('load', check); }
})();
""".strip()


def _text(text: str) -> str:
    """Escaped text, with the summary's file name as a relative link."""
    return escape(text).replace("summary.parquet", '<a href="summary.parquet">summary.parquet</a>')


def _table(t: Table) -> str:
    def cls(col: str) -> str:
        return ' class="num"' if col in t.numeric else ""

    head = "".join(f"<th{cls(c)}>{escape(c)}</th>" for c in t.columns)
    body = "\n".join(
        "<tr>"
        + "".join(f"<td{cls(c)}>{escape(v)}</td>" for c, v in zip(t.columns, row, strict=True))
        + "</tr>"
        for row in t.rows
    )
    html = (
        f'<div class="scroll"><table><caption>{escape(t.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )
    if t.note:
        html += f'\n<p class="note">{_text(t.note)}</p>'
    return html


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (
        f'<figure id="fig-{escape(f.name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{escape(f.caption)}">'
        f"<figcaption>{_text(f.caption)} "
        f'<a href="figures/{escape(f.name)}.pdf">PDF</a> · '
        f'<a href="figures/{escape(f.name)}.png">PNG</a></figcaption></figure>'
    )


def render_block(block: Block) -> str:
    """One block as HTML."""
    if isinstance(block, Heading):
        return f'<h{block.level} id="{block.anchor}">{escape(block.text)}</h{block.level}>'
    if isinstance(block, Paragraph):
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, KeyValues):
        items = "".join(f"<dt>{escape(k)}</dt><dd>{_text(v)}</dd>" for k, v in block.items)
        return f"<dl>{items}</dl>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    raise TypeError(f"not a report block: {block!r}")


def render(title: str, subtitle: str, blocks: Sequence[Block]) -> str:
    """The whole report: a title, a table of contents of the sections, the blocks."""
    toc = "".join(
        f'<li><a href="#{b.anchor}">{escape(b.text)}</a></li>'
        for b in blocks
        if isinstance(b, Heading) and b.level == 2
    )
    body = "\n".join(render_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
        '<body data-images-loaded="pending">\n'
        f'<h1>{escape(title)}</h1>\n<p class="meta">{_text(subtitle)}</p>\n'
        f"<nav><ul>{toc}</ul></nav>\n{body}\n"
        f"<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n"
    )
