"""A coder's decisions on a claim, stored as data and reapplied whenever the claim is made.

A certified coder reviewing a draft claim may change the order of the diagnoses, replace
a diagnosis or a line code, set a line's modifiers, units or diagnosis pointers, drop a
line, or release the claim while accepting the edits that remain. Each decision is a
FHIR ``Basic`` resource (``code`` = ``claim-override``), ``subject`` = the Encounter
(the claim's identity survives a replacement claim, the encounter's does not change),
one ``extension`` holding the claim, the action, its target, the new value, the coder's
required reason and when it was recorded, and ``author`` = the coder. The coding
service reads them with the encounter's other inputs (they become entities of the
claim's Provenance) and the engine reapplies them, oldest first, each time it codes:

* a decision whose target is still on the claim is applied, and an information issue
  ``coder-override`` says who decided what and why;
* one whose target is gone (the encounter changed: the diagnosis or line it names is no
  longer produced) is an error ``override-stale``: the claim stays a draft and its Task
  returns to the queue saying which decision no longer fits;
* decisions made after the last ``release`` hold the claim as a draft (``coder-hold``)
  so that it never goes out half-fixed; a release accepts the error edits listed in it
  (matched by edit code and message, so a changed edit is not accepted silently).

Line decisions are applied before the line code check, NCCI/MUE scrubbing and pricing,
so the coder's codes are validated, scrubbed and priced like the engine's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from mappings.coding.lines import Line
from mappings.coding.model import Problem, SourceData
from terminology import systems

OVERRIDE_URL = "https://billable.dev/fhir/StructureDefinition/claim-override"
BASIC_KIND = "https://billable.dev/fhir/CodeSystem/basic-kind"
OVERRIDE_CODE = "claim-override"
USER_SYSTEM = "https://billable.dev/fhir/user"

# action -> (what ``target`` names, what ``value`` holds)
ACTIONS: dict[str, tuple[str, str]] = {
    "dx-order": ("diagnosis code", "new position (1 = first listed)"),
    "dx-code": ("diagnosis code", "replacement ICD-10-CM code"),
    "line-code": ("line code", "replacement CPT/HCPCS code"),
    "modifier": ("line code", "modifiers, comma separated (empty: none)"),
    "units": ("line code", "units (1 or more)"),
    "pointer": ("line code", "diagnosis codes the line points to, comma separated"),
    "drop-line": ("line code", "(nothing)"),
    "release": ("(nothing)", "accepted edits, one 'edit-code: message' per line"),
}
# Issues that a release can never accept: they are the decisions' own bookkeeping.
NOT_ACCEPTABLE = frozenset({"override-stale", "coder-hold"})
# Edits about one diagnosis code: a coder's replacement of that code resolves them.
DX_CODE_EDITS = frozenset(
    {
        "code-invalid",
        "code-not-billable",
        "code-not-effective",
        "code-unknown",
        "age-sex-conflict",
        "dx-laterality",
        "manifestation-first",
    }
)
MAX_REASON = 1000


class CoderLike(Protocol):
    """What the decisions need from the engine (``engine._Coder``)."""

    src: SourceData
    problems: list[Problem]

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Override:
    """One decision, as parsed from its ``Basic`` resource."""

    id: str
    action: str
    target: str
    value: str
    reason: str
    author: str
    recorded: str
    claim: str | None = None
    accepted: tuple[str, ...] = ()  # release: "edit-code: message" of each accepted edit

    def describe(self) -> str:
        what = {
            "dx-order": f"moved diagnosis {self.target} to position {self.value}",
            "dx-code": f"replaced diagnosis {self.target} with {self.value}",
            "line-code": f"replaced line code {self.target} with {self.value}",
            "modifier": f"set the modifiers of {self.target} to {self.value or 'none'}",
            "units": f"set the units of {self.target} to {self.value}",
            "pointer": f"pointed {self.target} to diagnoses {self.value}",
            "drop-line": f"dropped the line {self.target}",
            "release": f"released the claim accepting {len(self.accepted)} edit(s)",
        }[self.action]
        return f"coder {self.author} {what} on {self.recorded[:10]} (reason: {self.reason})"


def _split(text: str) -> list[str]:
    return [part.strip().upper() for part in text.split(",") if part.strip()]


def check_decision(action: str, target: str, value: str, reason: str) -> list[str]:
    """Why a decision cannot be recorded (empty: it can). The webapp shows these."""
    problems: list[str] = []
    if action not in ACTIONS:
        return [f"unknown action {action!r}"]
    if not reason.strip():
        problems.append("a reason is required")
    if len(reason) > MAX_REASON:
        problems.append(f"the reason is longer than {MAX_REASON} characters")
    if action != "release" and not target.strip():
        problems.append(f"say which {ACTIONS[action][0]} the decision is about")
    if action in ("dx-code", "line-code") and not value.strip():
        problems.append("give the replacement code")
    if action == "dx-order" and not (value.isdigit() and 1 <= int(value) <= 12):
        problems.append("the position is a number from 1 to 12")
    if action == "units" and not (value.isdigit() and 1 <= int(value) <= 999):
        problems.append("units are a whole number from 1 to 999")
    if action == "pointer" and not 1 <= len(_split(value)) <= 4:
        problems.append("a line points to 1 to 4 diagnoses")
    if action == "modifier" and any(len(m) != 2 for m in _split(value)):
        problems.append("modifiers are two characters each (25, 59, LT...)")
    return problems


def override_resource(
    *,
    encounter_id: str,
    claim_id: str | None,
    action: str,
    target: str,
    value: str,
    reason: str,
    author: dict[str, Any],
    accepted: list[str] | None = None,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """The ``Basic`` resource of one decision (``author``: a Reference to the coder)."""
    moment = (recorded or datetime.now(UTC)).astimezone(UTC)
    parts: list[dict[str, Any]] = []
    if claim_id:
        parts.append({"url": "claim", "valueReference": {"reference": f"Claim/{claim_id}"}})
    parts.append({"url": "action", "valueCode": action})
    if target.strip():
        parts.append({"url": "target", "valueString": target.strip()})
    if value.strip():
        parts.append({"url": "value", "valueString": value.strip()})
    parts.append({"url": "reason", "valueString": reason.strip()})
    parts.append({"url": "recorded", "valueDateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    for edit in accepted or []:
        parts.append({"url": "accept", "valueString": edit})
    return {
        "resourceType": "Basic",
        "code": {
            "coding": [{"system": BASIC_KIND, "code": OVERRIDE_CODE}],
            "text": "A coder's decision on a claim",
        },
        "subject": {"reference": f"Encounter/{encounter_id}"},
        "created": moment.date().isoformat(),
        "author": author,
        "extension": [{"url": OVERRIDE_URL, "extension": parts}],
    }


def parse_override(basic: dict[str, Any]) -> Override | None:
    """The decision a ``Basic`` resource holds, or None when it is not one."""
    codes = {(c.get("system"), c.get("code")) for c in (basic.get("code") or {}).get("coding", [])}
    if (BASIC_KIND, OVERRIDE_CODE) not in codes:
        return None
    for ext in basic.get("extension") or []:
        if ext.get("url") != OVERRIDE_URL:
            continue
        values: dict[str, str] = {}
        accepted: list[str] = []
        for part in ext.get("extension") or []:
            url = part.get("url")
            text = (
                part.get("valueString")
                or part.get("valueCode")
                or part.get("valueDateTime")
                or (part.get("valueReference") or {}).get("reference")
                or ""
            )
            if url == "accept":
                accepted.append(str(text))
            elif isinstance(url, str):
                values[url] = str(text)
        action = values.get("action", "")
        if action not in ACTIONS:
            return None
        author = basic.get("author") or {}
        who = author.get("display") or author.get("reference") or "unknown"
        return Override(
            id=str(basic.get("id") or ""),
            action=action,
            target=values.get("target", "").strip().upper(),
            value=values.get("value", "").strip(),
            reason=values.get("reason", ""),
            author=str(who),
            recorded=values.get("recorded", ""),
            claim=values.get("claim") or None,
            accepted=tuple(accepted),
        )
    return None


def accepted_edit(problem: Problem) -> str:
    """How a release names an edit it accepts."""
    return f"{problem.code}: {problem.message}"


@dataclass(slots=True)
class CoderDecisions:
    """The decisions of one encounter while the engine codes it (empty: changes nothing)."""

    c: CoderLike
    decisions: list[Override] = field(default_factory=list)

    @classmethod
    def of(cls, coder: CoderLike) -> CoderDecisions:
        found = [o for o in (parse_override(b) for b in coder.src.overrides) if o is not None]
        found.sort(key=lambda o: (o.recorded, o.id))
        return cls(coder, found)

    def _applied(self, o: Override, location: str) -> None:
        text = o.describe()
        self.c.problem("information", "coder-override", text[0].upper() + text[1:], location)

    def _resolve(self, o: Override) -> None:
        """The engine's edits about the code a decision replaced are resolved by it."""
        named = re.compile(rf"(?<![\w.]){re.escape(o.target)}(?!\w|\.\w)")
        for p in self.c.problems:
            if p.severity == "error" and p.code in DX_CODE_EDITS and named.search(p.message):
                p.severity = "information"
                p.message = f"Resolved: {o.describe()}. Was: {p.message}"

    def _stale(self, o: Override, why: str, location: str) -> None:
        self.c.problem(
            "error",
            "override-stale",
            f"A coder's decision no longer fits: {o.describe()}; {why}. Review it and"
            " withdraw or redo it",
            location,
        )

    # ------------------------------------------------------------------ diagnoses
    def diagnoses(
        self, dxs: list[Any], by_condition: dict[str, list[str]], check: Any
    ) -> list[Any]:
        """``dxs`` (``diagnoses.Dx``) after the diagnosis decisions; ``check(code, loc)``
        validates a replacement like the engine's own codes (``check_icd10cm``)."""
        out = list(dxs)
        for o in self.decisions:
            codes = [d.code for d in out]
            if o.action == "dx-code":
                new = o.value.upper()
                if o.target in codes:
                    i = codes.index(o.target)
                    self._resolve(o)
                    checked = check(new, f"Claim.diagnosis[{i}]")
                    code, display, manifestation = checked or (new, new, False)
                    out[i] = replace(
                        out[i], code=code, display=display, manifestation=manifestation
                    )
                    for ref, given in by_condition.items():
                        by_condition[ref] = [code if x == o.target else x for x in given]
                    self._applied(o, f"Claim.diagnosis[{i}]")
                elif new in codes:
                    self._applied(o, f"Claim.diagnosis[{codes.index(new)}]")
                else:
                    self._stale(
                        o, f"the claim has no diagnosis {o.target} any more", "Claim.diagnosis"
                    )
            elif o.action == "dx-order":
                if o.target not in codes:
                    self._stale(
                        o, f"the claim has no diagnosis {o.target} any more", "Claim.diagnosis"
                    )
                    continue
                moved = out.pop(codes.index(o.target))
                position = min(int(o.value), len(out) + 1) - 1
                out.insert(position, moved)
                self._applied(o, f"Claim.diagnosis[{position}]")
                if position == 0 and moved.manifestation:
                    # ICD-10-CM Official Guidelines I.A.13: a manifestation code is never
                    # first-listed; the underlying condition is coded first.
                    self.c.problem(
                        "error",
                        "manifestation-first",
                        f"{moved.code} is a manifestation code and may not be listed first"
                        " (ICD-10-CM Guidelines I.A.13): code the underlying condition first",
                        "Claim.diagnosis[0]",
                    )
        return out

    # ---------------------------------------------------------------------- lines
    def lines(self, lines: list[Line]) -> list[Line]:
        """The service lines after the line decisions (before validation and pricing)."""
        out = list(lines)
        for o in self.decisions:
            if o.action not in ("line-code", "modifier", "units", "drop-line"):
                continue
            index = next(
                (i for i, ln in enumerate(out) if ln.code.upper() == o.target and not ln.removed),
                None,
            )
            if index is None:
                if o.action == "line-code" and any(
                    ln.code.upper() == o.value.upper() for ln in out
                ):
                    self._applied(o, "Claim.item")
                elif o.action == "drop-line":
                    self._applied(o, "Claim.item")  # already gone: the decision holds
                else:
                    self._stale(o, f"the claim has no line {o.target} any more", "Claim.item")
                continue
            line = out[index]
            if o.action == "line-code":
                code = o.value.upper()
                line.code = code
                line.system = systems.CPT if code[:1].isdigit() else systems.HCPCS
                line.display = ""
                line.unit_price = None
            elif o.action == "modifier":
                line.modifiers = _split(o.value)
            elif o.action == "units":
                line.quantity = int(o.value)
            else:
                out.pop(index)
            self._applied(o, f"Claim.item[{index}]")
        return out

    # ---------------------------------------------------------------------- claim
    def finish(self, claim: dict[str, Any]) -> None:
        """Pointers on the built claim, then the release's accepted edits and the hold."""
        dx_codes = [
            ((d.get("diagnosisCodeableConcept") or {}).get("coding") or [{}])[0].get("code")
            for d in claim.get("diagnosis") or []
        ]
        items = claim.get("item") or []
        for o in self.decisions:
            if o.action != "pointer":
                continue
            item_index = next(
                (
                    i
                    for i, item in enumerate(items)
                    if str(item["productOrService"]["coding"][0].get("code", "")).upper()
                    == o.target
                ),
                None,
            )
            wanted = _split(o.value)
            missing = [code for code in wanted if code not in dx_codes]
            if item_index is None:
                self._stale(o, f"the claim has no line {o.target} any more", "Claim.item")
            elif missing:
                self._stale(
                    o,
                    f"the claim has no diagnosis {', '.join(missing)} any more",
                    "Claim.diagnosis",
                )
            else:
                items[item_index]["diagnosisSequence"] = [dx_codes.index(x) + 1 for x in wanted]
                self._applied(o, f"Claim.item[{item_index}].diagnosisSequence")
        self._release()

    def _release(self) -> None:
        releases = [o for o in self.decisions if o.action == "release"]
        fixes = [o for o in self.decisions if o.action != "release"]
        last = releases[-1] if releases else None
        if last is not None:
            accepted = set(last.accepted)
            for p in self.c.problems:
                if (
                    p.severity == "error"
                    and p.code not in NOT_ACCEPTABLE
                    and accepted_edit(p) in accepted
                ):
                    p.severity = "warning"
                    p.message = f"Accepted by coder {last.author} ({last.reason}): {p.message}"
            self._applied(last, "Claim")
        pending = [
            o for o in fixes if last is None or (o.recorded, o.id) > (last.recorded, last.id)
        ]
        if pending:
            self.c.problem(
                "error",
                "coder-hold",
                f"{len(pending)} coder decision(s) not released yet: the claim stays a draft"
                " until a coder releases it",
                "Claim",
            )
