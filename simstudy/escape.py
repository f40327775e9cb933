"""Text from configs and data made safe for markdown (``report.md``, ``tables/*.md``).

Factor levels, estimator and parameter names are the user's: a ``|`` must not split a table
cell, a newline must not end a row, and ``<script>``, ``*``, ``[`` or a backtick must not
become HTML, emphasis, links or code. HTML output is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import re

#: Characters that are markup wherever they stand (CommonMark, GitHub's tables and math).
_ALWAYS = re.compile(r"([\\`*\[\]<>&|$])")
#: An underscore emphasises only at a word's edge: one between letters or digits is inert.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def markdown_text(value: object) -> str:
    r"""``value`` as markdown text that reads as itself, on one line.

    Backslash-escapes ``\ ` * [ ] < > & | $``, an underscore at a word's edge and, where
    there are two or more (a pair strikes through), ``~``; newlines become spaces. Names such
    as ``ols_cc`` and ``y~x`` stay as they are.

    Examples
    --------
    >>> markdown_text("a|b <i>x</i>")
    'a\\|b \\<i\\>x\\</i\\>'
    >>> markdown_text("ols_cc")
    'ols_cc'
    """
    text = _NEWLINES.sub(" ", str(value))
    text = _ALWAYS.sub(r"\\\1", text)
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    if text.count("~") > 1:
        text = text.replace("~", r"\~")
    return text
