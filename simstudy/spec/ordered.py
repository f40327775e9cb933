"""Ordered (binary and ordinal) variables: their declaration in a model config.

``ordered: {u: 3, v: 2}`` names each ordered variable with its number of categories (coded
0..K-1 in the data); ``ordered: [u, v]`` declares binary ones (0/1), as lavaan's
``ordered=`` names them. ``link: probit`` (the default) or ``logit`` is the link of every
ordered variable of the model (Mplus's ``LINK``). The model itself is in
:class:`simstudy.spec.ir.Ordered`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.declare import check_categories

FIELD = "model.ordered"
#: The links an ordered variable may have (the first is the default).
LINKS = ("probit", "logit")


def check_declaration(raw: Any) -> dict[str, int]:
    """``ordered:`` validated: variable name -> categories (an integer >= 2).

    Raises
    ------
    InputError
        Naming ``model.ordered`` or ``model.ordered.<name>``, the value and what is allowed.
    """
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        raw = {name: 2 for name in raw}
    shape = "a mapping from variable names to categories, e.g. {u: 3}, or a list of binary ones"
    return check_categories(raw, FIELD, shape, "0..K-1")


def check_link(raw: Any) -> str:
    """``link:`` validated (None: probit)."""
    if raw is None:
        return LINKS[0]
    if raw not in LINKS:
        raise InputError("model.link", raw, "one of " + ", ".join(LINKS))
    return str(raw)
