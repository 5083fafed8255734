"""Every filter and sort the MongoDB renderer emits is served by an index Billable declares.

The static check (no server) renders each query of the search case table and of the
search benchmarks exactly as ``mongo_search`` would, chains and ``_has`` replaced by the
id lists their sub-queries produce, and holds it against ``INDEX_SET``
(``server/storage/mongo_indexes.py``, ``mongo_plan.py``). The declared set is compared with what
``MongoStore.open`` really creates on the test server, and, when
``BILLABLE_TEST_MONGO_URI`` names a real MongoDB, each query's explain plan must be an
index scan of the index the static check named (FerretDB has no query planner worth
the name and skips wildcard indexes: that leg skips, saying so).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl

import pymongo
import pytest

from server.repository import Repository
from server.search.expr import And, Chain, Expr, Has, Ids, Not, Or, Reference, RefValue
from server.search.mongo_render import search_filter, sort_spec
from server.search.parse import parse_search
from server.storage.mongo import MongoStore
from server.storage.mongo_plan import INDEX_SET, serving_indexes, sort_index
from server.storage.port import SearchQuery
from tests.search.fixtures import CASES, RESOURCES

BASE = {"cur": True, "deleted": False}
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"

# The payer and EHR queries of bench/search_scale.py (issue 18), ids as placeholders.
COMMON = [
    ("Claim", "patient=p1&status=active"),
    ("Encounter", "patient=p1&date=ge2015-01-01"),
    ("Condition", f"code={SCT}|44054006"),
    ("Observation", f"patient=p1&code={LOINC}|8867-4&_sort=-date"),
    ("Claim", "patient=p1&_include=Claim:encounter"),
    ("Patient", "_id=p1&_revinclude=Encounter:patient"),
    ("Encounter", "patient.identifier=urn:mrn|123"),
    ("Patient", f"_has:Condition:subject:code={SCT}|44054006"),
    ("ExplanationOfBenefit", "patient=p1&_sort=-created"),
    ("Coverage", "beneficiary=p1&status=active"),
]

# Queries whose every term is negative or type-wide: a scan of one type is the only
# plan any database has for them (the renderer adds nothing to narrow).
SCANS = {
    "Patient?gender:not=female",
    f"Condition?code:not={SCT}|44054006",
    "Encounter?service-provider:missing=true",
    "Patient?birthdate:missing=true",
    "Patient?gender:missing=true",
    "Observation?value-quantity:missing=true",
}


def _resolved(e: Expr | None) -> Expr | None:
    """``e`` as ``resolve_joins`` leaves it: chains and _has become id lists."""
    if e is None:
        return None
    if isinstance(e, And | Or):
        parts = tuple(x for x in (_resolved(y) for y in e.exprs) if x is not None)
        return And(parts) if isinstance(e, And) else Or(parts)
    if isinstance(e, Not):
        inner = _resolved(e.expr)
        return Not(inner) if inner is not None else None
    if isinstance(e, Chain):
        return Reference(e.param, (RefValue(e.target_type, "some-target"),))
    if isinstance(e, Has):
        return Ids(("some-target",))
    return e


def rendered(rtype: str, query: str) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The filter and sort ``mongo_search`` sends for ``rtype?query`` (its own function)."""
    parsed = parse_search((rtype,), parse_qsl(query))
    filt = search_filter(SearchQuery((rtype,), parsed.where), _resolved(parsed.where), BASE)
    return filt, [(f, d) for f, d, _ in sort_spec(parsed.sort)]


def _queries() -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for rtype, query, _ in CASES:
        seen[(rtype, query)] = None
    for rtype, query in COMMON:
        seen[(rtype, query)] = None
    return list(seen)


QUERIES = _queries()


def _selective(rtype: str, query: str) -> bool:
    parsed = parse_search((rtype,), parse_qsl(query))
    return parsed.where is not None and f"{rtype}?{query}" not in SCANS


@pytest.mark.parametrize(("rtype", "query"), QUERIES, ids=[f"{t}?{q}" for t, q in QUERIES])
def test_every_rendered_filter_is_served_by_a_declared_index(rtype: str, query: str) -> None:
    filt, _ = rendered(rtype, query)
    if not _selective(rtype, query):
        return  # no criteria (or only negative ones): a type scan is the plan, see SCANS
    assert serving_indexes(filt) is not None, f"no declared index serves {filt}"


@pytest.mark.parametrize(("rtype", "query"), QUERIES, ids=[f"{t}?{q}" for t, q in QUERIES])
def test_every_rendered_sort_has_an_index_for_its_first_key(rtype: str, query: str) -> None:
    _, order = rendered(rtype, query)
    fields = [f for f, _ in order]
    assert sort_index(fields) is not None, f"no declared index returns documents by {fields[0]}"


@pytest.mark.parametrize(("rtype", "query"), QUERIES, ids=[f"{t}?{q}" for t, q in QUERIES])
def test_every_rendered_filter_carries_its_type_as_a_top_level_equality(
    rtype: str, query: str
) -> None:
    """FerretDB (PostgreSQL backend) pushes only top-level scalar equalities into SQL:
    inside ``$and`` the type would be lost and every search would read the collection."""
    filt, _ = rendered(rtype, query)
    assert filt["type"] == rtype and filt["cur"] is True and filt["deleted"] is False
    assert all(not k.startswith("$") or k == "$and" for k in filt)


def test_the_scan_list_only_names_queries_that_have_no_index() -> None:
    """A query in SCANS that an index does serve should leave the list (it is no scan)."""
    for name in SCANS:
        rtype, query = name.split("?", 1)
        filt, _ = rendered(rtype, query)
        assert serving_indexes(filt) is None, f"{name} is served by {serving_indexes(filt)}"


@pytest.mark.mongo
async def test_the_store_creates_exactly_the_declared_indexes(mongo_db_uri: str) -> None:
    store = MongoStore(mongo_db_uri)
    await store.open()
    try:
        created = {
            ix["name"]: list(ix["key"].keys())
            async for ix in await store._versions.list_indexes()  # test: the real index list
            if ix["name"] not in ("_id_", "staged", "superseding")
        }
    finally:
        await store.close()
    declared = dict(INDEX_SET)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_db_uri)
    try:
        ferret = "ferretdbVersion" in client.admin.command("buildInfo")
    finally:
        client.close()
    if ferret:  # FerretDB gets no search indexes (see MongoStore._create_indexes)
        declared = {n: k for n, k in declared.items() if not any(f.startswith("idx.") for f in k)}
    assert created == declared


@pytest.mark.mongo
@pytest.mark.skipif(
    not os.environ.get("BILLABLE_TEST_MONGO_URI"),
    reason="explain plans need a real MongoDB: set BILLABLE_TEST_MONGO_URI (FerretDB's"
    " planner and missing wildcard indexes say nothing about MongoDB's)",
)
async def test_mongodb_plans_each_common_query_as_a_scan_of_the_expected_index(
    mongo_db_uri: str,
) -> None:
    store = MongoStore(mongo_db_uri)
    await store.open()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_db_uri)
    try:
        if "ferretdbVersion" in client.admin.command("buildInfo"):
            pytest.skip("BILLABLE_TEST_MONGO_URI points at FerretDB, not MongoDB")
        repo = Repository(store)
        writes = [repo.new_version(r["resourceType"], r["id"], r, 0)[0] for r in RESOURCES]
        await store.commit(writes)  # the search fixtures: the planner has documents to weigh
        coll = client.get_default_database()["versions"]
        for rtype, query in COMMON:
            filt, order = rendered(rtype, query)
            expected = serving_indexes(filt)
            assert expected is not None
            plan = coll.find(filt).sort(order).limit(21).explain()
            used = _index_names(plan["queryPlanner"]["winningPlan"])
            assert used, f"{rtype}?{query}: collection scan ({plan['queryPlanner']})"
            assert used & set(expected), (
                f"{rtype}?{query}: planner used {used}, the static check expected {expected}"
            )
    finally:
        client.close()
        await store.close()


def _index_names(plan: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(plan, dict):
        if plan.get("stage") == "COLLSCAN":
            return set()
        if "indexName" in plan:
            names.add(plan["indexName"])
        for k in ("inputStage", "queryPlan"):
            if k in plan:
                inner = _index_names(plan[k])
                if not inner and plan[k].get("stage") == "COLLSCAN":
                    return set()
                names |= inner
        for p in plan.get("inputStages", []):
            names |= _index_names(p)
    return names
