"""The queue: one Task search a page, its count after the page, assign to me."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mappings.coding.model import ISSUE_TYPES
from server.webapp import PREFIX
from server.webapp.fhir import FhirCallError, next_query
from server.webapp.queue import SORTS, QueueFilter, count_search, rows_of, task_search
from server.webapp.web import (
    NOTICES,
    PAGE_HEADERS,
    back,
    failed,
    form_of,
    html_text,
    put_task,
    signed_in,
    state_of,
)

router = APIRouter()


# -- the queue -----------------------------------------------------------------------


@router.get(PREFIX)
async def root() -> Response:
    return RedirectResponse(f"{PREFIX}/", 307)


@router.get(f"{PREFIX}/")
async def queue(request: Request) -> Response:
    state = state_of(request)
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    f = QueueFilter.from_query(request.query_params)
    cursor = request.query_params.get("cursor", "")
    try:
        names = await state.payer_names(fhir)
        if cursor:
            bundle = await fhir.call("GET", f"Task?{cursor}")
        else:
            bundle = await fhir.search("Task", task_search(f, session.username))
    except FhirCallError as exc:
        return failed(request, session, exc)
    following = next_query(bundle)
    base_query = f.as_query()
    return state.render(
        "queue.html",
        page="queue",
        session=session,
        rows=rows_of(bundle, names),
        count_url=f"{PREFIX}/queue-count?" + urlencode(base_query),
        filter=f,
        payers=sorted(names.items(), key=lambda kv: kv[1]),
        edit_codes=sorted(k for k, v in ISSUE_TYPES.items() if v != "informational"),
        sorts=SORTS,
        next_url=f"{PREFIX}/?" + urlencode({**base_query, "cursor": following})
        if following
        else None,
        first_url=f"{PREFIX}/?" + urlencode(base_query) if cursor else None,
        notice=NOTICES.get(request.query_params.get("done", "")),
        hx=request.headers.get("hx-request") == "true",
    )


@router.get(f"{PREFIX}/queue-count")
async def queue_count(request: Request) -> Response:
    """How many claims match the filters: loaded after the page (htmx), because a
    count reads every matching Task while a page reads 25."""
    state = state_of(request)
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    f = QueueFilter.from_query(request.query_params)
    try:
        total = (await fhir.search("Task", count_search(f, session.username))).get("total")
    except FhirCallError as exc:
        return failed(request, session, exc)
    text = f"{total} claim{'' if total == 1 else 's'} to review" if total is not None else ""
    if request.headers.get("hx-request") != "true":  # the link, without JavaScript
        return state.render("message.html", session=session, title="Queue", message=text)
    return HTMLResponse(
        f'<p class="count" id="queue-count" role="status">{html_text(text)}</p>',
        headers=PAGE_HEADERS,
    )


@router.post(f"{PREFIX}/task/{{task_id}}/assign")
async def assign(request: Request, task_id: str) -> Response:
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    form = await form_of(request, session)
    if form is None:
        return failed(request, session, "The form expired; reload the page.", 403)
    try:
        task = await fhir.call("GET", f"Task/{task_id}")
        task["owner"] = session.owner_reference()
        if task.get("status") == "requested":
            task["status"] = "accepted"
        await put_task(fhir, task)
    except FhirCallError as exc:
        return failed(request, session, exc)
    claim_id = str((task.get("focus") or {}).get("reference") or "").split("/", 1)[-1]
    if request.headers.get("hx-request") == "true":
        return HTMLResponse(
            f'<span class="assigned">{html_text(session.username)}</span>', headers=PAGE_HEADERS
        )
    if form.get("return") == "claim":
        return back(f"/claim/{claim_id}", "assigned")
    return back("/", "assigned")
