"""FHIR terminology operations and the CodeSystem/ValueSet/ConceptMap resources.

Mounted under the FHIR base, ahead of the generic REST routes. Every operation answers
GET (query parameters) and POST (a ``Parameters`` resource). Responses are plain dicts
serialised with orjson; failures raise ``FhirError`` and become OperationOutcomes.

Billable additions to the standard parameters, both documented in docs/terminology.md:
``$translate`` reads the patient's age and sex from ``dependency`` parts (POST) or from
``age``/``sex`` query parameters (GET); ``$expand`` honours ``excludeNotForUI=true`` by
leaving out header (non-billable) codes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.responses import json_response
from server.errors import FhirError, bad_request, not_found
from terminology import systems
from terminology.catalog import Entry
from terminology.model import CodeSystemVersion, ConceptMapVersion
from terminology.service import (
    Expansion,
    LookupResult,
    TerminologyError,
    TerminologyService,
    ValidationResult,
    get_service,
)

router = APIRouter()

DEFAULT_EXPAND_COUNT = 1000
INLINE_LIMIT = 2000  # concepts/map rows inlined in a resource read without _summary=false

_SEX_CODES = {
    "male": "male",
    "female": "female",
    "m": "male",
    "f": "female",
    "248153007": "male",
    "248152002": "female",
}
_AGE_ELEMENTS = {"age", "patient-age", "445518008", "424144002", "397669002"}
_SEX_ELEMENTS = {"sex", "gender", "administrative-gender", "263495000", "184100006"}


# ------------------------------------------------------------------ plumbing
def _service(request: Request) -> TerminologyService:
    service = getattr(request.app.state, "terminology", None)
    return service if isinstance(service, TerminologyService) else get_service()


class Params:
    """Operation parameters from the query string or a POSTed Parameters resource."""

    def __init__(self, values: dict[str, list[Any]]) -> None:
        self.values = values

    @classmethod
    async def read(cls, request: Request) -> Params:
        values: dict[str, list[Any]] = {}
        if request.method == "POST":
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError as err:
                raise bad_request(f"Request body is not JSON: {err}") from err
            if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
                raise bad_request("POST body must be a Parameters resource", "structure")
            for p in body.get("parameter", []):
                values.setdefault(p.get("name", ""), []).append(_param_value(p))
        for key, value in request.query_params.multi_items():
            values.setdefault(key, []).append(value)
        return cls(values)

    def get(self, name: str) -> Any:
        found = self.values.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Any]:
        return self.values.get(name, [])

    def text(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else str(value)

    def integer(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError) as err:
            raise bad_request(f"Parameter {name} must be an integer, got {value!r}") from err
        if number < 0:
            raise bad_request(f"Parameter {name} must not be negative")
        return number

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        return value is True or str(value).lower() == "true"

    def day(self, name: str = "date") -> date | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError as err:
            raise bad_request(
                f"Parameter {name} must be a date (YYYY-MM-DD), got {value!r}"
            ) from err


def _param_value(p: dict[str, Any]) -> Any:
    if "part" in p:
        return {part.get("name"): _param_value(part) for part in p["part"]}
    for key, value in p.items():
        if key.startswith("value"):
            if key == "valueQuantity" and isinstance(value, dict):
                return value.get("value")
            return value
        if key == "resource":
            return value
    return None


def _coding_from(params: Params) -> tuple[str | None, str | None, str | None, str | None]:
    """(system, code, version, display) from system/code or coding or codeableConcept."""
    coding = params.get("coding")
    if coding is None and params.get("codeableConcept") is not None:
        codings = params.get("codeableConcept").get("coding") or []
        coding = codings[0] if codings else None
    if isinstance(coding, dict):
        return (
            coding.get("system"),
            coding.get("code"),
            coding.get("version"),
            coding.get("display"),
        )
    return (
        params.text("system"),
        params.text("code"),
        params.text("version"),
        params.text("display"),
    )


def _error(err: TerminologyError) -> FhirError:
    if err.kind in (
        "unknown-system",
        "unknown-code",
        "not-effective",
        "unknown-valueset",
        "unknown-version",
    ):
        return not_found(err.message)
    return bad_request(err.message)


def _respond(request: Request, body: dict[str, Any]) -> Response:
    return json_response(request, body)


def _p(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


# ------------------------------------------------------------------- $lookup
@router.get("/CodeSystem/$lookup")
@router.post("/CodeSystem/$lookup")
async def lookup(request: Request) -> Response:
    params = await Params.read(request)
    system, code, version, _ = _coding_from(params)
    if not system or not code:
        raise bad_request("$lookup needs system and code (or coding)", "required")
    service = _service(request)
    try:
        found = service.lookup(system, code, params.day(), version)
    except TerminologyError as err:
        raise _error(err) from err
    return _respond(request, lookup_parameters(found))


def lookup_parameters(found: LookupResult) -> dict[str, Any]:
    c = found.concept
    meta = found.meta
    out: list[dict[str, Any]] = [
        _p("name", valueString=meta.name),
        _p("version", valueString=meta.version),
        _p("display", valueString=c.display),
        _p("abstract", valueBoolean=not c.billable),
    ]
    for use, value in ((c.properties or {}).get("designations") or {}).items():
        out.append(
            _p(
                "designation",
                part=[_p("use", valueCoding={"code": use}), _p("value", valueString=value)],
            )
        )

    def prop(code: str, description: str | None = None, **value: Any) -> None:
        part = [_p("code", valueCode=code), _p("value", **value)]
        if description:
            part.append(_p("description", valueString=description))
        out.append(_p("property", part=part))

    prop("billable", valueBoolean=c.billable)
    if c.parent:
        prop("parent", valueCode=c.parent)
    for child, _display in found.children:
        prop("child", valueCode=child)
    start = c.valid_from or meta.effective_from
    prop("effective-from", valueDateTime=start.isoformat())
    end = c.valid_to or meta.effective_to
    if end:
        prop("effective-to", valueDateTime=end.isoformat())
    if c.manifestation:
        prop(
            "manifestation",
            "cannot be the principal diagnosis; code the etiology first",
            valueBoolean=True,
        )
    for key, value in {**found.classification, **(c.properties or {})}.items():
        if key == "designations" or value is None:
            continue
        name = "age-group" if key == "age" else key
        if isinstance(value, bool):
            prop(name, valueBoolean=value)
        elif isinstance(value, int | float):
            prop(name, valueDecimal=value)
        else:
            prop(name, valueString=str(value))
    for note in found.notes:
        prop(
            note.kind,
            None if note.at == c.code else f"inherited from {note.at}",
            valueString=note.text,
        )
    for warning in found.warnings:
        out.append(_p("message", valueString=warning))
    return {"resourceType": "Parameters", "parameter": out}


# ------------------------------------------------------------ $validate-code
def validation_parameters(result: ValidationResult) -> dict[str, Any]:
    message = result.message
    if result.warnings:
        message = f"{message}. Warnings: " + "; ".join(result.warnings)
    out = [_p("result", valueBoolean=result.valid), _p("message", valueString=message)]
    if result.display:
        out.append(_p("display", valueString=result.display))
    out.append(_p("code", valueCode=result.code))
    out.append(_p("system", valueUri=result.system))
    if result.version:
        out.append(_p("version", valueString=result.version))
    out.append(_p("reason", valueCode=result.reason))
    return {"resourceType": "Parameters", "parameter": out}


@router.get("/CodeSystem/$validate-code")
@router.post("/CodeSystem/$validate-code")
async def codesystem_validate_code(request: Request) -> Response:
    params = await Params.read(request)
    system, code, version, display = _coding_from(params)
    system = system or params.text("url")
    if not system or not code:
        raise bad_request("$validate-code needs url (or system) and code", "required")
    result = _service(request).validate_code(system, code, params.day(), version, display)
    return _respond(request, validation_parameters(result))


@router.get("/ValueSet/$validate-code")
@router.post("/ValueSet/$validate-code")
async def valueset_validate_code(request: Request) -> Response:
    params = await Params.read(request)
    system, code, _version, _display = _coding_from(params)
    url = params.text("url") or ""
    if not code:
        raise bad_request("$validate-code needs code (with system) or coding", "required")
    service = _service(request)
    url = _resolve_valueset_url(url, service) if url else ""
    if not system:
        if "?fhir_vs" not in url:
            raise bad_request("$validate-code needs system when url is not an implicit value set")
        system = url.partition("?fhir_vs")[0]
    result = service.validate_in_valueset(url or f"{system}?fhir_vs", system, code, params.day())
    return _respond(request, validation_parameters(result))


# ------------------------------------------------------------------- $expand
def _resolve_valueset_url(url: str, service: TerminologyService) -> str:
    """Billable's named value sets (ValueSet/<id>) are implicit ones with a stable id."""
    if "?fhir_vs" in url:
        return url
    for resource in valueset_resources(service):
        if url in (resource["url"], resource["id"]):
            return str(resource["compose"]["include"][0]["valueSet"][0])
    return url


@router.get("/ValueSet/$expand")
@router.post("/ValueSet/$expand")
async def expand(request: Request) -> Response:
    params = await Params.read(request)
    url = params.text("url")
    if url is None and isinstance(params.get("valueSet"), dict):
        url = params.get("valueSet").get("url")
    if not url:
        raise bad_request(
            "$expand needs url (e.g. http://hl7.org/fhir/sid/icd-10-cm?fhir_vs)", "required"
        )
    service = _service(request)
    url = _resolve_valueset_url(url, service)
    count = params.integer("count")
    try:
        expansion = service.expand(
            url,
            filter=params.text("filter"),
            day=params.day(),
            count=DEFAULT_EXPAND_COUNT if count is None else count,
            offset=params.integer("offset") or 0,
            exclude_abstract=params.boolean("excludeNotForUI"),
            version=params.text("system-version"),
        )
    except TerminologyError as err:
        raise _error(err) from err
    return _respond(request, expansion_resource(expansion, params))


def expansion_resource(expansion: Expansion, params: Params) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "version", "valueUri": f"{s}|{v}"} for s, v in expansion.versions
    ]
    for name in ("filter", "date", "count", "offset", "excludeNotForUI"):
        value = params.text(name)
        if value is not None:
            parameters.append({"name": name, "valueString": value})
    contains = []
    for item in expansion.items:
        entry: dict[str, Any] = {
            "system": item.system,
            "version": item.version,
            "code": item.code,
            "display": item.display,
        }
        if item.abstract:
            entry["abstract"] = True
        contains.append(entry)
    return {
        "resourceType": "ValueSet",
        "url": expansion.url,
        "status": "active",
        "expansion": {
            "identifier": f"urn:uuid:{uuid.uuid4()}",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "total": expansion.total,
            "offset": expansion.offset,
            "parameter": parameters,
            "contains": contains,
        },
    }


# ---------------------------------------------------------------- $translate
def _dependencies(params: Params) -> tuple[float | None, str | None]:
    age: float | None = None
    sex: str | None = None
    for dep in params.all("dependency"):
        if not isinstance(dep, dict):
            continue
        element = str(dep.get("element") or "").lower().rsplit("|", 1)[-1].rsplit("/", 1)[-1]
        concept = dep.get("concept")
        value: Any = concept
        if isinstance(concept, dict):
            codings = concept.get("coding") or []
            value = codings[0].get("code") if codings else concept.get("text")
        if value is None:
            value = dep.get("value")
        if element in _AGE_ELEMENTS:
            age = _age(value)
        elif element in _SEX_ELEMENTS:
            sex = _sex(value)
    if params.get("age") is not None:
        age = _age(params.get("age"))
    if params.get("sex") is not None:
        sex = _sex(params.get("sex"))
    return age, sex


def _age(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise bad_request(f"Age dependency must be a number of years, got {value!r}") from err


def _sex(value: Any) -> str | None:
    key = str(value).strip().lower()
    if key in ("unknown", "other", "u", ""):
        return None
    if key not in _SEX_CODES:
        raise bad_request(f"Sex dependency must be male or female, got {value!r}")
    return _SEX_CODES[key]


@router.get("/ConceptMap/$translate")
@router.post("/ConceptMap/$translate")
async def translate(request: Request) -> Response:
    params = await Params.read(request)
    system, code, _version, _display = _coding_from(params)
    if not system or not code:
        raise bad_request("$translate needs system and code (or coding)", "required")
    if params.boolean("reverse"):
        raise FhirError.of(422, "not-supported", "$translate with reverse=true is not supported")
    target = params.text("targetsystem") or params.text("target")
    if target and "?fhir_vs" in target:
        target = target.partition("?fhir_vs")[0]
    age, sex = _dependencies(params)
    service = _service(request)
    try:
        matches = service.translate(
            system, code, target, params.day(), age, sex, map_url=params.text("url")
        )
    except TerminologyError as err:
        raise _error(err) from err
    out: list[dict[str, Any]] = []
    real = [m for m in matches if m.code]
    if real:
        message = f"{len(real)} candidate target(s) for {system}|{code}"
    elif matches:
        message = f"{system}|{code} has no billing code: " + "; ".join(
            m.advice for m in matches if m.advice
        )
    else:
        message = f"No map entry for {system}|{code}" + (f" to {target}" if target else "")
    out.append(_p("result", valueBoolean=bool(real)))
    out.append(_p("message", valueString=message))
    for m in matches:
        part = [_p("equivalence", valueCode=m.equivalence)]
        if m.code:
            part.append(
                _p(
                    "concept",
                    valueCoding={"system": m.target_system, "code": m.code, "display": m.display},
                )
            )
        part += [
            _p("source", valueUri=m.map_url),
            _p("mapGroup", valueInteger=m.map_group),
            _p("mapPriority", valueInteger=m.map_priority),
            _p("mapRule", valueString=m.rule),
            _p("ruleEvaluated", valueBoolean=m.rule_evaluated),
        ]
        if m.advice:
            part.append(_p("mapAdvice", valueString=m.advice))
        out.append(_p("match", part=part))
    return _respond(request, {"resourceType": "Parameters", "parameter": out})


# --------------------------------------------------- conformance resources
EFFECTIVE_PERIOD_EXTENSION = "http://hl7.org/fhir/StructureDefinition/resource-effectivePeriod"


def _resource_id(entry: Entry) -> str:
    """A FHIR id ([A-Za-z0-9-.]{1,64}) from the file name, e.g. ``icd10cm-2026-2025-10-01``."""
    stem = entry.path.name.removesuffix(".json.gz").split("-", 1)[1]
    return stem.replace("_", "-").lower()[:64]


def _base_resource(kind: str, entry: Entry) -> dict[str, Any]:
    m = entry.meta
    return {
        "resourceType": kind,
        "id": _resource_id(entry),
        "url": m.url,
        "version": m.version,
        "name": m.name,
        "title": m.title,
        "status": "active",
        "publisher": m.publisher or None,
        "description": f"{m.description + ' ' if m.description else ''}Source: {m.source}. "
        f"In force {m.period()}." + (f" License: {m.license}." if m.license else ""),
        # R4 CodeSystem/ValueSet/ConceptMap have no effectivePeriod element: the core
        # extension carries it.
        "extension": [
            {
                "url": EFFECTIVE_PERIOD_EXTENSION,
                "valuePeriod": {
                    "start": m.effective_from.isoformat(),
                    **({"end": m.effective_to.isoformat()} if m.effective_to else {}),
                },
            }
        ],
    }


def codesystem_resource(entry: Entry, inline: bool) -> dict[str, Any]:
    res = _base_resource("CodeSystem", entry)
    cs: CodeSystemVersion = entry.load()
    res["valueSet"] = f"{entry.meta.url}?fhir_vs"
    res["hierarchyMeaning"] = "is-a"
    res["caseSensitive"] = True
    if cs.content != "fragment":
        # count is the whole code system's size, which a shipped subset does not know
        res["count"] = len(cs.concepts)
    res["property"] = [
        {"code": "billable", "type": "boolean"},
        {"code": "parent", "type": "code"},
        {"code": "child", "type": "code"},
        {"code": "effective-from", "type": "dateTime"},
        {"code": "effective-to", "type": "dateTime"},
    ]
    if inline or len(cs.concepts) <= INLINE_LIMIT:
        res["content"] = cs.content
        res["concept"] = [
            {
                "code": c.code,
                "display": c.display,
                "property": [{"code": "billable", "valueBoolean": c.billable}]
                + ([{"code": "parent", "valueCode": c.parent}] if c.parent else []),
            }
            for c in cs.concepts.values()
        ]
    else:
        res["content"] = "not-present"
    return {k: v for k, v in res.items() if v is not None}


def conceptmap_resource(entry: Entry, inline: bool) -> dict[str, Any]:
    res = _base_resource("ConceptMap", entry)
    cm: ConceptMapVersion = entry.load()
    res["sourceUri"] = f"{cm.source_system}?fhir_vs"
    res["targetUri"] = f"{cm.target_system}?fhir_vs"
    rows = sum(len(t) for t in cm.entries.values())
    if inline or rows <= INLINE_LIMIT:
        elements = []
        for src, targets in cm.entries.items():
            element: dict[str, Any] = {"code": src, "target": []}
            if src in cm.source_displays:
                element["display"] = cm.source_displays[src]
            for t in targets:
                target: dict[str, Any] = {"equivalence": t.equivalence}
                if t.code:
                    target["code"] = t.code
                    target["display"] = t.display
                comment = f"group {t.map_group} priority {t.map_priority}; rule {t.rule}"
                if t.advice:
                    comment += f"; advice: {t.advice}"
                target["comment"] = comment
                element["target"].append(target)
            elements.append(element)
        res["group"] = [
            {"source": cm.source_system, "target": cm.target_system, "element": elements}
        ]
    return {k: v for k, v in res.items() if v is not None}


def valueset_resources(service: TerminologyService) -> list[dict[str, Any]]:
    """One value set per loaded code system: all its codes, by a stable id."""
    out: dict[str, dict[str, Any]] = {}
    for entry in service.catalog("codesystem"):
        m = entry.meta
        vs_id = m.name.lower().replace("_", "-")
        out[vs_id] = {
            "resourceType": "ValueSet",
            "id": vs_id,
            "url": f"{systems.BILLABLE_BASE}/ValueSet/{vs_id}",
            "version": m.version,
            "name": f"{m.name}_all",
            "title": f"All codes of {m.name}",
            "status": "active",
            "description": f"Every code of {m.url} in the version in force on the expansion "
            f"date (implicit value set {m.url}?fhir_vs).",
            "compose": {"include": [{"system": m.url, "valueSet": [f"{m.url}?fhir_vs"]}]},
        }
    return list(out.values())


def _matches(res: dict[str, Any], request: Request) -> bool:
    q = request.query_params
    for name in ("url", "version", "status"):
        if name in q and str(res.get(name)) != q[name]:
            return False
    if "name" in q and not str(res.get("name", "")).lower().startswith(q["name"].lower()):
        return False
    return True


def _bundle(request: Request, resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + request.url.path.rsplit("/", 1)[0]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _inline(request: Request) -> bool:
    return request.query_params.get("_summary") == "false"


@router.get("/CodeSystem")
async def search_codesystems(request: Request) -> Response:
    service = _service(request)
    found = [
        codesystem_resource(e, False) if e.loaded else _summary_codesystem(e)
        for e in service.catalog("codesystem")
    ]
    return _respond(request, _bundle(request, [r for r in found if _matches(r, request)]))


def _summary_codesystem(entry: Entry) -> dict[str, Any]:
    res = _base_resource("CodeSystem", entry)
    res["content"] = "not-present"
    res["valueSet"] = f"{entry.meta.url}?fhir_vs"
    return {k: v for k, v in res.items() if v is not None}


@router.get("/CodeSystem/{rid}")
async def read_codesystem(request: Request, rid: str) -> Response:
    for entry in _service(request).catalog("codesystem"):
        if _resource_id(entry) == rid:
            return _respond(request, codesystem_resource(entry, _inline(request)))
    raise not_found(f"CodeSystem/{rid} is not known")


@router.get("/ConceptMap")
async def search_conceptmaps(request: Request) -> Response:
    found = [conceptmap_resource(e, False) for e in _service(request).catalog("conceptmap")]
    for r in found:
        r.pop("group", None)  # searches list the maps; read one to see its rows
    return _respond(request, _bundle(request, [r for r in found if _matches(r, request)]))


@router.get("/ConceptMap/{rid}")
async def read_conceptmap(request: Request, rid: str) -> Response:
    for entry in _service(request).catalog("conceptmap"):
        if _resource_id(entry) == rid:
            return _respond(request, conceptmap_resource(entry, _inline(request)))
    raise not_found(f"ConceptMap/{rid} is not known")


@router.get("/ValueSet")
async def search_valuesets(request: Request) -> Response:
    found = valueset_resources(_service(request))
    return _respond(request, _bundle(request, [r for r in found if _matches(r, request)]))


@router.get("/ValueSet/{rid}")
async def read_valueset(request: Request, rid: str) -> Response:
    for res in valueset_resources(_service(request)):
        if res["id"] == rid:
            return _respond(request, res)
    raise not_found(f"ValueSet/{rid} is not known")


# ---------------------------------------------------------------- $versions
def _install_versions() -> None:
    from terminology.fhir_versions import versions

    router.add_api_route("/CodeSystem/$versions", versions, methods=["GET"])
    router.routes.insert(0, router.routes.pop())  # before CodeSystem/{rid}


_install_versions()
