"""The report as plain data: headings, paragraphs, key-value lists, tables and figures.

Sections are built by pure functions (:mod:`~simstudy.report.ademp`,
:mod:`~simstudy.report.tables`, :mod:`~simstudy.report.figures`) and rendered twice, to HTML
(:mod:`~simstudy.report.html`) and to markdown (:mod:`~simstudy.report.markdown`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    """A section heading; ``anchor`` is its id in the HTML."""

    level: int
    text: str

    @property
    def anchor(self) -> str:
        """The heading's id in the HTML."""
        return slug(self.text)


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (escaped when rendered)."""

    text: str


@dataclass(frozen=True)
class KeyValues:
    """A definition list: ``(label, value)`` pairs."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    """A table of strings; ``note`` says what was left out (rows capped) or how to read it."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    #: Columns that hold numbers (right-aligned).
    numeric: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Figure:
    """A figure written to ``figures/<name>.png`` and ``.pdf``; ``png`` is the PNG's bytes."""

    name: str
    caption: str
    png: bytes


Block = Heading | Paragraph | KeyValues | Table | Figure


def slug(text: str) -> str:
    """A file- and anchor-safe name: lower case letters, digits, ``-`` and ``_``."""
    text = re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-").lower()
    return text or "x"
