"""Names and levels from configs and data are escaped in report.md and tables/*.md.

A summary of another program's records whose factor levels, estimator and parameter names hold
markdown and HTML: every table must still parse with its columns, every name read as itself,
and nothing become HTML, a link, code or emphasis.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from simstudy.aggregate import summarise
from simstudy.aggregate.tables import write_tables
from simstudy.escape import markdown_text
from simstudy.report import write_report

#: ``$\frac$`` would be mathtext to matplotlib (and fail to parse): the figures show it as text.
LEVELS = ["a|b", "*x* _y_", "<script>alert(1)</script>", "`tick`", "line\nbreak", r"$\frac$"]
ESTIMATORS = ["est|1", "<b>bold</b>"]
PARAMETERS = ["y~x", "[p](http://x)"]
#: How each name reads once rendered (a newline is a space in a cell).
SHOWN = {v: v.replace("\n", " ") for v in [*LEVELS, *ESTIMATORS, *PARAMETERS]}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """summary.parquet of hostile records, its report (figures too) and its tables."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "condition_id": f"c{i}",
            "mech": level,
            "rep": r,
            "estimator": e,
            "parameter": p,
            "truth": 0.5,
            "estimate": 0.5 + rng.normal(0, 0.1),
            "se": 0.1,
            "status": "ok",
        }
        for i, level in enumerate(LEVELS)
        for r in range(8)
        for e in ESTIMATORS
        for p in PARAMETERS
    ]
    summary = summarise(pd.DataFrame(rows))
    root = tmp_path_factory.mktemp("hostile")
    summary.to_parquet(root / "summary.parquet")
    write_report(root)
    write_tables(summary, ["mech"], root / "tables")
    return root


def _walk(tokens: list[Token]):
    for t in tokens:
        yield t
        yield from _walk(t.children or [])


def _parse(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)


def _tables(text: str) -> list[list[list[str]]]:
    """Each table's rows (the header first) as the cells' rendered text.

    A cell must be plain text: no HTML, link, code, emphasis or strikethrough in it.
    """
    tables, rows, cells = [], [], None
    for t in _parse(text):
        if t.type == "table_open":
            rows = []
        elif t.type == "tr_open":
            cells = []
        elif t.type == "inline" and cells is not None:
            assert {c.type for c in t.children} <= {"text"}, t.content
            cells.append("".join(c.content for c in t.children))
        elif t.type == "tr_close":
            rows.append(cells)
            cells = None
        elif t.type == "table_close":
            tables.append(rows)
    return tables


def _raw_widths(text: str) -> list[set[int]]:
    """Per table, the numbers of cells of its lines, split at the pipes that are not escaped."""
    blocks = [b.splitlines() for b in text.split("\n\n")]
    return [
        {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        for lines in blocks
        if lines and lines[0].startswith("| ")
    ]


def _check(path: Path) -> list[list[list[str]]]:
    text = path.read_text()
    tokens = list(_walk(_parse(text)))
    assert not [t for t in tokens if t.type.startswith("html")], path.name
    assert "<script>" not in text and "<b>" not in text
    tables = _tables(text)
    assert tables, path.name
    widths = _raw_widths(text)
    assert len(widths) == len(tables)
    for rows, width in zip(tables, widths, strict=True):
        # every line as wide as the header, which the parser would otherwise hide
        assert width == {len(rows[0]) + 2}, rows[0]
    return tables


def test_report_md_reads_names_and_levels_as_text(study):
    md = study / "report.md"
    tables = _check(md)
    performance = [t for t in tables if t[0][:3] == ["mech", "estimator", "bias (MCSE)"]]
    assert len(performance) == len(PARAMETERS)
    widths = {len(t[0]) for t in performance}
    assert len(widths) == 1
    for rows in performance:
        assert {r[0] for r in rows[1:]} == {SHOWN[v] for v in LEVELS}
        assert {r[1].removesuffix(" (ref.)") for r in rows[1:]} == {SHOWN[e] for e in ESTIMATORS}
    text = md.read_text()
    # headings and captions: the estimand's name, not a link
    headings = [
        "".join(c.content for c in t.children)
        for t, prev in zip(_parse(text)[1:], _parse(text), strict=False)
        if prev.type == "heading_open"
    ]
    assert "Estimand [p](http://x)" in headings and "Estimand y~x" in headings
    links = [t.attrGet("href") for t in _walk(_parse(text)) if t.type == "link_open"]
    assert "http://x" not in links


@pytest.mark.parametrize("name", ["bias.md", "compact.md", "coverage.md"])
def test_tables_md_read_names_and_levels_as_text(study, name):
    path = study / "tables" / name
    tables = _check(path)
    header = tables[0][0]
    assert header[:2] == ["mech", "parameter"]
    for est in ESTIMATORS:
        assert any(h.startswith(f"{est}: ") for h in header), header
    cells = {r[0] for t in tables for r in t[1:]}
    assert cells == {SHOWN[v] for v in LEVELS}
    assert {r[1] for t in tables for r in t[1:]} == set(PARAMETERS)


def test_markdown_text_leaves_plain_names_alone():
    for plain in ("ols_cc", "y~x", "0.123 (0.046)", "prop. bias %", "N=100, mechanism=MAR"):
        assert markdown_text(plain) == plain
    assert markdown_text("a_ _b") == r"a\_ \_b"
    assert markdown_text("~~x~~") == r"\~\~x\~\~"
    assert markdown_text("x\r\ny") == "x y"
