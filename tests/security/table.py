"""The attack table: every request an attacker with patient A's token (or another
identity) tries, the exact status it must get, and the check that none of patient B's
bytes come back.

A case is plain data (method, path, identity, body, expected status); a few need
several requests (``custom``). A *differential* case (``control``) closes existence
oracles: its status must equal the status of the same request with B's values replaced
by values nobody has, so that the answer says nothing about B.

``FIXED_ELSEWHERE`` names the cases that other branches of issue 13 fix; they are
``xfail(strict=True)`` here until those branches are merged (then drop the entries).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from tests.security.live import ASSERTION_TYPE, Attack
from tests.security.world import CLAIM_SYSTEM, RESOURCE_TYPES, SSN_SYSTEM, A, B, resources_of

# Cases that fail until another team's branch is merged: case name -> team.
FIXED_ELSEWHERE: dict[str, str] = {}

# Identities entitled to B's data: B itself and the system clients (their cases test
# input handling and refusals, not B's privacy).
MAY_SEE_B = frozenset({"B", "payer", "reader"})
FHIR_JSON = "application/fhir+json"
PATCH_JSON = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
MB17 = 17 * 1024 * 1024

# The kinds of answer a check can get wrong, as counted by the bench.
Custom = Callable[[Attack], tuple[httpx.Response, str]]
Check = Callable[[httpx.Response], str | None]


@dataclass(frozen=True)
class Case:
    name: str  # "category/what", unique
    method: str
    path: str  # from the server root: "/fhir/Patient/..."
    expect: int | None  # None: the status of ``control``
    identity: str | None = "A"  # a key of Attack.tokens, or None for no token
    json: Any = None
    content: bytes | None = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    check: Check | None = None
    custom: Custom | None = None
    control: Case | None = None
    mutates: bool = False  # runs after every read-only case
    mongo: bool = False  # also run on the MongoDB leg

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def fixed_by(self) -> str | None:
        return FIXED_ELSEWHERE.get(self.name)


@dataclass
class Result:
    case: Case
    status: int
    leaked: list[str]
    problems: list[str]
    control_status: int | None = None


# -- running one case -------------------------------------------------------------------


def _request_text(case: Case, url: str, headers: dict[str, str], body: bytes | None) -> str:
    parts = [unquote(url), *headers.values()]
    if body is not None and len(body) < 1_000_000:
        parts.append(unquote(body.decode("utf-8", "replace")))
    return "\n".join(parts)


def send(attack: Attack, case: Case, http: httpx.Client) -> tuple[httpx.Response, str]:
    if case.custom is not None:
        return case.custom(attack)
    headers = dict(case.headers)
    if case.identity is not None and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {attack.tokens[case.identity]}"
    body: bytes | None = case.content
    if case.json is not None:
        body = orjson.dumps(case.json)
        headers.setdefault("Content-Type", case.content_type or FHIR_JSON)
    elif case.form is not None:
        body = httpx.QueryParams(case.form).__str__().encode()
        headers.setdefault("Content-Type", FORM)
    elif body is not None and case.content_type:
        headers.setdefault("Content-Type", case.content_type)
    response = http.request(case.method, case.path, content=body, headers=headers)
    return response, _request_text(case, case.path, headers, body)


def leaked_markers(response: httpx.Response, sent: str) -> list[str]:
    """B's markers in the answer (body and headers) that the request did not carry."""
    seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return [m for m in B.markers if m in seen and m not in sent]


def _shape_problems(case: Case, response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"server error {response.status_code}")
    if response.headers.get("x-content-type-options") != "nosniff":
        problems.append("no security headers")
    path = case.path if case.custom is None else str(response.request.url.path)
    if response.status_code >= 400 and path.startswith("/fhir"):
        try:
            kind = response.json().get("resourceType")
        except (ValueError, AttributeError):
            kind = None
        if kind != "OperationOutcome":
            problems.append("a FHIR error without an OperationOutcome")
    return problems


def _total(r: httpx.Response) -> int | None:
    """``Bundle.total`` of a searchset answer (None for anything else)."""
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("total") if isinstance(body, dict) else None


def run_case(attack: Attack, case: Case) -> Result:
    with httpx.Client(base_url=attack.base, timeout=120) as http:
        control_status = None
        expected = case.expect
        control = None
        if case.control is not None:
            control, _ = send(attack, case.control, http)
            control_status = expected = control.status_code
        response, sent = send(attack, case, http)
    problems = _shape_problems(case, response)
    if response.status_code != expected:
        problems.append(f"status {response.status_code}, expected {expected}")
    if control is not None and entry_statuses(response) != entry_statuses(control):
        problems.append(
            f"entry statuses {entry_statuses(response)}, expected {entry_statuses(control)}"
        )
    if control is not None and (totals := (_total(response), _total(control)))[1] is not None:
        if totals[0] != totals[1]:
            problems.append(f"total {totals[0]}, expected {totals[1]} (the control's)")
    leaked = [] if case.identity in MAY_SEE_B else leaked_markers(response, sent)
    if leaked:
        problems.append(f"leaked {leaked}")
    if case.check is not None and (why := case.check(response)) is not None:
        problems.append(why)
    if problems:
        problems.append(f"answer: {response.text[:300]}")
    return Result(case, response.status_code, leaked, problems, control_status)


# -- checks -------------------------------------------------------------------------------


def entry_statuses(r: httpx.Response) -> list[str]:
    """The status of each entry of a batch/transaction response (codes only)."""
    try:
        body = r.json()
    except ValueError:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return []
    return [
        str(e.get("response", {}).get("status", "")).split(" ")[0] for e in body.get("entry", [])
    ]


def entries_are(status: str) -> Check:
    def check(r: httpx.Response) -> str | None:
        found = entry_statuses(r)
        return None if found and set(found) == {status} else f"entry statuses {found}"

    return check


def total_is(n: int) -> Check:
    def check(r: httpx.Response) -> str | None:
        total = r.json().get("total") if r.status_code == 200 else None
        return None if total == n else f"total {total}, expected {n}"

    return check


def only_a(r: httpx.Response) -> str | None:
    """A searchset/history answer: every entry is A's (or the server's own records)."""
    if r.status_code != 200:
        return None
    for entry in r.json().get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "OperationOutcome":
            continue
        text = json.dumps(resource)
        if B.patient_id in text:
            return f"{resource.get('resourceType')}/{resource.get('id')} is B's"
    return None


def inactive(r: httpx.Response) -> str | None:
    return None if r.json().get("active") is False else "introspection says active"


def _deep(depth: int) -> bytes:
    return (
        b'{"resourceType":"Patient","extension":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _binary_patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Binary",
        "contentType": PATCH_JSON,
        "data": base64.b64encode(json.dumps(ops).encode()).decode(),
    }


# -- custom (multi-request) cases ----------------------------------------------------------


def _code_replay(attack: Attack) -> tuple[httpx.Response, str]:
    """RFC 6749 4.1.2: a code used twice revokes the tokens issued from it."""
    code, verifier = attack.authorization_code("alice", "launch/patient patient/*.rs")
    first = attack.exchange(code, verifier)
    assert first.status_code == 200, first.text
    again = attack.exchange(code, verifier)
    assert again.status_code == 400, again.text
    token = first.json()["access_token"]
    r = httpx.get(
        f"{attack.fhir}/Patient/{A.patient_id}", headers={"Authorization": f"Bearer {token}"}
    )
    return r, ""


def _wrong_verifier(attack: Attack) -> tuple[httpx.Response, str]:
    code, _verifier = attack.authorization_code("alice", "launch/patient patient/*.rs")
    return attack.exchange(code, "not-the-verifier-" + uuid.uuid4().hex), ""


def _assertion_replay(attack: Attack) -> tuple[httpx.Response, str]:
    signed = attack.assertion("reader")
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    assert httpx.post(attack.token_url, data=form).status_code == 200
    return httpx.post(attack.token_url, data=form), ""


def _assertion_form(attack: Attack, signed: str, scope: str = "system/*.rs") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }


def _assertion_case(**claims: Any) -> Custom:
    def run(attack: Attack) -> tuple[httpx.Response, str]:
        signed = attack.assertion("reader", **claims)
        return httpx.post(attack.token_url, data=_assertion_form(attack, signed)), ""

    return run


def _unsigned_assertion(
    payload: bytes, header: bytes = b'{"alg":"RS384","kid":"attack-key"}'
) -> Custom:
    def run(attack: Attack) -> tuple[httpx.Response, str]:
        signed = f"{_b64(header)}.{_b64(payload)}.{_b64(b'not-a-signature')}"
        return httpx.post(attack.token_url, data=_assertion_form(attack, signed)), ""

    return run


def _other_host_assertion(attack: Attack) -> tuple[httpx.Response, str]:
    """Item 7: a token asked for through another Host must not be issued for it."""
    signed = attack.assertion("reader", aud="http://evil.example/auth/token")
    r = httpx.post(
        attack.token_url,
        data=_assertion_form(attack, signed),
        headers={"Host": "evil.example"},
    )
    return r, ""


def _introspect_b_token(attack: Attack) -> tuple[httpx.Response, str]:
    """Item 6: a confidential client may not introspect another client's tokens."""
    form = {
        "token": attack.tokens["B"],
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": attack.assertion("reader"),  # aud: the token endpoint
    }
    return httpx.post(f"{attack.base}/auth/introspect", data=form), form["token"]


def _body_then_healthy(path: str, chunked: bool) -> Custom:
    """17 MB to an endpoint: a 413 before it is buffered, and the server keeps serving."""

    def run(attack: Attack) -> tuple[httpx.Response, str]:
        blob = b"a=" + b"x" * MB17
        headers = {"Content-Type": FORM if path.startswith("/auth") else FHIR_JSON}
        if path.startswith("/fhir"):
            headers["Authorization"] = f"Bearer {attack.tokens['payer']}"
        with httpx.Client(base_url=attack.base, timeout=120) as http:
            if chunked:

                def chunks() -> Any:
                    for i in range(0, len(blob), 1 << 16):
                        yield blob[i : i + (1 << 16)]

                try:
                    r = http.post(path, content=chunks(), headers=headers)
                except httpx.TransportError as exc:
                    raise AssertionError(f"connection broken instead of a 413: {exc}") from exc
            else:
                try:
                    r = http.post(path, content=blob, headers=headers)
                except httpx.TransportError as exc:
                    raise AssertionError(f"connection broken instead of a 413: {exc}") from exc
            after = http.get("/healthz")
            assert after.status_code == 200, "the server stopped answering after the 413"
        return r, ""

    return run


def _audit_after(
    attack: Attack, first: httpx.Response, needle: str, what: str
) -> tuple[httpx.Response, str]:
    """The newest audit events (read by the auditor) must not contain ``needle``."""
    events = httpx.get(
        f"{attack.fhir}/AuditEvent/_history?_count=20",
        headers={"Authorization": f"Bearer {attack.tokens['payer']}"},
    )
    assert events.status_code == 200, events.text
    if needle in events.text:
        raise AssertionError(f"the audit trail recorded {what}")
    return first, ""


def _export(attack: Attack) -> tuple[httpx.Response, str]:
    """Patient A's own $export: every file holds A's data only (the files are the
    answer whose bytes are checked)."""
    auth = {"Authorization": f"Bearer {attack.tokens['A']}"}
    kickoff = httpx.get(
        f"{attack.fhir}/Patient/$export", headers={**auth, "Prefer": "respond-async"}
    )
    assert kickoff.status_code == 202, kickoff.text
    status_url = kickoff.headers["content-location"]
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(status_url, headers=auth)
        if status.status_code == 200:
            break
        assert status.status_code in (202, 429), status.text
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(min(float(status.headers.get("retry-after", "1")), 1.0))
    texts = [httpx.get(item["url"], headers=auth).text for item in status.json().get("output", [])]
    assert texts, "the export of A's compartment is empty"
    files = httpx.Response(200, text="\n".join(texts), headers=status.headers)
    files.request = status.request
    return files, ""


def _forwarded_for(attack: Attack) -> tuple[httpx.Response, str]:
    forged = "203.0.113.66"
    r = httpx.get(
        f"{attack.fhir}/Patient/{A.patient_id}",
        headers={
            "Authorization": f"Bearer {attack.tokens['A']}",
            "X-Forwarded-For": forged,
        },
    )
    return _audit_after(attack, r, forged, "a client-chosen X-Forwarded-For address")


def _provenance_delete(attack: Attack) -> tuple[httpx.Response, str]:
    """Provenance is read-only through the API, like AuditEvent."""
    headers = {"Authorization": f"Bearer {attack.tokens['payer']}"}
    found = httpx.get(f"{attack.fhir}/Provenance?_count=1", headers=headers).json()
    rid = found["entry"][0]["resource"]["id"]
    return httpx.delete(f"{attack.fhir}/Provenance/{rid}", headers=headers), ""


# -- the table ------------------------------------------------------------------------------

_PATIENT_PARAM = {
    "Encounter": "subject",
    "Condition": "subject",
    "Procedure": "subject",
    "Observation": "subject",
    "Coverage": "beneficiary",
    "Claim": "patient",
}


def _a_version_of_b(rtype: str) -> dict[str, Any]:
    """B's resource rewritten to point at A (what A would PUT over B's id)."""
    body = next(r for r in resources_of(A) if r["resourceType"] == rtype)
    return {**body, "id": B.rid(rtype)}


def _read_cases() -> list[Case]:
    cases: list[Case] = []
    for i, rtype in enumerate(RESOURCE_TYPES):
        rid = B.rid(rtype)
        base = f"/fhir/{rtype}/{rid}"
        mongo = i % 2 == 0
        cases += [
            Case(f"read/{rtype}-read", "GET", base, 404, mongo=mongo),
            Case(f"read/{rtype}-read-with-read-scope", "GET", base, 404, identity="A-read"),
            Case(f"read/{rtype}-vread", "GET", f"{base}/_history/1", 404, mongo=mongo),
            Case(f"read/{rtype}-history", "GET", f"{base}/_history", 404),
            Case(
                f"read/{rtype}-if-none-match",
                "GET",
                base,
                404,
                headers={"If-None-Match": 'W/"1"'},
            ),
            Case(f"read/{rtype}-summary", "GET", f"{base}?_summary=true", 404),
            Case(f"read/{rtype}-as-b-control", "GET", base, 200, identity="B"),
            Case(f"read/{rtype}-no-token", "GET", base, 401, identity=None),
            Case(f"read/{rtype}-vread-no-token", "GET", f"{base}/_history/1", 401, identity=None),
            Case(
                f"read/{rtype}-with-claims-only-scope",
                "GET",
                base,
                404 if rtype == "Claim" else 403,
                identity="A-claims",
            ),
            Case(
                f"read/{rtype}-if-modified-since",
                "GET",
                base,
                404,
                headers={"If-Modified-Since": "Thu, 01 Jan 2000 00:00:00 GMT"},
            ),
            Case(f"read/{rtype}-pretty", "GET", f"{base}?_pretty=true&_format=json", 404),
        ]
    # The deleted one reads as missing, not as gone (410 would say it existed).
    cases.append(
        Case(
            "read/b-deleted-observation", "GET", "/fhir/Observation/observation-bravo-deleted", 404
        )
    )
    cases.append(
        Case(
            "read/b-deleted-observation-history",
            "GET",
            "/fhir/Observation/observation-bravo-deleted/_history",
            404,
        )
    )
    return cases


def _search_cases() -> list[Case]:
    cases: list[Case] = []
    for i, rtype in enumerate(RESOURCE_TYPES):
        mongo = i % 3 == 0
        rid = B.rid(rtype)
        cases += [
            Case(
                f"search/{rtype}-by-id",
                "GET",
                f"/fhir/{rtype}?_id={rid}",
                200,
                check=total_is(0),
                mongo=mongo,
            ),
            Case(
                f"search/{rtype}-count",
                "GET",
                f"/fhir/{rtype}?_summary=count",
                200,
                check=total_is(1),
                mongo=mongo,
            ),
            Case(
                f"search/{rtype}-all",
                "GET",
                f"/fhir/{rtype}?_total=accurate",
                200,
                check=total_is(1),
            ),
            Case(
                f"search/{rtype}-post-by-id",
                "POST",
                f"/fhir/{rtype}/_search",
                200,
                form={"_id": rid},
                check=total_is(0),
            ),
            Case(f"search/{rtype}-history", "GET", f"/fhir/{rtype}/_history", 200, check=only_a),
            Case(
                f"search/{rtype}-revinclude-all",
                "GET",
                f"/fhir/{rtype}?_revinclude=*",
                200,
                check=only_a,
            ),
            Case(
                f"search/{rtype}-include-all", "GET", f"/fhir/{rtype}?_include=*", 200, check=only_a
            ),
            Case(
                f"search/{rtype}-elements",
                "GET",
                f"/fhir/{rtype}?_elements=id&_id={rid}",
                200,
                check=total_is(0),
            ),
            Case(
                f"search/{rtype}-revinclude-provenance",
                "GET",
                f"/fhir/{rtype}?_revinclude=Provenance:target",
                200,
                check=only_a,
            ),
            Case(
                f"search/{rtype}-last-updated",
                "GET",
                f"/fhir/{rtype}?_lastUpdated=gt2000-01-01&_sort=-_lastUpdated",
                200,
                check=total_is(1),
            ),
            Case(
                f"search/{rtype}-missing-id",
                "GET",
                f"/fhir/{rtype}?_id:missing=false",
                200,
                check=only_a,
            ),
        ]
        if rtype in _PATIENT_PARAM:
            param = _PATIENT_PARAM[rtype]
            cases += [
                Case(
                    f"search/{rtype}-by-b",
                    "GET",
                    f"/fhir/{rtype}?{param}=Patient/{B.patient_id}",
                    200,
                    check=total_is(0),
                    mongo=mongo,
                ),
                Case(
                    f"search/{rtype}-by-b-id-only",
                    "GET",
                    f"/fhir/{rtype}?{param}={B.patient_id}",
                    200,
                    check=total_is(0),
                ),
                Case(
                    f"search/{rtype}-chain-name",
                    "GET",
                    f"/fhir/{rtype}?{param}.name={B.family}",
                    200,
                    check=total_is(0),
                ),
                Case(
                    f"search/{rtype}-chain-identifier",
                    "GET",
                    f"/fhir/{rtype}?{param}.identifier={SSN_SYSTEM}|{B.ssn}",
                    200,
                    check=total_is(0),
                ),
                Case(
                    f"search/{rtype}-include-patient",
                    "GET",
                    f"/fhir/{rtype}?_include={rtype}:{param}",
                    200,
                    check=only_a,
                ),
                Case(
                    f"search/{rtype}-compartment-of-b",
                    "GET",
                    f"/fhir/Patient/{B.patient_id}/{rtype}",
                    200,
                    check=total_is(0),
                ),
                Case(
                    f"search/Patient-has-{rtype}",
                    "GET",
                    f"/fhir/Patient?_has:{rtype}:{param}:_id={rid}",
                    200,
                    check=total_is(0),
                ),
            ]
    cases += [
        Case(
            "search/patient-by-ssn",
            "GET",
            f"/fhir/Patient?identifier={SSN_SYSTEM}|{B.ssn}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "search/patient-by-ssn-value",
            "GET",
            f"/fhir/Patient?identifier={B.ssn}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/patient-by-family",
            "GET",
            f"/fhir/Patient?family={B.family}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "search/patient-by-name-contains",
            "GET",
            f"/fhir/Patient?name:contains={B.family[:6]}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/patient-by-given-exact",
            "GET",
            f"/fhir/Patient?given:exact={B.given}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/patient-by-birthdate",
            "GET",
            "/fhir/Patient?birthdate=1985-06-15",
            200,
            check=total_is(0),
        ),
        Case(
            "search/patient-by-gender", "GET", "/fhir/Patient?gender=male", 200, check=total_is(0)
        ),
        Case(
            "search/patient-sorted",
            "GET",
            "/fhir/Patient?_sort=-birthdate,family",
            200,
            check=total_is(1),
        ),
        Case(
            "search/condition-by-code",
            "GET",
            f"/fhir/Condition?code={B.icd10}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "search/condition-by-code-text",
            "GET",
            f"/fhir/Condition?code:text={B.condition_text}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/condition-not-a-code",
            "GET",
            f"/fhir/Condition?code:not={A.icd10}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/claim-by-identifier",
            "GET",
            f"/fhir/Claim?identifier={CLAIM_SYSTEM}|{B.claim_identifier}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "search/claim-chain-coverage",
            "GET",
            "/fhir/Claim?insurer:missing=true&patient:Patient.gender=male",
            200,
            check=total_is(0),
        ),
        Case(
            "search/claim-include-coverage-iterate",
            "GET",
            "/fhir/Claim?_include=Claim:patient&_include:iterate=Patient:link&_revinclude:iterate=Condition:subject",
            200,
            check=only_a,
        ),
        Case(
            "search/encounter-revinclude-condition",
            "GET",
            "/fhir/Encounter?_revinclude=Condition:encounter",
            200,
            check=only_a,
            mongo=True,
        ),
        Case(
            "search/patient-revinclude-provenance",
            "GET",
            "/fhir/Patient?_revinclude=Provenance:target",
            200,
            check=only_a,
        ),
        Case(
            "search/patient-has-condition-code",
            "GET",
            f"/fhir/Patient?_has:Condition:subject:code={B.icd10}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "search/patient-has-claim-identifier",
            "GET",
            f"/fhir/Patient?_has:Claim:patient:identifier={B.claim_identifier}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/encounter-chain-two-levels",
            "GET",
            f"/fhir/Condition?encounter.subject.name={B.family}",
            200,
            check=total_is(0),
        ),
        Case(
            "search/compartment-everything-of-b",
            "GET",
            f"/fhir/Patient/{B.patient_id}/Encounter?_revinclude=*",
            200,
            check=total_is(0),
        ),
        Case(
            "search/patient-last-updated",
            "GET",
            "/fhir/Patient?_lastUpdated=gt2000-01-01",
            200,
            check=total_is(1),
        ),
        Case("search/paging-count-1", "GET", "/fhir/Observation?_count=1", 200, check=only_a),
        Case("search/summary-text", "GET", "/fhir/Patient?_summary=text", 200, check=only_a),
        Case(
            "search/history-all", "GET", "/fhir/_history?_count=200", 200, check=only_a, mongo=True
        ),
        Case("search/history-since", "GET", "/fhir/_history?_since=2000-01-01", 200, check=only_a),
        Case(
            "search/claim-with-claims-only-scope",
            "GET",
            "/fhir/Claim",
            200,
            identity="A-claims",
            check=total_is(1),
        ),
    ]
    return cases


def _system_cases() -> list[Case]:
    return [
        Case(
            "system/type-patient-id",
            "GET",
            f"/fhir?_type=Patient&_id={B.patient_id}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "system/type-patient-identifier",
            "GET",
            f"/fhir?_type=Patient&identifier={B.ssn}",
            200,
            check=total_is(0),
        ),
        Case(
            "system/summary-count-patient-condition",
            "GET",
            "/fhir?_type=Patient,Condition&_summary=count",
            200,
            check=total_is(2),
        ),
        Case(
            "system/no-type-id",
            "GET",
            f"/fhir?_id={B.rid('Claim')}",
            200,
            check=total_is(0),
            mongo=True,
        ),
        Case(
            "system/internal-records",
            "GET",
            "/fhir?_summary=count",
            200,
            # A's resources and the Provenance of its Patient (in the compartment by target)
            check=total_is(len(RESOURCE_TYPES) + 1),
        ),
        Case(
            "system/two-types-id-count",
            "GET",
            f"/fhir?_type=Patient,Claim&_id={B.patient_id}&_summary=count",
            200,
            check=total_is(0),
        ),
        Case(
            "system/no-type-id-count",
            "GET",
            f"/fhir?_id={B.rid('Claim')}&_summary=count",
            200,
            check=total_is(0),
            mongo=True,
        ),
        # ``identifier`` is not a parameter of every type, so a system search ignores it
        # (with a warning): B's SSN must change nothing against a value nobody has.
        _differential(
            "system/no-type-identifier-count",
            Case("probe", "GET", f"/fhir?identifier={B.ssn}&_summary=count", 200),
            {B.ssn: "000-00-0000"},
        ),
        Case(
            "system/internal-client-by-id",
            "GET",
            "/fhir?_id=payer&_summary=count",
            200,
            check=total_is(0),
        ),
        Case(
            "system/post-search-by-id",
            "POST",
            "/fhir/_search",
            200,
            form={"_type": "Patient", "_id": A.patient_id},
            check=total_is(1),
        ),
    ]


def _write_cases() -> list[Case]:
    cases: list[Case] = []
    for i, rtype in enumerate(RESOURCE_TYPES):
        rid = B.rid(rtype)
        base = f"/fhir/{rtype}/{rid}"
        mongo = i % 3 == 1
        patch = [{"op": "replace", "path": "/id", "value": rid}]
        cases += [
            Case(
                f"write/{rtype}-put-over-b",
                "PUT",
                base,
                404,
                json=_a_version_of_b(rtype),
                mutates=True,
                mongo=mongo,
            ),
            Case(
                f"write/{rtype}-put-if-match",
                "PUT",
                base,
                404,
                json=_a_version_of_b(rtype),
                headers={"If-Match": 'W/"1"'},
                mutates=True,
            ),
            Case(
                f"write/{rtype}-patch",
                "PATCH",
                base,
                404,
                json=patch,
                content_type=PATCH_JSON,
                mutates=True,
                mongo=mongo,
            ),
            Case(f"write/{rtype}-delete", "DELETE", base, 404, mutates=True, mongo=mongo),
            Case(
                f"write/{rtype}-delete-if-match",
                "DELETE",
                base,
                404,
                headers={"If-Match": 'W/"1"'},
                mutates=True,
            ),
            Case(
                f"write/{rtype}-read-scope-cannot-write",
                "PUT",
                base,
                403,
                identity="A-read",
                json=_a_version_of_b(rtype),
                mutates=True,
            ),
        ]
        if rtype in _PATIENT_PARAM:
            param = _PATIENT_PARAM[rtype]
            own = next(r for r in resources_of(A) if r["resourceType"] == rtype)
            moved = json.loads(json.dumps(own))
            moved.pop("id")
            target: Any = moved
            if rtype == "Coverage":
                moved["beneficiary"] = {"reference": f"Patient/{B.patient_id}"}
            else:
                moved[param] = {"reference": f"Patient/{B.patient_id}"}
            cases += [
                Case(
                    f"write/{rtype}-create-for-b",
                    "POST",
                    f"/fhir/{rtype}",
                    403,
                    json=target,
                    mutates=True,
                ),
                Case(
                    f"write/{rtype}-move-own-to-b",
                    "PUT",
                    f"/fhir/{rtype}/{own['id']}",
                    403,
                    json={**target, "id": own["id"]},
                    mutates=True,
                ),
                Case(
                    f"write/{rtype}-patch-own-to-b",
                    "PATCH",
                    f"/fhir/{rtype}/{own['id']}",
                    403,
                    json=[
                        {
                            "op": "replace",
                            "path": f"/{'beneficiary' if rtype == 'Coverage' else param}",
                            "value": {"reference": f"Patient/{B.patient_id}"},
                        }
                    ],
                    content_type=PATCH_JSON,
                    mutates=True,
                ),
            ]
    own_patient = resources_of(A)[0]
    procedure = {
        **resources_of(A)[3],
        "performer": [{"actor": {"reference": f"Patient/{B.patient_id}"}}],
    }
    procedure.pop("id")
    deleted = {**resources_of(A)[4], "id": "observation-bravo-deleted"}
    cases += [
        Case(
            "write/create-patient-claiming-own-id",
            "POST",
            "/fhir/Patient",
            403,
            json=own_patient,
            mutates=True,
        ),
        Case(
            "write/create-procedure-performed-by-b",
            "POST",
            "/fhir/Procedure",
            403,
            json=procedure,
            mutates=True,
            mongo=True,
        ),
        Case(
            "write/recreate-b-deleted-observation",
            "PUT",
            "/fhir/Observation/observation-bravo-deleted",
            404,
            json=deleted,
            mutates=True,
        ),
        Case(
            "write/generate-claim-for-b",
            "POST",
            f"/fhir/Encounter/{B.rid('Encounter')}/$generate-claim",
            404,
            mutates=True,
            mongo=True,
        ),
        Case(
            "write/submit-b-claim-by-reference",
            "POST",
            "/fhir/Claim/$submit",
            404,
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "claim", "valueReference": {"reference": f"Claim/{B.rid('Claim')}"}}
                ],
            },
            mutates=True,
        ),
        Case(
            "write/eligibility-for-b",
            "POST",
            "/fhir/CoverageEligibilityRequest/$submit",
            403,
            json={
                "resourceType": "CoverageEligibilityRequest",
                "status": "active",
                "purpose": ["validation"],
                "patient": {"reference": f"Patient/{B.patient_id}"},
                "created": "2026-10-02",
                "insurer": {"reference": "Organization/payer-org-1"},
                "insurance": [{"coverage": {"reference": f"Coverage/{B.rid('Coverage')}"}}],
            },
            mutates=True,
        ),
    ]
    return cases


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def _bundle_cases() -> list[Case]:
    reads = [_get(f"{t}/{B.rid(t)}") for t in RESOURCE_TYPES]
    searches = [
        _get(f"Condition?subject=Patient/{B.patient_id}"),
        _get(f"Patient?identifier={B.ssn}"),
    ]
    return [
        Case(
            "bundle/batch-reads-of-b",
            "POST",
            "/fhir",
            200,
            json=_bundle("batch", *reads),
            check=entries_are("404"),
            mongo=True,
        ),
        Case("bundle/batch-searches-of-b", "POST", "/fhir", 200, json=_bundle("batch", *searches)),
        Case(
            "bundle/batch-vreads-of-b",
            "POST",
            "/fhir",
            200,
            json=_bundle(
                "batch",
                _get(f"Patient/{B.patient_id}/_history/1"),
                _get(f"Claim/{B.rid('Claim')}/_history/1"),
            ),
            check=entries_are("404"),
        ),
        Case(
            "bundle/transaction-read-of-b",
            "POST",
            "/fhir",
            404,
            json=_bundle("transaction", _get(f"Claim/{B.rid('Claim')}")),
        ),
        Case(
            "bundle/transaction-put-over-b",
            "POST",
            "/fhir",
            404,
            json=_bundle(
                "transaction",
                {
                    "resource": _a_version_of_b("Condition"),
                    "request": {"method": "PUT", "url": f"Condition/{B.rid('Condition')}"},
                },
            ),
            mutates=True,
            mongo=True,
        ),
        Case(
            "bundle/transaction-delete-b",
            "POST",
            "/fhir",
            404,
            json=_bundle(
                "transaction", {"request": {"method": "DELETE", "url": f"Claim/{B.rid('Claim')}"}}
            ),
            mutates=True,
        ),
        Case(
            "bundle/transaction-patch-b",
            "POST",
            "/fhir",
            404,
            json=_bundle(
                "transaction",
                {
                    "resource": _binary_patch(
                        [{"op": "replace", "path": "/status", "value": "cancelled"}]
                    ),
                    "request": {"method": "PATCH", "url": f"Claim/{B.rid('Claim')}"},
                },
            ),
            mutates=True,
        ),
        Case(
            "bundle/transaction-create-for-b",
            "POST",
            "/fhir",
            403,
            json=_bundle(
                "transaction",
                {
                    "resource": {
                        **resources_of(A)[2],
                        "id": None,
                        "subject": {"reference": f"Patient/{B.patient_id}"},
                    },
                    "request": {"method": "POST", "url": "Condition"},
                },
            ),
            mutates=True,
        ),
    ]


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _differential(name: str, probe: Case, swap: dict[str, str], mongo: bool = False) -> Case:
    """``probe`` must answer like the same request naming values nobody has."""
    fresh = uuid.uuid4().hex[:8]

    def swapped(text: str) -> str:
        for old, new in swap.items():
            text = text.replace(old, f"{new}-{fresh}")
        return text

    control = replace(
        probe,
        name=f"{name}-control",
        path=swapped(probe.path),
        headers={k: swapped(v) for k, v in probe.headers.items()},
        json=json.loads(swapped(json.dumps(probe.json))) if probe.json is not None else None,
    )
    return replace(probe, name=name, expect=None, control=control, mutates=True, mongo=mongo)


def _conditional_cases() -> list[Case]:
    own_patient = resources_of(A)[0]
    condition = {k: v for k, v in resources_of(A)[2].items() if k != "id"}
    ssn = {B.ssn: "000-00-0000", f"{SSN_SYSTEM}|": f"{SSN_SYSTEM}|"}
    code = {B.icd10: "Z99.99"}
    ref_by_ssn = {**condition, "subject": {"reference": f"Patient?identifier={SSN_SYSTEM}|{B.ssn}"}}
    return [
        _differential(
            "conditional/create-patient-if-none-exist-ssn",
            Case(
                "",
                "POST",
                "/fhir/Patient",
                None,
                json=own_patient,
                headers={"If-None-Exist": f"identifier={SSN_SYSTEM}|{B.ssn}"},
            ),
            ssn,
            mongo=True,
        ),
        _differential(
            "conditional/create-condition-if-none-exist-code",
            Case(
                "",
                "POST",
                "/fhir/Condition",
                None,
                json=condition,
                headers={"If-None-Exist": f"code={B.icd10}"},
            ),
            code,
        ),
        _differential(
            "conditional/update-condition-by-code",
            Case("", "PUT", f"/fhir/Condition?code={B.icd10}", None, json=condition),
            code,
            mongo=True,
        ),
        _differential(
            "conditional/delete-condition-by-code",
            Case("", "DELETE", f"/fhir/Condition?code={B.icd10}", None),
            code,
        ),
        _differential(
            "conditional/delete-patient-by-ssn",
            Case("", "DELETE", f"/fhir/Patient?identifier={B.ssn}", None),
            ssn,
        ),
        _differential(
            "conditional/transaction-reference-by-ssn",
            Case(
                "",
                "POST",
                "/fhir",
                None,
                json=_bundle(
                    "transaction",
                    {
                        "fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                        "resource": ref_by_ssn,
                        "request": {"method": "POST", "url": "Condition"},
                    },
                ),
            ),
            ssn,
            mongo=True,
        ),
        _differential(
            "conditional/batch-if-none-exist-code",
            Case(
                "",
                "POST",
                "/fhir",
                None,
                json=_bundle(
                    "batch",
                    {
                        "resource": condition,
                        "request": {
                            "method": "POST",
                            "url": "Condition",
                            "ifNoneExist": f"code={B.icd10}",
                        },
                    },
                ),
            ),
            code,
        ),
        _differential(
            "conditional/transaction-update-by-code",
            Case(
                "",
                "POST",
                "/fhir",
                None,
                json=_bundle(
                    "transaction",
                    {
                        "resource": condition,
                        "request": {"method": "PUT", "url": f"Condition?code={B.icd10}"},
                    },
                ),
            ),
            code,
        ),
    ]


def _scope_cases() -> list[Case]:
    return [
        Case(
            "scope/claims-token-reads-coverage",
            "GET",
            f"/fhir/Coverage/{A.rid('Coverage')}",
            403,
            identity="A-claims",
            mongo=True,
        ),
        Case(
            "scope/claims-token-searches-patient", "GET", "/fhir/Patient", 403, identity="A-claims"
        ),
        Case(
            "scope/read-token-creates",
            "POST",
            "/fhir/Claim",
            403,
            identity="A-read",
            json={k: v for k, v in resources_of(A)[6].items() if k != "id"},
        ),
        Case(
            "scope/read-token-deletes-own",
            "DELETE",
            f"/fhir/Claim/{A.rid('Claim')}",
            403,
            identity="A-read",
        ),
        Case("scope/patient-reads-audit", "GET", "/fhir/AuditEvent", 403, mongo=True),
        Case("scope/patient-reads-audit-history", "GET", "/fhir/AuditEvent/_history", 403),
        Case(
            "scope/reader-backend-cannot-write",
            "PUT",
            f"/fhir/Patient/{A.patient_id}",
            403,
            identity="reader",
            json=resources_of(A)[0],
        ),
        Case(
            "scope/claims-backend-reads-patient",
            "GET",
            f"/fhir/Patient/{B.patient_id}",
            403,
            identity="claims-only",
        ),
        Case("scope/reader-reads-audit", "GET", "/fhir/AuditEvent", 403, identity="reader"),
        Case(
            "scope/auditevent-cannot-be-written",
            "POST",
            "/fhir/AuditEvent",
            403,
            identity="payer",
            json={
                "resourceType": "AuditEvent",
                "type": {"code": "rest"},
                "recorded": "2026-01-01T00:00:00Z",
                "agent": [{"requestor": True}],
                "source": {"observer": {"display": "x"}},
            },
        ),
        Case("scope/patient-export-own-data", "GET", "/fhir/Patient/$export", 200, custom=_export),
        Case(
            "scope/patient-export-group-of-nobody",
            "GET",
            "/fhir/Group/group-bravo-1/$export",
            404,
            headers={"Prefer": "respond-async"},
        ),
        Case(
            "scope/export-status-of-nobody",
            "GET",
            "/fhir/$export-status/0f0f0f0f",
            404,
            identity="payer",
        ),
        Case(
            "scope/export-file-of-nobody",
            "GET",
            "/fhir/$export-file/0f0f0f0f/Patient-1.ndjson",
            404,
            identity="payer",
        ),
        Case(
            "scope/everything-not-offered", "GET", f"/fhir/Patient/{B.patient_id}/$everything", 404
        ),
    ]


def _forged_tokens() -> list[tuple[str, str]]:
    header = _b64(b'{"alg":"none","typ":"JWT"}')
    claims = _b64(
        json.dumps(
            {
                "sub": "x",
                "patient": B.patient_id,
                "scope": "system/*.rs",
                "exp": int(time.time()) + 3600,
            }
        ).encode()
    )
    hs = _b64(b'{"alg":"HS256","typ":"JWT"}')
    return [
        ("garbage", "not-a-token"),
        ("alg-none", f"{header}.{claims}."),
        ("hs256", f"{hs}.{claims}.{_b64(b'signed-with-a-guess')}"),
        ("header-array", f"{_b64(b'[1]')}.{claims}.{_b64(b'sig')}"),
        ("payload-string", ".".join((_b64(b'{"alg":"RS256"}'), _b64(b'"str"'), _b64(b"sig")))),
        ("empty", ""),
    ]


def _token_cases() -> list[Case]:
    cases = [
        Case(
            "token/no-token", "GET", f"/fhir/Patient/{A.patient_id}", 401, identity=None, mongo=True
        ),
        Case("token/in-query-string", "GET", "/fhir/Patient?access_token=x", 401, identity=None),
        Case(
            "token/basic-auth",
            "GET",
            "/fhir/Patient",
            401,
            identity=None,
            headers={"Authorization": "Basic cGF5ZXI6cGF5ZXI="},
        ),
    ]
    for label, token in _forged_tokens():
        cases.append(
            Case(
                f"token/forged-{label}",
                "GET",
                f"/fhir/Patient/{B.patient_id}",
                401,
                identity=None,
                headers={"Authorization": f"Bearer {token}".strip()},
            )
        )
    cases += [
        Case(
            "token/assertion-replayed-jti",
            "POST",
            "/auth/token",
            401,
            custom=_assertion_replay,
            mongo=True,
        ),
        Case(
            "token/assertion-wrong-audience",
            "POST",
            "/auth/token",
            401,
            custom=_assertion_case(aud="http://127.0.0.1:9/auth/token"),
        ),
        Case(
            "token/assertion-expired",
            "POST",
            "/auth/token",
            401,
            custom=_assertion_case(exp=int(time.time()) - 60),
        ),
        Case(
            "token/assertion-too-long-lived",
            "POST",
            "/auth/token",
            401,
            custom=_assertion_case(exp=int(time.time()) + 3600),
        ),
        Case(
            "token/assertion-bad-signature",
            "POST",
            "/auth/token",
            401,
            custom=_unsigned_assertion(b'{"iss":"reader","sub":"reader"}'),
        ),
        Case(
            "token/assertion-payload-array",
            "POST",
            "/auth/token",
            401,
            custom=_unsigned_assertion(b"[1,2]"),
            mongo=True,
        ),
        Case(
            "token/assertion-payload-string",
            "POST",
            "/auth/token",
            401,
            custom=_unsigned_assertion(b'"reader"'),
        ),
        Case(
            "token/assertion-header-array",
            "POST",
            "/auth/token",
            401,
            custom=_unsigned_assertion(b"{}", b"[1]"),
        ),
        Case(
            "token/assertion-alg-hs256",
            "POST",
            "/auth/token",
            401,
            custom=_unsigned_assertion(b'{"iss":"reader","sub":"reader"}', b'{"alg":"HS256"}'),
        ),
        Case(
            "token/unknown-grant",
            "POST",
            "/auth/token",
            400,
            identity=None,
            form={"grant_type": "password", "username": "alice", "password": "x"},
        ),
        Case(
            "token/garbage-code",
            "POST",
            "/auth/token",
            400,
            identity=None,
            form={
                "grant_type": "authorization_code",
                "code": "nope",
                "client_id": "attack-app",
                "redirect_uri": "http://127.0.0.1:9/callback",
                "code_verifier": "x" * 43,
            },
        ),
        Case(
            "token/garbage-refresh",
            "POST",
            "/auth/token",
            400,
            identity=None,
            form={
                "grant_type": "refresh_token",
                "refresh_token": "nope",
                "client_id": "attack-app",
            },
        ),
        Case(
            "token/pkce-wrong-verifier",
            "POST",
            "/auth/token",
            400,
            custom=_wrong_verifier,
            mongo=True,
        ),
        Case(
            "token/authorize-unknown-client",
            "GET",
            "/auth/authorize?response_type=code&client_id=nobody&redirect_uri=http://127.0.0.1:9/callback",
            400,
            identity=None,
        ),
        Case(
            "token/authorize-foreign-redirect",
            "GET",
            "/auth/authorize?response_type=code&client_id=attack-app&redirect_uri=http://evil.example/cb",
            400,
            identity=None,
        ),
        Case(
            "token/login-forged-request",
            "POST",
            "/auth/login",
            400,
            identity=None,
            form={"username": "alice", "password": "attack-table-password", "request": "forged"},
        ),
        Case(
            "token/pick-forged-session",
            "POST",
            "/auth/pick",
            400,
            identity=None,
            form={"request": "forged", "session": "forged", "patient": B.patient_id},
        ),
        Case(
            "token/assertion-for-another-host",
            "POST",
            "/auth/token",
            401,
            custom=_other_host_assertion,
        ),
        Case(
            "token/introspect-b-token-as-reader",
            "POST",
            "/auth/introspect",
            200,
            custom=_introspect_b_token,
            check=inactive,
            mongo=True,
        ),
        Case("token/code-replay-revokes-tokens", "GET", "/fhir/Patient", 401, custom=_code_replay),
    ]
    return cases


def _input_cases() -> list[Case]:
    patient = resources_of(A)[0]
    big_names = {"resourceType": "Patient", "name": [{"family": f"F{i}"} for i in range(60_000)]}
    terms = "&".join(f"name=n{i}" for i in range(1000))
    values = ",".join(f"n{i}" for i in range(1000))
    long_id = "a" * 65
    cases = [
        Case(
            f"input/json-depth-{d}",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            content=_deep(d),
            content_type=FHIR_JSON,
            mongo=d in (256, 1100),
        )
        for d in (200, 254, 256, 300, 1000, 1100)
    ]
    cases += [
        Case(
            f"input/scalar-body-{label}-{kind}",
            method,
            path,
            400,
            identity="payer",
            content=body,
            content_type=PATCH_JSON if method == "PATCH" else FHIR_JSON,
            mongo=label == "null" and kind == "create",
        )
        for label, body in (("number", b"5"), ("null", b"null"))
        for kind, method, path in (
            ("create", "POST", "/fhir/Patient"),
            ("bundle", "POST", "/fhir"),
            ("patch", "PATCH", f"/fhir/Patient/{A.patient_id}"),
            ("submit", "POST", "/fhir/Claim/$submit"),
        )
    ]
    cases += [
        Case(
            "input/json-depth-in-transaction",
            "POST",
            "/fhir",
            400,
            identity="payer",
            content=b'{"resourceType":"Bundle","type":"transaction","entry":[{"resource":'
            + _deep(300)
            + b',"request":{"method":"POST","url":"Patient"}}]}',
            content_type=FHIR_JSON,
        ),
        Case(
            "input/vread-huge-version",
            "GET",
            f"/fhir/Patient/{A.patient_id}/_history/{'9' * 30}",
            404,
            mongo=True,
        ),
        Case("input/vread-2-63", "GET", f"/fhir/Patient/{A.patient_id}/_history/{2**63}", 404),
        Case(
            "input/if-match-huge-version",
            "PUT",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json=patient,
            headers={"If-Match": f'W/"{"9" * 30}"'},
            mongo=True,
        ),
        Case(
            "input/if-match-garbage",
            "DELETE",
            f"/fhir/Claim/{A.rid('Claim')}",
            400,
            headers={"If-Match": "yesterday"},
        ),
        Case(
            "input/history-huge-count",
            "GET",
            f"/fhir/Patient/{A.patient_id}/_history?_count={'9' * 30}",
            200,
        ),
        Case("input/history-bad-since", "GET", "/fhir/_history?_since=yesterday", 400),
        Case("input/history-bad-cursor", "GET", "/fhir/_history?_cursor=garbage", 400),
        Case(
            "input/batch-vread-huge-version",
            "POST",
            "/fhir",
            400,
            identity="payer",
            json=_bundle("batch", _get(f"Patient/{A.patient_id}/_history/{'9' * 30}")),
        ),
        Case(
            "input/patch-path-not-pointer",
            "PATCH",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json=[{"op": "replace", "path": "gender", "value": "other"}],
            content_type=PATCH_JSON,
            mongo=True,
        ),
        Case(
            "input/patch-from-not-pointer",
            "PATCH",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json=[{"op": "move", "from": "name", "path": "/x"}],
            content_type=PATCH_JSON,
        ),
        Case(
            "input/patch-path-number",
            "PATCH",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json=[{"op": "add", "path": 5, "value": 1}],
            content_type=PATCH_JSON,
        ),
        Case(
            "input/patch-not-array",
            "PATCH",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json={"op": "add"},
            content_type=PATCH_JSON,
        ),
        Case(
            "input/patch-unknown-op",
            "PATCH",
            f"/fhir/Patient/{A.patient_id}",
            400,
            json=[{"op": "explode", "path": "/x"}],
            content_type=PATCH_JSON,
        ),
        Case(
            "input/claim-submit-parameter-string",
            "POST",
            "/fhir/Claim/$submit",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": ["claim"]},
            mongo=True,
        ),
        Case(
            "input/claim-submit-parameter-number",
            "POST",
            "/fhir/Claim/$submit",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": 5},
        ),
        Case(
            "input/claim-submit-reference-string",
            "POST",
            "/fhir/Claim/$submit",
            400,
            identity="payer",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "claim", "valueReference": "Claim/x"}],
            },
        ),
        Case(
            "input/claim-submit-bundle-entry-string",
            "POST",
            "/fhir/Claim/$submit",
            400,
            identity="payer",
            json={"resourceType": "Bundle", "type": "collection", "entry": ["x"]},
        ),
        Case(
            "input/claim-submit-identifier-string",
            "POST",
            "/fhir/Claim/$submit",
            400,
            identity="payer",
            json={**resources_of(A)[6], "id": None, "identifier": ["x"]},
        ),
        Case(
            "input/eligibility-parameter-string",
            "POST",
            "/fhir/CoverageEligibilityRequest/$submit",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": ["x"]},
        ),
        Case(
            "input/eligibility-parameter-object",
            "POST",
            "/fhir/CoverageEligibilityRequest/$submit",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": {"name": "x"}},
        ),
        Case(
            "input/export-parameter-number",
            "POST",
            "/fhir/$export",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": 5},
            headers={"Prefer": "respond-async"},
            mongo=True,
        ),
        Case(
            "input/export-parameter-string",
            "POST",
            "/fhir/$export",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": "x"},
            headers={"Prefer": "respond-async"},
        ),
        Case(
            "input/export-value-object",
            "POST",
            "/fhir/$export",
            400,
            identity="payer",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "_type", "valueString": ["Patient"]}],
            },
            headers={"Prefer": "respond-async"},
        ),
        Case(
            "input/lookup-parameter-string",
            "POST",
            "/fhir/CodeSystem/$lookup",
            400,
            identity="payer",
            json={"resourceType": "Parameters", "parameter": ["x"]},
        ),
        Case("input/search-1000-terms", "GET", f"/fhir/Patient?{terms}", 400, mongo=True),
        Case("input/search-1000-values", "GET", f"/fhir/Patient?name={values}", 400),
        Case(
            "input/search-post-1000-terms",
            "POST",
            "/fhir/Patient/_search",
            400,
            content=terms.encode(),
            content_type=FORM,
        ),
        Case("input/system-search-1000-terms", "GET", f"/fhir?_type=Patient&{terms}", 400),
        Case(
            "input/conditional-create-1000-terms",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            json=patient,
            headers={"If-None-Exist": terms},
        ),
        Case("input/search-bad-count", "GET", "/fhir/Patient?_count=-1", 400),
        Case("input/search-bad-cursor", "GET", "/fhir/Patient?_cursor=garbage", 400),
        Case("input/search-bad-date", "GET", "/fhir/Patient?birthdate=notadate", 400),
        Case("input/search-bad-include", "GET", "/fhir/Patient?_include=Nothing:here", 400),
        Case(
            "input/token-17mb",
            "POST",
            "/auth/token",
            413,
            custom=_body_then_healthy("/auth/token", chunked=False),
            mongo=True,
        ),
        Case(
            "input/token-17mb-chunked",
            "POST",
            "/auth/token",
            413,
            custom=_body_then_healthy("/auth/token", chunked=True),
        ),
        Case(
            "input/login-17mb",
            "POST",
            "/auth/login",
            413,
            custom=_body_then_healthy("/auth/login", chunked=False),
        ),
        Case(
            "input/fhir-17mb",
            "POST",
            "/fhir/Patient",
            413,
            custom=_body_then_healthy("/fhir/Patient", chunked=True),
        ),
        Case(
            "input/huge-resource",
            "POST",
            "/fhir/Patient",
            413,
            identity="payer",
            json=big_names,
            mongo=True,
        ),
        Case("input/read-long-id", "GET", f"/fhir/Patient/{long_id}", 400, mongo=True),
        Case("input/read-10k-id", "GET", f"/fhir/Patient/{'a' * 10_000}", 400),
        Case("input/read-id-underscore", "GET", "/fhir/Patient/a_b", 400),
        Case("input/read-id-unicode", "GET", "/fhir/Patient/%C3%A9t%C3%A9", 400),
        Case("input/vread-long-id", "GET", f"/fhir/Patient/{long_id}/_history/1", 400),
        Case("input/history-long-id", "GET", f"/fhir/Patient/{long_id}/_history", 400),
        Case(
            "input/put-long-id",
            "PUT",
            f"/fhir/Patient/{long_id}",
            400,
            identity="payer",
            json={"resourceType": "Patient", "id": long_id},
        ),
        Case(
            "input/patch-long-id",
            "PATCH",
            f"/fhir/Patient/{long_id}",
            400,
            json=[],
            content_type=PATCH_JSON,
        ),
        Case("input/delete-long-id", "DELETE", f"/fhir/Patient/{long_id}", 400),
        Case("input/compartment-long-id", "GET", f"/fhir/Patient/{long_id}/Condition", 400),
        Case(
            "input/generate-claim-long-id",
            "POST",
            f"/fhir/Encounter/{long_id}/$generate-claim",
            400,
            identity="payer",
        ),
        Case(
            "input/transaction-long-id",
            "POST",
            "/fhir",
            400,
            identity="payer",
            json=_bundle(
                "transaction",
                {
                    "resource": {"resourceType": "Patient", "id": long_id},
                    "request": {"method": "PUT", "url": f"Patient/{long_id}"},
                },
            ),
            mongo=True,
        ),
        Case(
            "input/contained-long-id",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            json={
                **patient,
                "id": None,
                "contained": [{"resourceType": "Organization", "id": long_id, "name": "x"}],
            },
        ),
        Case(
            "input/wrong-content-type",
            "POST",
            "/fhir/Patient",
            415,
            identity="payer",
            content=b"<Patient/>",
            content_type="application/xml",
        ),
        Case(
            "input/no-body",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            content=b"",
            content_type=FHIR_JSON,
        ),
        Case(
            "input/not-json",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            content=b"{nope",
            content_type=FHIR_JSON,
        ),
        Case(
            "input/json-array",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            content=b"[1,2]",
            content_type=FHIR_JSON,
        ),
        Case(
            "input/unknown-resource-type",
            "POST",
            "/fhir/Patient",
            400,
            identity="payer",
            json={"resourceType": "Pokemon"},
        ),
        Case(
            "input/accept-xml-only",
            "GET",
            f"/fhir/Patient/{A.patient_id}",
            406,
            headers={"Accept": "application/fhir+xml"},
        ),
        Case(
            "input/if-none-match-garbage",
            "GET",
            f"/fhir/Patient/{A.patient_id}",
            200,
            headers={"If-None-Match": "garbage,,*x"},
        ),
        Case(
            "input/if-modified-since-garbage",
            "GET",
            f"/fhir/Patient/{A.patient_id}",
            200,
            headers={"If-Modified-Since": "the day before"},
        ),
        Case("input/unknown-type", "GET", "/fhir/Pokemon/1", 404),
    ]
    return cases


def _audit_cases() -> list[Case]:
    return [
        Case(
            "audit/x-forwarded-for-not-trusted", "GET", "/fhir/Patient", 200, custom=_forwarded_for
        ),
        Case(
            "audit/provenance-cannot-be-deleted",
            "DELETE",
            "/fhir/Provenance",
            403,
            custom=_provenance_delete,
            mutates=True,
        ),
        Case(
            "audit/auditevent-searchable-by-last-updated",
            "GET",
            "/fhir/AuditEvent?_lastUpdated=gt2000-01-01&_summary=count",
            200,
            identity="payer",
            check=lambda r: None if r.json().get("total", 0) > 0 else "no AuditEvent found",
            mongo=True,
        ),
        Case(
            "audit/auditevent-readable-by-auditor",
            "GET",
            "/fhir/AuditEvent/_history?_count=5",
            200,
            identity="payer",
        ),
    ]


def all_cases() -> list[Case]:
    """Every case, read-only ones first (their totals assume nothing was written yet)."""
    cases = [
        *_read_cases(),
        *_search_cases(),
        *_system_cases(),
        *_scope_cases(),
        *_token_cases(),
        *_input_cases(),
        *_audit_cases(),
        *_bundle_cases(),
        *_write_cases(),
        *_conditional_cases(),
    ]
    cases = [replace(c, json=_without_none(c.json)) for c in cases]
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, duplicates
    unknown = set(FIXED_ELSEWHERE) - set(names)
    assert not unknown, unknown
    return sorted(cases, key=lambda c: c.mutates)
