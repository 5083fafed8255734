"""ICD-10-CM conventions applied to a claim's diagnosis list, as a coder applies them.

The diagnoses arrive collected, mapped and in the EHR's order (``diagnoses.py``); this
module turns them into what a coder reports:

* combination codes and presumed links (I.A.15 "with": diabetes with its complications,
  hypertension with CKD/heart disease, I.C.9.a) from ``diagnosis-rules.csv``;
* signs and symptoms integral to a definitive diagnosis are dropped (I.B.5, IV.D);
* BMI only with a weight diagnosis (I.B.14, I.C.21.c.3); follow-up with its history code;
* "use additional code" notes that ask for a second code the claim lacks (warning);
* the encounter reason first (Z51.x then the neoplasm, I.C.2.e; aftercare and follow-up,
  I.C.21.c.7/8; screening on a screening visit, I.C.21.c.5);
* etiology before manifestation (I.A.13): a code whose tabular "code first" note (at the
  code or an ancestor) names a code on the claim goes after it; manifestation codes
  (every "... classified elsewhere" phrasing), supplementary agent codes (B95-B97),
  external causes (V00-Y99), BMI (Z68) and codes with an unconditional "code first" note
  are never first-listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from mappings.coding.dx_rules import DxRule, DxRules
from terminology import systems
from terminology.service import TerminologyError, TerminologyService

if TYPE_CHECKING:
    from mappings.coding.diagnoses import DiagnosisCoder as DxContext
    from mappings.coding.diagnoses import Dx

ICD10CM = systems.ICD10CM
_ELSEWHERE = re.compile(
    r"in (other )?(diseases|conditions|disorders) classified elsewhere"
    r"|as the cause of diseases classified elsewhere|in diseases specified elsewhere",
    re.I,
)
_CODE = re.compile(
    r"\b([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?)(?:\.-)?"
    r"(?:\s*-\s*([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?))?"
)
# A "code first" note that names the underlying cause (or the poisoning/nature of an
# adverse effect) makes the code secondary; lists of other possible first codes
# ("heart failure due to hypertension (I11.0)") only order the codes when present.
_UNDERLYING = re.compile(r"underlying|^\(T5[01]-T65\)|^the nature|etiology", re.I)
_CONDITIONAL = re.compile(r"if applicable|if known|^any |^associated", re.I)


class Lookup(Protocol):
    t: TerminologyService
    dos: date


@dataclass(frozen=True, slots=True)
class Instructions:
    """What the tabular says about one code (its own notes and its ancestors')."""

    manifestation: bool  # title phrasing or the loader's flag: never first-listed
    code_first_always: bool  # an unconditional "code first" note
    code_first: tuple[tuple[str, str], ...]  # (low, high) code ranges the notes name
    title: str


_CACHE: dict[tuple[str, str], Instructions] = {}


def _ranges(texts: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for text in texts:
        for lo, hi in _CODE.findall(text):
            out.append((lo, hi or lo))
    return tuple(out)


def instructions(ctx: Lookup, code: str) -> Instructions:
    """The instructional notes that decide a code's place (cached per release)."""
    try:
        found = ctx.t.lookup(ICD10CM, code, ctx.dos)
    except TerminologyError:
        return Instructions(False, False, (), "")
    key = (found.meta.version, code)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    blocks: dict[str, list[str]] = {}
    for note in found.notes:
        if note.kind == "codeFirst":
            blocks.setdefault(note.at, []).append(note.text)
    always = any(
        _UNDERLYING.search(texts[0]) and not any(_CONDITIONAL.search(t) for t in texts)
        for texts in blocks.values()
    )
    named = _ranges([t for texts in blocks.values() for t in texts])
    title = found.concept.display
    manifestation = found.concept.manifestation or bool(_ELSEWHERE.search(title))
    result = Instructions(manifestation, always, named, title)
    _CACHE[key] = result
    return result


def in_range(code: str, ranges: tuple[tuple[str, str], ...]) -> bool:
    """Is ``code`` named by one of the note's codes or ranges (``E00-E07``, ``I12.-``)?"""
    for lo, hi in ranges:
        if lo == hi:
            if code.startswith(lo):
                return True
        elif lo <= code[: len(lo)] and code[: len(hi)] <= hi:
            return True
    return False


def secondary_only(ctx: Lookup, code: str) -> str | None:
    """Why ``code`` can never be first-listed, or None."""
    if code[:1] in ("V", "W", "X", "Y"):
        return "an external-cause code (I.C.20)"
    if code.startswith(("B95", "B96", "B97")):
        return "a supplementary infectious-agent code (I.C.1.b)"
    if code.startswith("Z68"):
        return "a BMI code, reported only as a secondary diagnosis (I.C.21.c.3)"
    ins = instructions(ctx, code)
    if ins.manifestation:
        return "a manifestation code ('classified elsewhere', I.A.13)"
    if ins.code_first_always:
        return "a code whose tabular note says to code the underlying condition first (I.A.13)"
    return None


def _matches(code: str, prefixes: tuple[str, ...]) -> bool:
    return code.startswith(prefixes)


class Conventions:
    def __init__(self, ctx: DxContext, rules: DxRules) -> None:
        self.ctx = ctx
        self.rules = rules
        self.renamed: dict[str, str] = {}  # old code -> code that replaced it

    def apply(self, dxs: list[Dx]) -> list[Dx]:
        dxs = self.combine(dxs)
        dxs = self.integral(dxs)
        self.weight(dxs)
        self.history(dxs)
        self.additional(dxs)
        dxs = self.reason_first(dxs)
        dxs = self.etiology_first(dxs)
        return dxs

    # ----------------------------------------------------------- combinations
    def combine(self, dxs: list[Dx]) -> list[Dx]:
        for rule in self.rules.of("combine"):
            dxs = self._combine_one(rule, dxs)
        return dxs

    def _combine_one(self, rule: DxRule, dxs: list[Dx]) -> list[Dx]:
        base = next((d for d in dxs if rule.base_of(d.code)), None)
        if base is None:
            return dxs
        partners = []
        for group in rule.groups:
            hit = next((d for d in dxs if d is not base and _matches(d.code, group)), None)
            if hit is None:
                return dxs
            partners.append(hit)
        result = rule.result.replace("{cat}", base.code[:3]) if rule.result else ""
        if result and any(d.code == result for d in dxs):
            result = ""  # already coded: only the drops and the base removal apply
        out = list(dxs)
        index = out.index(base)
        dropped = [d for d in out if rule.drop and _matches(d.code, rule.drop)]
        what = []
        if result:
            checked = self.ctx.check_icd10cm(result, f"{base.source}.code")
            if checked is None or not self.ctx.valid_icd(result):
                return dxs  # not a code of the release in force: leave the codes as given
            from mappings.coding.diagnoses import Dx as DxType

            new = DxType(checked[0], checked[1], base.key, base.source, checked[2])
            out.insert(index + (0 if rule.replace_base else 1), new)
            what.append(f"{result} added")
            for d in dropped + ([base] if rule.replace_base else []):
                self.renamed[d.code] = result
        if rule.replace_base:
            out.remove(base)
            what.append(f"{base.code} removed")
        for d in dropped:
            if d in out:
                out.remove(d)
                what.append(f"{d.code} removed")
        if not what:
            return dxs
        shown = ", ".join(p.code for p in partners)
        self.ctx.problem(
            "information",
            "dx-combined",
            f"{base.code} with {shown}: {'; '.join(what)} ({rule.source})",
            "Claim.diagnosis",
        )
        return out

    # ------------------------------------------------------ integral symptoms
    def integral(self, dxs: list[Dx]) -> list[Dx]:
        out = list(dxs)
        for rule in self.rules.of("integral"):
            definitive = [d for d in out if rule.groups and _matches(d.code, rule.groups[0])]
            if not definitive:
                continue
            for d in [d for d in out if rule.base_of(d.code)]:
                out.remove(d)
                self.ctx.problem(
                    "information",
                    "dx-integral-symptom",
                    f"{d.code} is not coded: it is routinely associated with {definitive[0].code}"
                    f" ({rule.source})",
                    f"{d.source}.code",
                )
        return out

    # ------------------------------------------------------------ weight, history
    def weight(self, dxs: list[Dx]) -> None:
        for rule in self.rules.of("weight"):
            bmi = [d for d in dxs if rule.base_of(d.code)]
            if not bmi:
                continue
            if not any(_matches(d.code, rule.groups[0]) for d in dxs if d not in bmi):
                self.ctx.problem(
                    "error",
                    "bmi-without-weight-dx",
                    f"{bmi[0].code} (BMI) is reported only with an associated weight diagnosis"
                    f" such as obesity, overweight, underweight or malnutrition: add the"
                    f" provider's diagnosis or remove the BMI ({rule.source})",
                    f"{bmi[0].source}.code",
                )
            age = self.ctx.age
            for d in bmi:
                pediatric = d.code.startswith("Z68.5")
                if age is None:
                    continue
                if (pediatric and not 2 <= age < 20) or (not pediatric and age < 20):
                    self.ctx.problem(
                        "error",
                        "age-sex-conflict",
                        f"{d.code}: adult BMI codes are for persons 20 years or older, pediatric"
                        f" ones (Z68.5-) for 2-19 years (tabular note at Z68); patient:"
                        f" {int(age)} years",
                        f"{d.source}.code",
                    )

    def history(self, dxs: list[Dx]) -> None:
        for rule in self.rules.of("history"):
            for d in dxs:
                if rule.base_of(d.code) and not any(
                    _matches(o.code, rule.groups[0]) for o in dxs if o is not d
                ):
                    self.ctx.problem(
                        "warning",
                        "dx-history-missing",
                        f"{d.code} needs the history code of the condition treated ({rule.source})",
                        "Claim.diagnosis",
                    )

    def additional(self, dxs: list[Dx]) -> None:
        for rule in self.rules.of("additional"):
            for d in dxs:
                if rule.base_of(d.code) and not any(
                    _matches(o.code, rule.groups[0]) for o in dxs if o is not d
                ):
                    wanted = ", ".join(rule.groups[0][:4])
                    self.ctx.problem(
                        "warning",
                        "dx-additional-code",
                        f"{d.code}: the tabular asks for an additional code ({wanted}...) that the"
                        f" record does not give ({rule.source})",
                        "Claim.diagnosis",
                    )

    # ---------------------------------------------------------------- ordering
    def reason_first(self, dxs: list[Dx]) -> list[Dx]:
        ranked_other = any(d.key[:2] == (0, 1) for d in dxs)
        for rule in self.rules.of("first"):
            when = rule.result
            if when == "unranked" and ranked_other:
                continue
            if when == "screening-visit" and "screening" not in self.ctx.kinds:
                continue
            hit = next((d for d in dxs if rule.base_of(d.code)), None)
            if hit is None:
                continue
            out = [hit] + [d for d in dxs if d is not hit]
            if rule.rule in ("chemo", "radiation"):
                neoplasm = next((d for d in out[1:] if _neoplasm(d.code)), None)
                if neoplasm is not None:
                    out.remove(neoplasm)
                    out.insert(1, neoplasm)
            if out[0] is not dxs[0]:
                self.ctx.problem(
                    "information",
                    "dx-reason-first",
                    f"{hit.code} is first-listed ({rule.source})",
                    "Claim.diagnosis[0]",
                )
            return out
        return dxs

    def etiology_first(self, dxs: list[Dx]) -> list[Dx]:
        out = list(dxs)
        # A code whose "code first" note names another code on the claim follows it.
        for _ in range(len(out)):
            moved = False
            for i, d in enumerate(out):
                named = instructions(self.ctx, d.code).code_first
                if not named:
                    continue
                later = [o for o in out[i + 1 :] if in_range(o.code, named)]
                if later:
                    for o in later:
                        out.remove(o)
                    pos = out.index(d)
                    out[pos:pos] = later
                    moved = True
                    break
            if not moved:
                break
        if out and secondary_only(self.ctx, out[0].code):
            why = secondary_only(self.ctx, out[0].code)
            first = next((d for d in out if not secondary_only(self.ctx, d.code)), None)
            if first is None:
                self.ctx.problem(
                    "error",
                    "manifestation-first",
                    f"{out[0].code} cannot be the first-listed diagnosis: it is {why}; code the"
                    " underlying condition",
                    "Claim.diagnosis[0]",
                )
            else:
                out.remove(first)
                out.insert(0, first)
        return out


def _neoplasm(code: str) -> bool:
    return code[:1] == "C" or (code[:1] == "D" and code[1:3].isdigit() and int(code[1:3]) < 50)


def pointer_order(ctx: Lookup, codes: list[str], *, problem_em: bool) -> list[str]:
    """Diagnosis codes in the order a line may point to them: never a code that cannot be
    first-listed first, and never a routine-exam Z00/Z01 first on a problem E/M."""

    def rank(code: str) -> int:
        # The routine exam, the therapy session and the screening are not what a problem
        # E/M treats (CPT: the separately identifiable problem justifies the E/M).
        if problem_em and code.startswith(("Z00", "Z01", "Z51", "Z11", "Z12", "Z13")):
            return 2
        return 1 if secondary_only(ctx, code) else 0

    return sorted(codes, key=lambda c: rank(c))
