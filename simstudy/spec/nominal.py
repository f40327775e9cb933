"""Nominal (unordered categorical) predictors: their declaration and the dummy terms they become.

A model config declares ``nominal: {d: 3}`` (variable -> number of categories, coded 1..K in
the data; category 1 is the reference). The syntax writes the variable as a predictor
(``eta_x ~ d``, ``y ~ x + d``); :func:`expand` replaces each such term by the dummy terms
``d2 .. dK``, so its coefficients are named as lavaan names them (``eta_x~d2``); a label
``s*d`` labels them ``s2 .. sK``. The category probabilities ``P(d=2) .. P(d=K)`` are
parameters labelled ``p_d2 .. p_dK`` (``P(d=1)`` is 1 minus their sum). A nominal variable is
exogenous: no equation of its own, no product term, no random effect. Pure Python (no JAX):
config validation uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.declare import check_categories
from simstudy.spec.grammar import Statement, Term

#: The config key, and the field its errors name.
FIELD = "model.nominal"


def dummy_names(name: str, categories: int) -> tuple[str, ...]:
    """The dummy variables of categories 2..K: ``d2 .. dK``."""
    return tuple(f"{name}{k}" for k in range(2, categories + 1))


def check_declaration(raw: Any) -> dict[str, int]:
    """``nominal:`` validated: variable name -> categories (an integer >= 2).

    Raises
    ------
    InputError
        Naming ``model.nominal`` or ``model.nominal.<name>``, the value and what is allowed.
    """
    shape = "a mapping from variable names to categories, e.g. {d: 3}"
    return check_categories(raw, FIELD, shape, "1..K")


def _refuse(name: str, k: int, why: str) -> InputError:
    return InputError(f"{FIELD}.{name}", k, why)


def _check_uses(statements: Sequence[Statement], name: str, k: int) -> None:
    """A nominal variable is a predictor on its own in some regression, and nothing else."""
    as_predictor = False
    for s in statements:
        own = s.lhs == name if s.op == "~" else s.op == "=~" and name in (s.lhs, *_indicators(s))
        if own:
            raise _refuse(name, k, f"a predictor without an equation of its own (line {s.line})")
        if s.op == "~~" and name in (s.lhs, s.terms[0].factors[0]):
            raise _refuse(name, k, f"a predictor without a (co)variance statement (line {s.line})")
        if s.op == ":=":
            continue
        for term in s.terms if s.op == "~" else ():
            if name in term.factors and len(term.factors) > 1:
                raise _refuse(
                    name, k, f"a predictor alone in its term, not in a product (line {s.line})"
                )
            if term.factors == (name,):
                if term.fixed is not None:
                    raise _refuse(
                        name, k, f"a term with free coefficients, not fixed ones (line {s.line})"
                    )
                as_predictor = True
        for part in s.random:
            if any(name in m for m in part.terms) or part.group == name:
                raise _refuse(name, k, f"a fixed-effect predictor, not in '( | )' (line {s.line})")
    if not as_predictor:
        raise _refuse(name, k, f"a variable the syntax uses as a predictor (e.g. 'y ~ {name}')")


def _indicators(s: Statement) -> tuple[str, ...]:
    return tuple(f for t in s.terms for f in t.factors)


def _names(statements: Sequence[Statement]) -> set[str]:
    """Every variable (and label) the statements mention."""
    out = set()
    for s in statements:
        out.add(s.lhs)
        for t in s.terms:
            out.update(t.factors)
            if t.label:
                out.add(t.label)
        for part in s.random:
            out.add(part.group)
            out.update(f for m in part.terms for f in m)
    return out


def expand(statements: Sequence[Statement], nominal: Mapping[str, int]) -> list[Statement]:
    """The statements with each nominal predictor's term replaced by its dummy terms.

    Raises
    ------
    InputError
        Naming ``model.nominal.<name>``: a bad declaration (:func:`check_declaration`), a
        variable the syntax does not use as a predictor on its own, one with an equation, a
        product term, a random effect or a fixed coefficient, or dummy names the syntax
        already uses.
    """
    nominal = check_declaration(nominal)
    taken = _names(statements)
    for name, k in nominal.items():
        _check_uses(statements, name, k)
        clash = sorted(set(dummy_names(name, k)) & taken)
        if clash:
            raise _refuse(
                name, k, f"a variable whose dummy names are free ({clash[0]} is in the syntax)"
            )
    out = []
    for s in statements:
        if s.op != "~":
            out.append(s)
            continue
        terms: list[Term] = []
        for t in s.terms:
            if len(t.factors) == 1 and t.factors[0] in nominal:
                d = t.factors[0]
                for k, dummy in enumerate(dummy_names(d, nominal[d]), start=2):
                    label = f"{t.label}{k}" if t.label else None
                    terms.append(Term((dummy,), label=label))
            else:
                terms.append(t)
        out.append(dataclasses.replace(s, terms=tuple(terms)))
    return out
