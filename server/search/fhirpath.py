"""A compiled evaluator for the FHIRPath subset the R4 search parameters use.

Every expression in the official R4 SearchParameter definitions is a union (``|``) of
paths built from: element names (choice elements such as ``Observation.effective``
match ``effectiveDateTime``, ``effectivePeriod``...), ``as T`` / ``.as(T)`` /
``.ofType(T)``, ``.where(resolve() is T)``, ``.where(name='literal')`` and one
``X.exists() and X != false`` (``Patient.deceased``). Compiling those to small Python
closures once is an order of magnitude faster than a general FHIRPath engine on every
write; an expression outside the subset raises ``UnsupportedExpression`` (none of the
R4 ones does: ``tests/search/test_registry.py`` checks that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

Step = Callable[[list[Any]], list[Any]]
Evaluator = Callable[[Any], list[Any]]

# Type suffixes of choice elements ([x]) in R4 JSON.
CHOICE_SUFFIXES = frozenset(
    "Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid"
    " PositiveInt String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment"
    " CodeableConcept Coding ContactPoint Count Distance Duration HumanName Identifier Money"
    " Period Quantity Range Ratio Reference SampledData Signature Timing ContactDetail"
    " Contributor DataRequirement Expression ParameterDefinition RelatedArtifact"
    " TriggerDefinition UsageContext Dosage Meta".split()
)

# Every ``name`` such that some R4 element is called ``name`` + a choice suffix
# (``effective`` for ``effectiveDateTime``; also ``reference`` for ``referenceRange``),
# from the shipped validation schema (``tests/search/test_fhirpath_choice.py`` checks it).
# A valid resource (additional properties are refused) holds ``nameType`` keys only for
# these names, so a missing element of any other name needs no scan of its siblings.
CHOICE_PREFIXES = frozenset(
    "abatement abatementDate accession action actor additional additive age allowed alt "
    "amount answer answerDate approval asNeeded attestation author authorization available "
    "availableEnd availableStart batch benefit billable birth born bounds "
    "cTerminalModification characteristic chargeItem closing code collected collectedDate "
    "compareToSource conclusion content contextLink contraindicatedVaccine created "
    "createdDate cross data dataExclusivity dataset date dateDate deceased deceasedDate "
    "defaultValue defaultValueDate definingSubstance definition denominator derivedFrom "
    "detail device diagnosis distinct dose doseNumber due effective effectiveDate "
    "encodeRequest entered entity estimated event example execution expectedSupply "
    "expiration fastingStatus fixed fixedDate form full gestational goal group grouping "
    "halfLife identified identifiedDate indication instantiates internationalBirth item "
    "language lastReview legallyBinding link listRule location locked manufacture "
    "manufacturer master maternalOrganism max maxDosePer maxDosePerTreatment maxTreatment "
    "maxValue maxValueDate measurement medication minValue minValueDate minimum "
    "minimumVolume minutes module multipleBirth nTerminalModification name numerator "
    "occurred occurredDate occurrence occurrenceDate offset onset onsetDate opening "
    "organism outcome package parentSubstance participantEffective participantEffectiveDate "
    "paternalOrganism pattern patternDate payment performed performedDate performerLink "
    "postal preAdmission preAuth preAuthRef presentation probability procedure product "
    "prognosis program proxy publication quantity rate readset reason reasonLink received "
    "recorded reference referenceSeq release reported request requested requesterLink "
    "resource response restore retention scheduled sequence seriesDoses service "
    "serviceProvision serviced source specimen start status statusReason studyEffective "
    "studyEffectiveDate subject subscriber substance target temperature time timeDate "
    "timing timingDate topic type udiDevice unique use used vaccine validate "
    "validateProfile validation validity value valueDate variantset verification version "
    "when withdrawal ".split()
)


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the compiled subset."""


def split_top_level(text: str, sep: str = "|") -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in text:
        if ch == "'" and depth >= 0:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def root_of(path: str) -> str:
    """The resource type a union member starts from (``(Observation.value as X)`` → Observation)."""
    return path.lstrip("(").split(".", 1)[0].strip()


def _flatten(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, list):
            out.extend(x for x in v if x is not None)
        else:
            out.append(v)
    return out


def _choice_type(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def _field(name: str) -> Step:
    if name not in CHOICE_PREFIXES:
        return _plain_field(name)
    prefix_len = len(name)

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            value = node.get(name)
            if value is not None:
                if isinstance(value, list):
                    out.extend(value)
                else:
                    out.append(value)
                continue
            for key, value in node.items():  # a choice element: name + type suffix
                if (
                    len(key) > prefix_len
                    and key.startswith(name)
                    and key[prefix_len:] in CHOICE_SUFFIXES
                ):
                    if isinstance(value, list):
                        out.extend(value)
                    else:
                        out.append(value)
        return out

    return step


def _plain_field(name: str) -> Step:
    """``_field`` of a name no R4 choice element starts with: one lookup per node."""

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(name)
                if value is not None:
                    if isinstance(value, list):
                        out.extend(value)
                    else:
                        out.append(value)
        return out

    return step


def _exact_field(name: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return _flatten(n.get(name) for n in nodes if isinstance(n, dict))

    return step


@lru_cache(maxsize=65536)
def reference_type(reference: str) -> str | None:
    """``Patient/1``, ``http://x/fhir/Patient/1``, ``Patient/1/_history/2`` → ``Patient``."""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def _where_resolve_is(type_name: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for n in nodes:
            if isinstance(n, dict) and isinstance(n.get("reference"), str):
                if reference_type(n["reference"]) == type_name:
                    out.append(n)
            elif isinstance(n, str) and reference_type(n) == type_name:
                out.append(n)
        return out

    return step


def _index(n: int) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return nodes[n : n + 1]

    return step


def _where_equals(name: str, literal: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and n.get(name) == literal]

    return step


_TOKEN = re.compile(
    r"\s*(?:(?P<where_resolve>\.where\(resolve\(\)\s+is\s+(?P<rt>[A-Za-z]+)\))"
    r"|(?P<where_eq>\.where\((?P<wf>[A-Za-z]+)\s*=\s*'(?P<wv>[^']*)'\))"
    r"|(?P<as_fn>\.(?:as|ofType)\((?P<at>[A-Za-z]+)\))"
    r"|(?P<as_op>\s+as\s+(?P<ot>[A-Za-z]+))"
    r"|(?P<field>\.(?P<fname>[A-Za-z_][A-Za-z0-9_]*))"
    r"|(?P<index>\[(?P<n>\d+)\])"
    r"|(?P<open>\()|(?P<close>\)))"
)


def _compile_path(path: str) -> list[Step]:
    """A path relative to a node (``subject.where(resolve() is Patient)``) → steps."""
    text = "." + path.strip() if not path.startswith((".", "(")) else path.strip()
    steps: list[tuple[str, str, str]] = []  # (kind, a, b)
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UnsupportedExpression(f"cannot compile FHIRPath {path!r} at {text[pos:]!r}")
        pos = m.end()
        if m.group("field"):
            steps.append(("field", m.group("fname"), ""))
        elif m.group("index"):
            steps.append(("index", m.group("n"), ""))
        elif m.group("where_resolve"):
            steps.append(("resolve", m.group("rt"), ""))
        elif m.group("where_eq"):
            steps.append(("eq", m.group("wf"), m.group("wv")))
        elif m.group("as_fn") or m.group("as_op"):
            steps.append(("as", m.group("at") or m.group("ot"), ""))
    compiled: list[Step] = []
    for i, (kind, a, b) in enumerate(steps):
        if kind == "field":
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            if nxt and nxt[0] == "as":
                compiled.append(_exact_field(a + _choice_type(nxt[1])))
            else:
                compiled.append(_field(a))
        elif kind == "resolve":
            compiled.append(_where_resolve_is(a))
        elif kind == "eq":
            compiled.append(_where_equals(a, b))
        elif kind == "index":
            compiled.append(_index(int(a)))
        # "as" was folded into the preceding field step
    return compiled


_DECEASED = re.compile(r"^(\w+)\.(\w+)\.exists\(\) and \1\.\2 != false$")


def compile_expression(expression: str, resource_type: str | None = None) -> Evaluator:
    """Compile ``expression`` (a union of paths from a resource) into ``resource -> nodes``.

    With ``resource_type``, union members rooted at another type are dropped; members
    rooted at ``Resource`` or ``DomainResource`` always apply.
    """
    members: list[list[Step]] = []
    specials: list[Evaluator] = []
    for part in split_top_level(expression):
        root = root_of(part)
        if resource_type and root not in (resource_type, "Resource", "DomainResource"):
            continue
        special = _DECEASED.match(part)
        if special:
            specials.append(_exists_not_false(special.group(2)))
            continue
        body = part
        depth = 0
        while body.startswith("(") and body.endswith(")") and _balanced(body[1:-1]):
            body = body[1:-1].strip()
            depth += 1
        if body.startswith("("):  # (X.value as T).text
            close = _matching_paren(body)
            inner, rest = body[1:close], body[close + 1 :]
            rel = inner.split(".", 1)[1] if "." in inner else ""
            members.append(_compile_path(rel) + (_compile_path(rest) if rest else []))
        else:
            rel = body.split(".", 1)[1] if "." in body else ""
            members.append(_compile_path(rel) if rel else [])

    if not specials and len(members) == 1:
        return _single_member(members[0])

    def evaluate(resource: Any) -> list[Any]:
        out: list[Any] = []
        for steps in members:
            nodes = [resource]
            for step in steps:
                nodes = step(nodes)
                if not nodes:
                    break
            out.extend(nodes)
        for special_eval in specials:
            out.extend(special_eval(resource))
        return out

    return evaluate


def _single_member(steps: list[Step]) -> Evaluator:
    """The evaluator of a one-path expression (most of them): no union to gather."""
    if not steps:
        return lambda resource: [resource]
    if len(steps) == 1:
        (only,) = steps
        return lambda resource: only([resource])
    first, *rest = steps

    def evaluate(resource: Any) -> list[Any]:
        nodes = first([resource])
        for step in rest:
            if not nodes:
                break
            nodes = step(nodes)
        return nodes

    return evaluate


def root_keys(expression: str, resource_type: str | None = None) -> frozenset[str] | None:
    """The top-level keys of a resource that ``expression`` can reach anything through.

    A resource with none of them yields no nodes, so extraction skips the parameter
    without evaluating it. A member that starts with a plain element name ``x`` reaches
    ``x`` and every choice form ``xType`` (as ``_field`` does); ``x as T`` reaches only
    ``xT``. ``None`` when a member starts from the resource itself (no key to test).
    """
    keys: set[str] = set()
    for part in split_top_level(expression):
        if resource_type and root_of(part) not in (resource_type, "Resource", "DomainResource"):
            continue
        special = _DECEASED.match(part)
        if special:
            keys.update(_choice_keys(special.group(2)))
            continue
        body = part
        while body.startswith("(") and body.endswith(")") and _balanced(body[1:-1]):
            body = body[1:-1].strip()
        if body.startswith("("):
            body = body[1 : _matching_paren(body)]
        rel = body.split(".", 1)[1] if "." in body else ""
        first = _first_keys(rel)
        if first is None:
            return None
        keys.update(first)
    return frozenset(keys)


def relative_root_keys(expression: str) -> frozenset[str] | None:
    """``root_keys`` of a composite's component expression, evaluated on the resource
    itself (paths relative to the node, or ``%resource.``)."""
    keys: set[str] = set()
    for part in split_top_level(expression):
        first = _first_keys(part.removeprefix("%resource."))
        if first is None:
            return None
        keys.update(first)
    return frozenset(keys)


def _first_keys(rel: str) -> list[str] | None:
    """The keys the first step of the relative path ``rel`` reads (None: not a field)."""
    text = "." + rel.strip()
    first = _TOKEN.match(text) if rel.strip() else None
    if first is None or not first.group("field"):
        return None
    name = first.group("fname")
    after = _TOKEN.match(text, first.end())
    if after is not None and (after.group("as_fn") or after.group("as_op")):
        return [name + _choice_type(after.group("at") or after.group("ot"))]
    return _choice_keys(name)


def _choice_keys(name: str) -> list[str]:
    return [name, *(name + suffix for suffix in CHOICE_SUFFIXES)]


def compile_relative(expression: str) -> Callable[[Any, Any], list[Any]]:
    """A component expression of a composite parameter: ``(node, resource) -> nodes``.

    Paths are relative to the composite's node, or to the resource with ``%resource``.
    """
    members: list[tuple[bool, list[Step]]] = []
    for part in split_top_level(expression):
        if part.startswith("%resource."):
            members.append((True, _compile_path(part[len("%resource.") :])))
        else:
            members.append((False, _compile_path(part)))

    def evaluate(node: Any, resource: Any) -> list[Any]:
        out: list[Any] = []
        for from_root, steps in members:
            nodes = [resource if from_root else node]
            for step in steps:
                nodes = step(nodes)
            out.extend(nodes)
        return out

    return evaluate


def _exists_not_false(name: str) -> Evaluator:
    field = _field(name)

    def evaluate(resource: Any) -> list[Any]:
        values = field([resource])
        return [True] if values and values != [False] else []

    return evaluate


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _matching_paren(text: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i
    raise UnsupportedExpression(f"unbalanced parentheses in {text!r}")
