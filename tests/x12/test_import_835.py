"""``POST /fhir/$import-x12`` with 835 remittances, on both backends.

Hand-built 835s shaped like the implementation guide's examples (payment, denial,
partial payment, patient responsibility, reversal and correction) post the expected
ClaimResponses and PaymentReconciliations; re-importing changes nothing; a claim
payment that matches no Claim is reported; malformed X12 is refused naming the segment
and element, and nothing is posted.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.x12 import reader
from server.x12.loops_837 import patient_control_number_of
from server.x12.outbound import PAYER_ICN
from tests.x12.conftest import EDI, case_named, history_count, load_claim, search
from tests.x12.x12_files import Clp, Line, remit


@pytest.fixture
def sent(client: TestClient) -> dict[str, Any]:
    """A professional claim whose 837 was made (so its patient control number is known)."""
    claim = load_claim(client, case_named("est_20min_99213"))
    assert client.get(f"/fhir/Claim/{claim['id']}/$x12").status_code == 200
    return claim


def post(client: TestClient, text: str, status: int = 200) -> dict[str, Any]:
    assert reader.validate(text) == [] or status == 400
    r = client.post("/fhir/$import-x12", content=text.encode(), headers=EDI)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def responses(client: TestClient, claim_id: str) -> list[dict[str, Any]]:
    found = search(client, f"ClaimResponse?request=Claim/{claim_id}")
    return [r for r in found if any(i["system"] == PAYER_ICN for i in r.get("identifier", []))]


def amounts(adjudication: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for a in adjudication:
        coding = a["category"]["coding"][0]
        key = coding["code"]
        if a.get("reason"):
            key += ":" + a["reason"]["coding"][0]["code"]
        if "amount" in a:
            out[key] = a["amount"]["value"]
    return out


def paid_line(claim: dict[str, Any]) -> tuple[str, D]:
    item = claim["item"][0]
    return item["productOrService"]["coding"][0]["code"], D(str(item["net"]["value"]))


def test_a_payment_posts_a_claim_response_and_a_payment_reconciliation(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    paid, copay, contractual = charge - D(30), D(20), D(10)
    text = remit([Clp(pcn, "1", charge, paid, copay, "ICN-PAY-1", [
        Line(code, charge, paid, [("CO", "45", contractual), ("PR", "3", copay)], 1,
             ["N130"], charge - contractual)
    ])])  # fmt: skip
    outcome = post(client, text)
    assert "1 claim payment(s); 2 created" in outcome["issue"][0]["diagnostics"]
    [cr] = responses(client, sent["id"])
    assert cr["status"] == "active" and cr["outcome"] == "complete"
    assert cr["patient"] == sent["patient"] and cr["request"]["reference"] == f"Claim/{sent['id']}"
    assert {"system": PAYER_ICN, "value": "ICN-PAY-1"} in cr["identifier"]
    line = amounts(cr["item"][0]["adjudication"])
    assert cr["item"][0]["itemSequence"] == 1
    assert line["submitted"] == float(charge) and line["benefit"] == float(paid)
    assert line["eligible"] == float(charge - contractual)
    assert line["CO:45"] == 10.0 and line["PR:3"] == 20.0 and line["copay"] == 20.0
    remark = [
        a for a in cr["item"][0]["adjudication"] if a["category"]["coding"][0]["code"] == "remark"
    ]
    assert remark[0]["reason"]["coding"][0]["code"] == "N130"
    assert cr["payment"]["amount"]["value"] == float(paid)
    [pr] = search(client, "PaymentReconciliation?identifier=CHK10001")
    assert pr["paymentAmount"]["value"] == float(paid)
    assert pr["paymentDate"] == "2026-03-15"
    assert pr["detail"][0]["request"]["reference"] == f"Claim/{sent['id']}"
    assert pr["detail"][0]["response"]["reference"] == f"ClaimResponse/{cr['id']}"


def test_reimporting_the_same_835_changes_nothing(client: TestClient, sent: dict[str, Any]):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    text = remit([Clp(pcn, "1", charge, charge, D(0), "ICN-SAME", [Line(code, charge, charge)])])
    post(client, text)
    [cr] = responses(client, sent["id"])
    [pr] = search(client, "PaymentReconciliation?identifier=CHK10001")
    outcome = post(client, text)
    assert "0 created, 0 updated, 2 unchanged" in outcome["issue"][0]["diagnostics"]
    assert history_count(client, "ClaimResponse", cr["id"]) == 1
    assert history_count(client, "PaymentReconciliation", pr["id"]) == 1
    assert len(responses(client, sent["id"])) == 1


def test_a_denial_posts_zero_payment_with_the_carc_and_remarks(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    text = remit([Clp(pcn, "4", charge, D(0), D(0), "ICN-DENY", [
        Line(code, charge, D(0), [("CO", "50", charge)], 1, ["M25"])
    ], remarks=["MA130"])])  # fmt: skip
    post(client, text)
    [cr] = responses(client, sent["id"])
    assert cr["disposition"].startswith("835 CLP02 4: Denied")
    line = amounts(cr["item"][0]["adjudication"])
    assert line["benefit"] == 0.0 and line["CO:50"] == float(charge)
    assert cr["adjudication"][0]["reason"]["coding"][0]["code"] == "MA130"


def test_partial_payment_with_a_deductible_is_patient_responsibility(client: TestClient):
    claim = load_claim(client, case_named("prolonged_commercial_established_55_min"))
    assert client.get(f"/fhir/Claim/{claim['id']}/$x12").status_code == 200
    pcn = patient_control_number_of(claim["id"])
    (first, second) = claim["item"][:2]
    c1, c2 = (D(str(i["net"]["value"])) for i in (first, second))
    code1 = first["productOrService"]["coding"][0]["code"]
    code2 = second["productOrService"]["coding"][0]["code"]
    deductible = D("50")
    text = remit([Clp(pcn, "1", c1 + c2, c1 - deductible, deductible, "ICN-PART", [
        Line(code1, c1, c1 - deductible, [("PR", "1", deductible)], 1),
        Line(code2, c2, D(0), [("CO", "97", c2)], 2),  # bundled into the first line
    ])])  # fmt: skip
    post(client, text)
    [cr] = responses(client, claim["id"])
    by_seq = {i["itemSequence"]: amounts(i["adjudication"]) for i in cr["item"]}
    assert by_seq[1]["deductible"] == 50.0 and by_seq[1]["PR:1"] == 50.0
    assert by_seq[2]["benefit"] == 0.0 and by_seq[2]["CO:97"] == float(c2)
    totals = amounts(cr["total"])
    assert totals["memberliability"] == 50.0 and totals["benefit"] == float(c1 - deductible)


def test_a_reversal_updates_the_earlier_posting_and_the_correction_is_posted_once(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    post(client, remit([Clp(pcn, "1", charge, charge, D(0), "ICN-ORIG",
                            [Line(code, charge, charge)])], trace="CHK1"))  # fmt: skip
    [original] = responses(client, sent["id"])
    fixed = charge - D(15)
    later = remit(
        [
            Clp(pcn, "22", -charge, -charge, D(0), "ICN-ORIG", [Line(code, -charge, -charge)]),
            Clp(pcn, "1", charge, fixed, D(0), "ICN-CORR",
                [Line(code, charge, fixed, [("CO", "45", D(15))])]),
        ],
        trace="CHK2",
        control=102,
    )  # fmt: skip
    outcome = post(client, later)
    assert any(i["diagnostics"].startswith("Reversed ClaimResponse/") for i in outcome["issue"])
    found = {r["id"]: r for r in responses(client, sent["id"])}
    assert len(found) == 2  # the original (now cancelled) and the correction: no duplicate
    assert found[original["id"]]["status"] == "cancelled"
    assert history_count(client, "ClaimResponse", original["id"]) == 2
    [correction] = [r for r in found.values() if r["id"] != original["id"]]
    assert correction["status"] == "active" and correction["payment"]["amount"]["value"] == float(
        fixed
    )
    [pr] = search(client, "PaymentReconciliation?identifier=CHK2")
    assert [d["type"]["coding"][0]["code"] for d in pr["detail"]] == ["adjustment", "payment"]
    post(client, later)  # and again: nothing changes
    assert history_count(client, "ClaimResponse", original["id"]) == 2
    assert len(responses(client, sent["id"])) == 2


def test_an_unmatched_claim_payment_is_reported_and_kept_on_the_reconciliation(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    text = remit([
        Clp(pcn, "1", charge, charge, D(0), "ICN-OK", [Line(code, charge, charge)]),
        Clp("NOSUCHCLAIM", "1", D(50), D(40), D(0), "ICN-X", [Line("99212", D(50), D(40))]),
    ])  # fmt: skip
    outcome = post(client, text)
    warnings = [i["diagnostics"] for i in outcome["issue"] if i["severity"] == "warning"]
    assert any("Unmatched claim" in w and "NOSUCHCLAIM" in w for w in warnings)
    [pr] = search(client, "PaymentReconciliation?identifier=CHK10001")
    unmatched = [d for d in pr["detail"] if "request" not in d]
    assert unmatched[0]["identifier"]["value"] == "NOSUCHCLAIM"
    assert unmatched[0]["amount"]["value"] == 40.0
    assert len(responses(client, sent["id"])) == 1


def test_malformed_835_is_refused_naming_segment_and_element_and_nothing_is_posted(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    good = remit([Clp(pcn, "1", charge, charge, D(0), "ICN-BAD", [Line(code, charge, charge)])])
    bad = good.replace(f"SVC*HC:{code}*{charge}*", f"SVC*HC:{code}*12X4*")
    outcome = post(client, bad, status=400)
    messages = [i["diagnostics"] for i in outcome["issue"]]
    assert any("segment SVC" in m and "element SVC02" in m for m in messages), messages
    assert all("nothing was posted" in m for m in messages)
    assert outcome["issue"][0]["expression"] == ["SVC02"]
    assert responses(client, sent["id"]) == []
    assert search(client, "PaymentReconciliation?identifier=CHK10001") == []
    missing = good.replace(f"CLP*{pcn}*1*", f"CLP*{pcn}**")
    messages = [i["diagnostics"] for i in post(client, missing, status=400)["issue"]]
    assert any("segment CLP" in m and "CLP02" in m for m in messages), messages


def test_a_body_that_is_not_x12_is_a_400(client: TestClient):
    r = client.post("/fhir/$import-x12", content=b"hello", headers=EDI)
    assert r.status_code == 400 and "ISA" in r.text
    r = client.post(
        "/fhir/$import-x12", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 415


def test_a_claim_replacing_a_paid_claim_is_sent_as_frequency_7_with_the_payers_number(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    replacement = {k: v for k, v in sent.items() if k not in ("id", "meta")}
    replacement["related"] = [
        {
            "claim": {"reference": f"Claim/{sent['id']}"},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/related-claim-relationship",
                        "code": "prior",
                    }
                ]
            },
        }
    ]
    r = client.post(
        "/fhir/Claim", json=replacement, headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code == 201, r.text
    new_id = r.json()["id"]
    # Before the payer has the original's number, it is an original claim of its own.
    assert client.get(f"/fhir/Claim/{new_id}/$x12").headers["x-x12-frequency"] == "1"
    post(
        client,
        remit([Clp(pcn, "1", charge, charge, D(0), "ICN-FIRST", [Line(code, charge, charge)])]),
    )
    r = client.get(f"/fhir/Claim/{new_id}/$x12")
    assert r.headers["x-x12-frequency"] == "7"
    assert "REF*F8*ICN-FIRST~" in r.text and ":B:7*" in r.text
    assert reader.validate(r.text) == []


def test_provider_level_adjustments_are_details_and_an_unbalanced_payment_is_said(
    client: TestClient, sent: dict[str, Any]
):
    code, charge = paid_line(sent)
    pcn = patient_control_number_of(sent["id"])
    claims = [Clp(pcn, "1", charge, charge, D(0), "ICN-PLB", [Line(code, charge, charge)])]
    text = remit(claims, plb=[("WO", "OVERPAY-1", D("5.00"))])
    outcome = post(client, text)
    assert not [i for i in outcome["issue"] if i["severity"] == "warning"]
    [pr] = search(client, "PaymentReconciliation?identifier=CHK10001")
    assert pr["paymentAmount"]["value"] == float(charge - 5)
    plb = [d for d in pr["detail"] if d["identifier"]["value"] == "WO:OVERPAY-1"]
    assert plb[0]["type"]["coding"][0]["code"] == "adjustment"
    assert plb[0]["amount"]["value"] == -5.0
    unbalanced = text.replace(f"BPR*I*{charge - 5}*", f"BPR*I*{charge + 1}*")
    outcome = post(client, unbalanced)
    assert any("BPR02" in i["diagnostics"] for i in outcome["issue"] if i["severity"] == "warning")
