"""The lavaan-superset model syntax, parsed with a real grammar (lark) into statements.

Statements, one per line or separated by ``;`` (``#`` starts a comment)::

    f =~ y1 + l2*y2 + 1*y3            # measurement: f is latent, loadings (first fixed at 1)
    y ~ 1 + b1*x + z + x:z            # regression: intercept, labelled slope, product term
    y ~ 1 + x + (1 + x | g)           # lme4-style random intercept and slope by cluster g
    y ~~ v*y                          # (residual) variance, labelled;  x ~~ z: a covariance
    y ~ 1                             # intercept only (lavaan's `y ~ 1`)
    ind := a*b                        # derived quantity: arithmetic over labels

A modifier before ``*`` is a label (a name: the parameter's population value and estimate are
known by it) or a number (the parameter is fixed at it). :func:`parse` returns plain
statements; :mod:`simstudy.spec.ir` gives them meaning (which variables are latent, which
parameters are free).
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from simstudy.errors import InputError

GRAMMAR = r"""
start: _line*
_line: statement? _sep
_sep: NEWLINE | ";"

?statement: measurement | regression | covariance | derived

measurement: NAME "=~" term ("+" term)*
regression: NAME "~" rhs
covariance: NAME "~~" modifier? NAME
derived: NAME ":=" expr

rhs: item ("+" item)*
?item: term | random
term: modifier? monomial
    | modifier? ONE         -> intercept
modifier: label_or_value "*"
?label_or_value: NAME -> label
    | fixed_value -> fixed
fixed_value: SIGNED_NUMBER | ONE | ZERO
monomial: NAME (":" NAME)*
random: "(" re_terms "|" NAME ")"
re_terms: re_term ("+" re_term)*
re_term: ONE -> re_intercept
    | ZERO -> re_no_intercept
    | monomial

?expr: sum
?sum: product | sum "+" product -> add | sum "-" product -> sub
?product: power | product "*" power -> mul | product "/" power -> div
?power: unary | unary "^" power -> pow
?unary: atom | "-" unary -> neg
?atom: NUMBER -> number | NAME -> name | "(" sum ")"

ONE.2: /1(?![0-9.eE])/
ZERO.2: /0(?![0-9.eE])/
NAME: /[A-Za-z_][A-Za-z0-9_.]*/
COMMENT: /#[^\n]*/
NEWLINE: /\r?\n/

%import common.NUMBER
%import common.SIGNED_NUMBER
%ignore /[ \t\f]+/
%ignore COMMENT
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@dataclass(frozen=True)
class Term:
    """One term of a regression or measurement: a coefficient times a monomial.

    ``factors`` is empty for the intercept; ``label`` names a free coefficient; ``fixed``
    fixes it at a value (None: free, and unlabelled).
    """

    factors: tuple[str, ...]
    label: str | None = None
    fixed: float | None = None


@dataclass(frozen=True)
class RandomTerms:
    """An lme4-style ``(1 + x | g)`` part: monomials with a coefficient varying by ``group``."""

    terms: tuple[tuple[str, ...], ...]
    group: str


@dataclass(frozen=True)
class Statement:
    """One statement of the syntax, with its line for error messages.

    ``op`` is ``=~``, ``~``, ``~~`` or ``:=``. ``terms`` holds the right-hand side of
    ``=~``/``~`` (and the one term of ``~~``, whose ``factors`` is the partner variable);
    ``random`` the random-effect parts of ``~``; ``expr`` the expression of ``:=``.
    """

    op: str
    lhs: str
    terms: tuple[Term, ...] = ()
    random: tuple[RandomTerms, ...] = ()
    expr: tuple | None = None
    line: int = 0


@v_args(inline=True)
class _ToStatements(Transformer):
    def start(self, *statements):
        return [s for s in statements if isinstance(s, Statement)]

    def label(self, token):
        return ("label", str(token))

    def fixed(self, value):
        return ("fixed", value)

    def fixed_value(self, token):
        return float(token)

    def re_term(self, monomial):
        return monomial

    def modifier(self, value):
        return value

    def monomial(self, *names):
        return tuple(str(n) for n in names)

    @staticmethod
    def _term(factors, modifier):
        if modifier is None:
            return Term(factors)
        kind, value = modifier
        return Term(factors, label=value) if kind == "label" else Term(factors, fixed=value)

    def term(self, *parts):
        modifier = parts[0] if len(parts) == 2 else None
        return self._term(parts[-1], modifier)

    def intercept(self, *parts):
        modifier = parts[0] if len(parts) == 2 else None
        return self._term((), modifier)

    def re_intercept(self, _token):
        return ()

    def re_no_intercept(self, _token):
        return None

    def re_terms(self, *terms):
        return terms

    def random(self, terms, group):
        explicit_zero = any(t is None for t in terms)
        monomials = [t for t in terms if t is not None]
        if not explicit_zero and () not in monomials:
            monomials.insert(0, ())  # lme4: (x | g) has a random intercept too
        return RandomTerms(tuple(monomials), str(group))

    def rhs(self, *items):
        return items

    def measurement(self, lhs, *terms):
        return Statement("=~", str(lhs), tuple(terms), line=lhs.line)

    def regression(self, lhs, items):
        terms = tuple(i for i in items if isinstance(i, Term))
        random = tuple(i for i in items if isinstance(i, RandomTerms))
        return Statement("~", str(lhs), terms, random, line=lhs.line)

    def covariance(self, lhs, *rest):
        modifier = rest[0] if len(rest) == 2 else None
        term = self._term((str(rest[-1]),), modifier)
        return Statement("~~", str(lhs), (term,), line=lhs.line)

    def derived(self, lhs, expr):
        return Statement(":=", str(lhs), expr=expr, line=lhs.line)

    # expressions: nested tuples (op, *args), evaluated by simstudy.spec.ir.evaluate
    def number(self, token):
        return ("num", float(token))

    def name(self, token):
        return ("name", str(token))

    def add(self, a, b):
        return ("+", a, b)

    def sub(self, a, b):
        return ("-", a, b)

    def mul(self, a, b):
        return ("*", a, b)

    def div(self, a, b):
        return ("/", a, b)

    def pow(self, a, b):
        return ("^", a, b)

    def neg(self, a):
        return ("neg", a)


_TOKEN_WORDS = {
    "NAME": "a variable name",
    "NUMBER": "a number",
    "SIGNED_NUMBER": "a number",
    "ONE": "'1'",
    "ZERO": "'0'",
    "NEWLINE": "the end of the line",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "COLON": "':'",
    "VBAR": "'|'",
    "LPAR": "'('",
    "RPAR": "')'",
    "SEMICOLON": "';'",
    "TILDE": "'~'",
    "__ANON_0": "'=~'",
    "__ANON_1": "'~~'",
    "__ANON_2": "':='",
}


def _expected(exc: UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    words = sorted({_TOKEN_WORDS.get(n, _literal(n)) for n in names})
    if not words:
        return "a statement such as 'y ~ x', 'f =~ y1 + y2', 'x ~~ z' or 'ab := a*b'"
    return "one of " + ", ".join(words)


def _literal(name: str) -> str:
    term = next((t for t in _PARSER.terminals if t.name == name), None)
    if term is not None and term.pattern.type == "str":
        return repr(term.pattern.value)
    return name.lower()


def parse(syntax: str, field: str = "model.syntax") -> list[Statement]:
    """Parse model syntax into statements.

    Raises
    ------
    InputError
        For a syntax error: the line, the column, what was found and what was expected.
    """
    if not isinstance(syntax, str) or not syntax.strip():
        raise InputError(field, syntax, "model syntax text, e.g. 'y ~ 1 + x'")
    try:
        tree = _PARSER.parse(syntax + "\n")
    except (UnexpectedToken, UnexpectedCharacters, UnexpectedEOF) as exc:
        line = getattr(exc, "line", 0) or syntax.count("\n") + 1
        column = getattr(exc, "column", 0) or 1
        found = _found(exc, syntax)
        text = syntax.splitlines()[line - 1] if 0 < line <= len(syntax.splitlines()) else ""
        raise InputError(
            f"{field} (line {line}, column {column})",
            text.strip() or found,
            f"{_expected(exc)} where {found} is",
        ) from None
    return _ToStatements().transform(tree)


def _found(exc: UnexpectedInput, syntax: str) -> str:
    token = getattr(exc, "token", None)
    if isinstance(token, Token):
        if token.type == "$END" or token.type == "NEWLINE":
            return "the end of the line"
        return repr(str(token))
    pos = getattr(exc, "pos_in_stream", None)
    if pos is not None and pos < len(syntax):
        return repr(syntax[pos])
    return "the end of the text"
