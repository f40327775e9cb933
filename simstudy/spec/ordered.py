"""Ordered (binary and ordinal) variables: their declaration in a model config.

``ordered: {u: 3, v: 2}`` names each ordered variable with its number of categories (coded
0..K-1 in the data); ``ordered: [u, v]`` declares binary ones (0/1), as lavaan's
``ordered=`` names them. ``link: probit`` (the default) or ``logit`` is the link of every
ordered variable of the model (Mplus's ``LINK``). The model itself is in
:class:`simstudy.spec.ir.Ordered`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simstudy.errors import InputError

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
    if raw is None:
        return {}
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        raw = {name: 2 for name in raw}
    if not isinstance(raw, Mapping):
        raise InputError(
            FIELD,
            raw,
            "a mapping from variable names to categories, e.g. {u: 3}, or a list of binary ones",
        )
    out = {}
    for name, k in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(FIELD, name, "variable names made of letters, digits and _")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise InputError(
                f"{FIELD}.{name}", k, "an integer >= 2: the categories, coded 0..K-1 in the data"
            )
        out[name] = k
    return out


def check_link(raw: Any) -> str:
    """``link:`` validated (None: probit)."""
    if raw is None:
        return LINKS[0]
    if raw not in LINKS:
        raise InputError("model.link", raw, "one of " + ", ".join(LINKS))
    return str(raw)
