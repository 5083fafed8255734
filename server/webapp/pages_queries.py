"""Documentation queries: claims on hold until the provider answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.webapp import PREFIX
from server.webapp.fhir import FhirCallError, matches
from server.webapp.queue import QueueFilter, rows_of, task_search
from server.webapp.web import NOTICES, back, failed, form_of, now, put_task, signed_in, state_of

router = APIRouter()


# -- documentation queries -----------------------------------------------------------


@router.get(f"{PREFIX}/queries")
async def queries(request: Request) -> Response:
    state = state_of(request)
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    try:
        names = await state.payer_names(fhir)
        bundle = await fhir.search(
            "Task", task_search(QueueFilter(), session.username, statuses="on-hold", count=50)
        )
        rows = rows_of(bundle, names)
        tasks = {t["id"]: t for t in matches(bundle, "Task")}
        request_of = {tid: _query_ref(task) for tid, task in tasks.items() if _query_ref(task)}
        answers: dict[str, list[dict[str, Any]]] = {}
        requests: dict[str, dict[str, Any]] = {}
        if request_of:
            refs = ",".join(request_of.values())
            for c in matches(await fhir.search("Communication", [("based-on", refs)])):
                for b in c.get("basedOn") or []:
                    answers.setdefault(str(b.get("reference")), []).append(c)
            requests = await fhir.read_many(list(request_of.values()))
    except FhirCallError as exc:
        return failed(request, session, exc)
    items = [
        {
            "row": row,
            "question": _payload(requests.get(request_of.get(row.task_id, "")) or {}),
            "answers": [_payload(a) for a in answers.get(request_of.get(row.task_id, ""), [])],
        }
        for row in rows
    ]
    return state.render(
        "queries.html",
        page="queries",
        session=session,
        items=items,
        notice=NOTICES.get(request.query_params.get("done", "")),
    )


@router.post(f"{PREFIX}/queries/{{task_id}}/answer")
async def answer(request: Request, task_id: str) -> Response:
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    form = await form_of(request, session)
    if form is None:
        return failed(request, session, "The form expired; reload the page.", 403)
    text = form.get("answer", "").strip()
    try:
        task = await fhir.call("GET", f"Task/{task_id}")
        ref = _query_ref(task)
        if text and ref:
            query = await fhir.call("GET", ref)
            await fhir.call(
                "POST",
                "Communication",
                body={
                    "resourceType": "Communication",
                    "status": "completed",
                    "basedOn": [{"reference": ref}],
                    "subject": query.get("subject"),
                    "encounter": query.get("encounter"),
                    "received": now(),
                    "recipient": [session.owner_reference()],
                    "payload": [{"contentString": text}],
                    "note": [{"text": f"Answer recorded by coder {session.username}"}],
                },
            )
            query["status"] = "completed"
            await fhir.call("PUT", ref, body=query)
        elif not text and not form.get("resume"):
            return failed(request, session, "Write the provider's answer.", 422)
        task["status"] = "requested"
        task.pop("statusReason", None)
        await put_task(fhir, task)
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back("/queries", "answered" if text else "resumed")


def _query_ref(task: dict[str, Any]) -> str:
    for i in task.get("input") or []:
        if (i.get("type") or {}).get("text") == "documentation query":
            return str((i.get("valueReference") or {}).get("reference") or "")
    return ""


def _payload(resource: dict[str, Any]) -> str:
    return " ".join(str(p.get("contentString") or "") for p in resource.get("payload") or [])
