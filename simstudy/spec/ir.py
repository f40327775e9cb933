"""The model's intermediate representation: frozen dataclasses built from syntax or from Python.

A :class:`ModelSpec` says what every back end needs and nothing about how it is computed:

- **variables**: observed, latent (left of ``=~``) or random effect (one per term of an
  lme4-style ``(... | g)`` part), each at level 1 or at the level of a grouping factor;
- **equations**: ``target ~ sum(coefficient x monomial) + sum(random effect x monomial)``
  with a residual variance (measurements ``f =~ y`` become equations ``y ~ nu + lambda f``);
- **covariance blocks**: vectors that are jointly normal with a free covariance — the
  exogenous latent variables at level 1, and the random effects of each ``(... | g)`` part;
- **missingness** of observed variables (the simulator's, given by the design), **derived
  quantities** (``:=``) and the **parameters**, each with its lavaan name and optional label;
- **nominal predictors** (:class:`Nominal`): observed, coded 1..K, entering the equations as
  their dummies ``d2 .. dK``, with category probabilities as parameters;
- **ordered variables** (:class:`Ordered`, lavaan's ``ordered=``): binary or ordinal outcomes
  and indicators, coded 0..K-1, the cut latent response ``u* ~ N(mean, 1)`` of their
  equation (probit, lavaan's "theta" parameterisation: intercept 0, residual variance 1) at
  thresholds ``u|t1 < ... < u|t(K-1)``; as a predictor (a binary mediator) its latent response
  ``u*``, not its category, enters the other equations.

Identification follows lavaan: the first loading of each factor is fixed at 1, latent means
are 0, observed outcomes have a free intercept, exogenous latents covary. An exogenous
observed variable that is incomplete gets a model of its own, ``x ~ 1 + (the complete
exogenous variables)`` (Blimp's default: predictors are jointly normal), so its missing values
are drawn, not dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.grammar import Statement, parse
from simstudy.spec.nominal import dummy_names, expand

OBSERVED, LATENT, RANDOM = "observed", "latent", "random_effect"


@dataclass(frozen=True)
class Variable:
    """A variable: ``kind`` observed | latent | random_effect; ``level`` None or a group."""

    name: str
    kind: str
    level: str | None = None


@dataclass(frozen=True)
class Parameter:
    """A parameter: lavaan-style ``name``, optional ``label``, ``fixed`` value or None (free).

    ``kind``: ``coef`` (intercept, slope, loading), ``variance`` (a residual variance, or a
    variance of a covariance block), ``covariance`` or ``probability`` (a nominal predictor's
    category). ``nuisance`` parameters belong to a model the fit adds for an incomplete
    predictor: sampled, not reported.
    """

    name: str
    kind: str
    label: str | None = None
    fixed: float | None = None
    nuisance: bool = False

    @property
    def free(self) -> bool:
        """Whether the parameter is estimated."""
        return self.fixed is None

    @property
    def is_loading(self) -> bool:
        """Whether the parameter is a loading (``f=~y``, lavaan's name of a measurement)."""
        return self.kind == "coef" and "=~" in self.name


@dataclass(frozen=True)
class Coefficient:
    """A fixed-effect term: ``parameter`` times the product of ``factors`` (empty: intercept)."""

    parameter: Parameter
    factors: tuple[str, ...]


@dataclass(frozen=True)
class RandomTerm:
    """A random-effect term: random effect ``effect`` (a variable) times ``factors``."""

    effect: str
    factors: tuple[str, ...]


@dataclass(frozen=True)
class Equation:
    """``target ~ N(mean, variance)``; ``mean`` = fixed terms + random terms."""

    target: str
    coefficients: tuple[Coefficient, ...]
    random: tuple[RandomTerm, ...]
    variance: Parameter

    def variables(self) -> set[str]:
        """Every variable in the equation's mean."""
        out = {f for c in self.coefficients for f in c.factors}
        out |= {f for r in self.random for f in r.factors}
        return out | {r.effect for r in self.random}

    def monomials(self) -> list[tuple[str, ...]]:
        """The variables of each term of the mean (random terms include their effect)."""
        return [c.factors for c in self.coefficients] + [
            (r.effect, *r.factors) for r in self.random
        ]


@dataclass(frozen=True)
class CovBlock:
    """Variables jointly normal with mean 0 and a free covariance (variances, covariances)."""

    name: str
    members: tuple[str, ...]
    level: str | None
    variances: tuple[Parameter, ...]
    covariances: tuple[Parameter, ...]  # lower triangle, row by row: (1,0), (2,0), (2,1) ...


@dataclass(frozen=True)
class Missingness:
    """The simulator's missingness of ``variable``: MCAR, or MAR given ``given`` (probit)."""

    variable: str
    given: tuple[str, ...] = ()
    strength: float = 0.8


@dataclass(frozen=True)
class Derived:
    """A derived quantity ``name := expr`` (expression tree over labels, see :func:`evaluate`)."""

    name: str
    expr: tuple
    text: str


@dataclass(frozen=True)
class Nominal:
    """A nominal predictor with ``categories`` categories, coded 1..K (1: the reference).

    Its equations hold the dummies ``d2 .. dK`` (:mod:`simstudy.spec.nominal`); its category
    probabilities are parameters ``P(d=2) .. P(d=K)``, labelled ``p_d2 .. p_dK``.
    """

    name: str
    categories: int

    @property
    def dummies(self) -> tuple[str, ...]:
        """The dummy variables of categories 2..K."""
        return dummy_names(self.name, self.categories)

    def probabilities(self) -> tuple[Parameter, ...]:
        """``P(d=k)`` for k = 2..K (free; ``P(d=1)`` is 1 minus their sum)."""
        return tuple(
            Parameter(f"P({self.name}={k})", "probability", label=f"p_{dummy}")
            for k, dummy in zip(range(2, self.categories + 1), self.dummies, strict=True)
        )

    def dummy_values(self, codes: Any) -> dict[str, Any]:
        """Each dummy's 0/1 values per row from the codes 1..K (numbers or arrays)."""
        return {
            dummy: (codes == k) * 1.0
            for k, dummy in zip(range(2, self.categories + 1), self.dummies, strict=True)
        }


@dataclass(frozen=True)
class Ordered:
    """An ordered (binary: ``categories`` 2, or ordinal) variable coded 0..K-1.

    Its equation's mean is that of a latent response with residual variance 1 (probit);
    category ``k`` is observed where ``u|tk <= u* < u|t(k+1)``. Either the intercept is 0 and
    every threshold free (lavaan's parameterisation, the default), or, where the equation
    writes its intercept (``u ~ 1 + x``), the intercept is free and ``u|t1`` is 0 (glmer's and
    brms's for a binary outcome).
    """

    name: str
    categories: int
    intercept: bool = False
    link: str = "probit"  # or "logit": a standard logistic residual

    def thresholds(self) -> tuple[Parameter, ...]:
        """``u|t1 .. u|t(K-1)``, lavaan's names; ``u|t1`` fixed at 0 with a free intercept."""
        return tuple(
            Parameter(
                f"{self.name}|t{k}", "threshold", fixed=0.0 if k == 1 and self.intercept else None
            )
            for k in range(1, self.categories)
        )


#: The residual variance of an ordered variable's latent response (probit; a logit one's is
#: 1 / w per row, w its Pólya–Gamma precision, see :mod:`simstudy.spec.steps.ordered`).
ORDERED_VARIANCE = 1.0


@dataclass(frozen=True)
class ModelSpec:
    """A whole model (see the module docstring)."""

    variables: tuple[Variable, ...]
    equations: tuple[Equation, ...]
    blocks: tuple[CovBlock, ...]
    exogenous: tuple[str, ...]
    missing: tuple[Missingness, ...] = ()
    derived: tuple[Derived, ...] = ()
    groups: tuple[str, ...] = ()
    exogenous_moments: tuple[Parameter, ...] = field(default=())
    simulated_exogenous: tuple[str, ...] = ()
    nominal: tuple[Nominal, ...] = ()
    ordered: tuple[Ordered, ...] = ()
    #: The solution reported: ``est`` (the parameters) or ``std.all``
    #: (:mod:`simstudy.spec.standardized`).
    report: str = "est"

    def variable(self, name: str) -> Variable:
        """The variable called ``name``."""
        return next(v for v in self.variables if v.name == name)

    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter of the fitted model, equations first, in syntax order."""
        out = [c.parameter for e in self.equations for c in e.coefficients]
        out += [e.variance for e in self.equations]
        for b in self.blocks:
            out += [*b.variances, *b.covariances]
        for nom in self.nominal:
            out += nom.probabilities()
        for o in self.ordered:
            out += o.thresholds()
        return tuple(out)

    def estimands(self) -> tuple[str, ...]:
        """Names of the reported quantities: free non-nuisance parameters, then derived ones.

        Under ``report: std.all``, :func:`simstudy.spec.standardized.names`.
        """
        if self.report != "est":
            from simstudy.spec.standardized import names

            return names(self)
        free = [p.name for p in self.parameters() if p.free and not p.nuisance]
        return (*free, *(d.name for d in self.derived))

    def labels(self) -> dict[str, str]:
        """Label -> lavaan name of every labelled parameter."""
        return {p.label: p.name for p in self.parameters() if p.label}

    def order(self) -> tuple[Equation, ...]:
        """Equations in an order where each target comes after every variable in its mean."""
        by_target = {e.target: e for e in self.equations}
        done: list[Equation] = []
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2 or name not in by_target:
                return
            if state.get(name) == 1:
                cycle = " -> ".join((*path, name))
                raise InputError("model.syntax", cycle, "equations without a cycle")
            state[name] = 1
            for v in sorted(by_target[name].variables()):
                visit(v, (*path, name))
            state[name] = 2
            done.append(by_target[name])

        for e in self.equations:
            visit(e.target, ())
        return tuple(done)

    def unknown_nodes(self) -> tuple[str, ...]:
        """Level-1 variables a fit draws per row: latents, then incomplete predictors.

        An ordered predictor is not one of them: its step draws its latent responses.
        """
        latent = [v.name for v in self.variables if v.kind == LATENT]
        used = set().union(*(e.variables() for e in self.equations)) if self.equations else set()
        ordered = {o.name for o in self.ordered}
        imputed = [m.variable for m in self.missing if m.variable in used - ordered]
        return (*latent, *imputed)


def evaluate(expr: tuple, values: Mapping[str, Any]) -> Any:
    """Evaluate an expression tree of :mod:`simstudy.spec.grammar` (arrays work too)."""
    op = expr[0]
    if op == "num":
        return expr[1]
    if op == "name":
        return values[expr[1]]
    if op == "neg":
        return -evaluate(expr[1], values)
    a, b = evaluate(expr[1], values), evaluate(expr[2], values)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    return a**b


def with_derived(spec: ModelSpec, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (by lavaan name) with every derived quantity added, its labels resolved.

    A label names a free parameter's value, or a fixed parameter's constant. Works on numbers
    and on arrays (per-draw derived quantities of the back ends).
    """
    labelled = {p.label: values[p.name] for p in spec.parameters() if p.label and p.name in values}
    for p in spec.parameters():
        if p.label and p.fixed is not None:
            labelled[p.label] = p.fixed
    for d in spec.derived:
        values[d.name] = evaluate(d.expr, {**values, **labelled})
    return values


def names_in(expr: tuple) -> set[str]:
    """The names an expression tree refers to."""
    if expr[0] == "name":
        return {expr[1]}
    if expr[0] == "num":
        return set()
    return set().union(*(names_in(e) for e in expr[1:]))


def covariance_pair(name: str) -> frozenset[str] | None:
    """The two variables of a covariance's name ``a~~b`` (either order); None for others."""
    a, op, b = name.partition("~~")
    return frozenset((a, b)) if op and a and b and a != b else None


def _coef_name(target: str, factors: tuple[str, ...], measurement: bool = False) -> str:
    if measurement:
        return f"{factors[0]}=~{target}"
    return f"{target}~" + (":".join(factors) if factors else "1")


def _param(name: str, kind: str, term: Any = None, fixed: float | None = None) -> Parameter:
    label = getattr(term, "label", None)
    value = getattr(term, "fixed", None)
    return Parameter(name, kind, label=label, fixed=value if value is not None else fixed)


def build(
    statements: Sequence[Statement],
    missing: Mapping[str, Mapping[str, Any]] | None = None,
    field_name: str = "model.syntax",
    nominal: Mapping[str, int] | None = None,
    ordered: Mapping[str, int] | None = None,
    link: str = "probit",
    report: str = "est",
) -> ModelSpec:
    """The :class:`ModelSpec` of parsed statements and the design's missingness.

    ``missing``: variable -> ``{"given": [...], "strength": s}`` (which observed variables the
    simulator makes incomplete, and what MAR selection depends on). ``nominal``: variable ->
    categories of the nominal predictors (:mod:`simstudy.spec.nominal` expands their terms).
    ``ordered``: variable -> categories of the ordered outcomes and indicators, ``link`` theirs.
    ``report``: the solution reported (``est`` or ``std.all``, checked by the caller).

    Raises
    ------
    InputError
        For a model the back ends cannot take, naming the statement's line.
    """
    missing = dict(missing or {})
    nominal = dict(nominal or {})
    ordered = dict(ordered or {})
    statements = expand(statements, nominal)
    # a dummy stands for its nominal variable wherever variables are listed
    of_dummy = {x: d for d, k in nominal.items() for x in dummy_names(d, k)}
    latents = [s.lhs for s in statements if s.op == "=~"]
    latents = list(dict.fromkeys(latents))
    coefs: dict[str, list[Coefficient]] = {}
    random: dict[str, list[RandomTerm]] = {}
    no_intercept: set[str] = set()
    variances: dict[str, Parameter] = {}
    covariances: dict[frozenset[str], Parameter] = {}
    re_blocks: list[tuple[str, tuple[str, ...], str]] = []
    groups: list[str] = []
    derived: list[Derived] = []
    targets: list[str] = []

    def where(s: Statement) -> str:
        return f"{field_name} (line {s.line})"

    for s in statements:
        if s.op == "=~":
            for i, term in enumerate(s.terms):
                if len(term.factors) != 1:
                    raise InputError(where(s), ":".join(term.factors), "one indicator per term")
                y = term.factors[0]
                targets.append(y)
                name = _coef_name(y, (s.lhs,), measurement=True)
                param = _param(name, "coef", term, fixed=1.0 if i == 0 and not term.label else None)
                if i == 0 and term.label and term.fixed is None:
                    param = Parameter(name, "coef", label=term.label)
                coefs.setdefault(y, []).append(Coefficient(param, (s.lhs,)))
        elif s.op == "~":
            targets.append(s.lhs)
            for term in s.terms:
                if term.factors == () and term.fixed == 0.0:
                    no_intercept.add(s.lhs)
                    continue
                param = _param(_coef_name(s.lhs, term.factors), "coef", term)
                coefs.setdefault(s.lhs, []).append(Coefficient(param, term.factors))
            for part in s.random:
                if part.group not in groups:
                    groups.append(part.group)
                members = []
                for monomial in part.terms:
                    effect = f"{':'.join(monomial) or '1'}|{part.group}"
                    members.append(effect)
                    random.setdefault(s.lhs, []).append(RandomTerm(effect, monomial))
                re_blocks.append((s.lhs, tuple(members), part.group))
        elif s.op == "~~":
            other = s.terms[0].factors[0]
            if other == s.lhs:
                variances[s.lhs] = _param(f"{s.lhs}~~{s.lhs}", "variance", s.terms[0])
            else:  # named as written here; in declaration order below
                covariances[frozenset((s.lhs, other))] = _param(
                    f"{s.lhs}~~{other}", "covariance", s.terms[0]
                )
        else:
            derived.append(Derived(s.lhs, s.expr, _expr_text(s.expr)))

    if len(groups) > 1:
        raise InputError(field_name, ", ".join(groups), "one grouping factor (two-level models)")
    # Random effects are named 'term|group'; when two equations share one, prefix the outcome.
    effect_owner: dict[str, list[str]] = {}
    for target, members, _ in re_blocks:
        for m in members:
            effect_owner.setdefault(m, []).append(target)
    rename = {}
    for m, owners in effect_owner.items():
        if len(set(owners)) > 1:
            raise InputError(
                field_name, m, "one equation per random-effect term and group (for now)"
            )
    random = {
        t: [RandomTerm(rename.get(r.effect, r.effect), r.factors) for r in rs]
        for t, rs in random.items()
    }

    mentioned: list[str] = []
    for s in statements:
        if s.op in ("=~", "~"):
            mentioned.append(s.lhs)
            for term in s.terms:
                mentioned.extend(term.factors)
            for part in s.random:
                for monomial in part.terms:
                    mentioned.extend(monomial)
        elif s.op == "~~":
            mentioned.extend((s.lhs, s.terms[0].factors[0]))
    mentioned = [of_dummy.get(m, m) for m in mentioned]
    mentioned = [m for m in dict.fromkeys(mentioned) if m not in groups]
    for m in mentioned:
        if m in groups:
            raise InputError(field_name, m, "a grouping factor only after '|'")
    observed = [m for m in mentioned if m not in latents]
    declared = {v: i for i, v in enumerate(dict.fromkeys([*latents, *mentioned]))}
    covariances = {pair: _declared(p, declared) for pair, p in covariances.items()}
    endogenous = list(dict.fromkeys(targets))
    exogenous_latent = [f for f in latents if f not in endogenous]
    # a nominal predictor has no normal model: its categories are drawn, not its dummies
    exogenous = [v for v in observed if v not in endogenous and v not in nominal]
    for name in missing:
        if name not in observed:
            raise InputError(
                f"model.design.missing.{name}",
                name,
                "an observed variable of the model: " + ", ".join(observed),
            )
        for on in missing[name].get("given", ()) or ():
            if on not in observed or on in missing:
                raise InputError(
                    f"model.design.missing.{name}.given", on, "a complete observed variable"
                )

    exo_all = list(exogenous)
    # Incomplete exogenous predictors get a model: regressed on the complete exogenous ones.
    nuisance_targets = []
    complete_exo = [v for v in exogenous if v not in missing]
    for v in exogenous:
        if v in missing:
            nuisance_targets.append(v)
            terms = [Coefficient(Parameter(f"{v}~1", "coef", nuisance=True), ())]
            terms += [
                Coefficient(Parameter(f"{v}~{c}", "coef", nuisance=True), (c,))
                for c in complete_exo
            ]
            coefs[v] = terms
            endogenous.append(v)
    exogenous = complete_exo

    _check_ordered(ordered, observed, endogenous, statements, variances, field_name, link)
    equations = []
    for target in endogenous:
        cs = list(coefs.get(target, []))
        if target in ordered and not any(c.factors == () for c in cs):
            # the latent response's location: the thresholds' (lavaan's parameterisation)
            cs.insert(0, Coefficient(Parameter(f"{target}~1", "coef", fixed=0.0), ()))
        elif target in observed and target not in no_intercept:
            if not any(c.factors == () for c in cs):
                cs.insert(0, Coefficient(Parameter(f"{target}~1", "coef"), ()))
        nuisance = target in nuisance_targets
        var = variances.get(target, Parameter(f"{target}~~{target}", "variance"))
        if target in ordered:
            var = Parameter(var.name, "variance", fixed=ORDERED_VARIANCE)
        if nuisance:
            var = Parameter(var.name, "variance", nuisance=True)
        equations.append(Equation(target, tuple(cs), tuple(random.get(target, ())), var))

    blocks = []
    if exogenous_latent:
        blocks.append(
            _cov_block("latent", exogenous_latent, None, variances, covariances, free_cov=True)
        )
    for target, members, group in re_blocks:
        names = [rename.get(m, m) for m in members]
        blocks.append(
            _cov_block(f"{target}|{group}", names, group, variances, covariances, free_cov=True)
        )
    in_blocks = {m for b in blocks for m in b.members}
    for pair, param in covariances.items():
        if not (pair <= in_blocks or pair <= set(exo_all)):
            raise InputError(
                field_name,
                param.name,
                "covariances between exogenous variables or random effects of one block",
            )
    variables = [Variable(m, LATENT if m in latents else OBSERVED) for m in mentioned]
    variables += [Variable(r.effect, RANDOM, level=groups[0]) for rs in random.values() for r in rs]
    # The simulator's moments of the exogenous observed variables (defaults: 0 means, unit
    # variances, no covariances); population values may set any of them by name or label.
    exo_moments = [Parameter(f"{v}~1", "mean", fixed=0.0) for v in exo_all]
    exo_moments += [
        variances.get(v, Parameter(f"{v}~~{v}", "variance", fixed=1.0)) for v in exo_all
    ]
    exo_moments += [p for pair, p in covariances.items() if pair <= set(exo_all)]
    spec = ModelSpec(
        variables=tuple(variables),
        equations=tuple(equations),
        blocks=tuple(blocks),
        exogenous=tuple(exogenous),
        missing=tuple(
            Missingness(k, tuple(v.get("given", ()) or ()), float(v.get("strength", 0.8)))
            for k, v in missing.items()
        ),
        derived=tuple(derived),
        groups=tuple(groups),
        exogenous_moments=tuple(exo_moments),
        simulated_exogenous=tuple(exo_all),
        nominal=tuple(Nominal(d, k) for d, k in nominal.items()),
        ordered=tuple(
            Ordered(u, k, intercept=any(c.factors == () for c in coefs.get(u, [])), link=link)
            for u, k in ordered.items()
        ),
        report=report,
    )
    _check(spec, field_name)
    return spec


def _check_ordered(
    ordered: Mapping[str, int],
    observed: Sequence[str],
    endogenous: Sequence[str],
    statements: Sequence[Statement],
    variances: Mapping[str, Parameter],
    field_name: str,
    link: str,
) -> None:
    """An ordered variable is an observed outcome or indicator; a predictor too (probit).

    As a predictor its latent response enters the other equations (lavaan's WLSMV and
    Blimp's choice for a categorical mediator); so it must have an equation of its own (not
    an indicator's: its response is drawn from its structural equation and its children's),
    and the probit link (a logistic response given its children is no truncated normal).
    """
    indicators = {t.factors[0] for s in statements if s.op == "=~" for t in s.terms}
    for u, k in ordered.items():
        where = f"model.ordered.{u}"
        if u not in observed or u not in endogenous:
            allowed = [v for v in observed if v in endogenous]
            raise InputError(
                where, u, "an observed outcome or indicator of the model: " + ", ".join(allowed)
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise InputError(where, k, "a number of categories >= 2 (2: binary)")
        if u in variances:
            raise InputError(
                field_name,
                f"{u} ~~ {u}",
                f"no residual variance for ordered {u} (its latent response's is 1: probit)",
            )
        for s in statements:
            if s.op != "~":
                continue
            used = {f for t in s.terms for f in t.factors}
            used |= {f for part in s.random for m in part.terms for f in m}
            if u not in used:
                continue
            if link != "probit":
                raise InputError(
                    "model.link",
                    link,
                    f"probit where an ordered variable is a predictor ({u}, line {s.line})",
                )
            if u in indicators:
                raise InputError(
                    f"{field_name} (line {s.line})",
                    u,
                    "an ordered predictor with an equation of its own (not an indicator)",
                )


def _declared(param: Parameter, order: Mapping[str, int]) -> Parameter:
    """A covariance named in declaration order, as lavaan names ``speed ~~ visual``."""
    a, _, b = param.name.partition("~~")
    if order[a] <= order[b]:
        return param
    return replace(param, name=f"{b}~~{a}")


def _cov_block(name, members, level, variances, covariances, free_cov):
    var = tuple(variances.get(m, Parameter(f"{m}~~{m}", "variance")) for m in members)
    cov = []
    for i in range(1, len(members)):
        for j in range(i):
            # the member declared first comes first: lavaan's visual~~textual, lme4's 1|g~~x|g
            pair = frozenset((members[i], members[j]))
            default = Parameter(f"{members[j]}~~{members[i]}", "covariance")
            cov.append(covariances.get(pair, default))
    for p in (*var, *cov):
        if p.fixed is not None:
            raise InputError(
                "model.syntax",
                f"{p.name} fixed at {p.fixed:g}",
                "free variances and covariances of latent variables and random effects "
                "(identification by a marker indicator)",
            )
    return CovBlock(name, tuple(members), level, var, tuple(cov))


def _check(spec: ModelSpec, field_name: str) -> None:
    spec.order()  # raises on a cycle
    labels: dict[str, str] = {}
    for p in spec.parameters():
        if p.label:
            if p.label in labels and labels[p.label] != p.name:
                raise InputError(
                    field_name, p.label, f"one parameter per label (also on {labels[p.label]})"
                )
            labels[p.label] = p.name
    names = {*labels, *(p.name for p in spec.parameters())}
    for d in spec.derived:
        unknown = sorted(names_in(d.expr) - names)
        if unknown:
            raise InputError(f"{field_name} ({d.name} :=)", unknown[0], "a parameter label")
    for e in spec.equations:
        for c in e.coefficients:
            if len(set(c.factors)) != len(c.factors):
                raise InputError(field_name, ":".join(c.factors), "products of distinct variables")
    if not spec.equations:
        raise InputError(field_name, "", "at least one regression or measurement")


def _expr_text(expr: tuple) -> str:
    op = expr[0]
    if op == "num":
        return f"{expr[1]:g}"
    if op == "name":
        return expr[1]
    if op == "neg":
        return f"-{_expr_text(expr[1])}"
    return f"({_expr_text(expr[1])}{op}{_expr_text(expr[2])})"


def from_syntax(
    syntax: str,
    missing: Mapping[str, Mapping[str, Any]] | None = None,
    nominal: Mapping[str, int] | None = None,
    ordered: Mapping[str, int] | None = None,
    link: str = "probit",
    report: str = "est",
) -> ModelSpec:
    """Parse and build a :class:`ModelSpec` (see :func:`simstudy.spec.grammar.parse`)."""
    spec = build(parse(syntax), missing, nominal=nominal, ordered=ordered, link=link, report=report)
    if report != "est":
        from simstudy.spec.standardized import check

        check(spec)
    return spec
