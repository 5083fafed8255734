"""The coder app's pages and form actions (``/app/...``).

Pages answer HTML; actions are plain HTML forms (POST, a CSRF token, 303 back) so that
everything works with the keyboard and without JavaScript; htmx only refreshes the queue
as filters change and assigns a row in place. Each handler turns the coder's session
into a ``FhirClient`` and does its work through the API; an API refusal becomes a page
that says what the server said, with the status it gave.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles

from mappings.coding.model import ISSUE_TYPES
from mappings.coding.overrides import ACTIONS, check_decision, override_resource
from mappings.coding.service import TASK_CODE
from server.webapp import CODER_SCOPES, PREFIX, dashboard
from server.webapp.claim_view import load_claim
from server.webapp.fhir import FhirCallError, FhirClient, matches, next_query
from server.webapp.queue import (
    SORTS,
    QueueFilter,
    count_search,
    payer_label,
    rows_of,
    task_search,
)
from server.webapp.signin import COOKIE, Session, SignIn

if TYPE_CHECKING:
    from server.config import Settings

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {
    "assigned": "The claim is assigned to you.",
    "decided": "Decision recorded and the claim regenerated with it.",
    "withdrawn": "Decision withdrawn and the claim regenerated.",
    "regenerated": "The claim was regenerated from the encounter.",
    "released": "Claim released: it is active and went on to adjudication.",
    "queried": "Documentation query sent: the claim left the active queue until answered.",
    "answered": "Answer recorded: the claim is back in the queue.",
    "resumed": "The claim is back in the queue.",
}
PAYER_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type|pay"
PAYER_CACHE_S = 60.0


class CoderWeb:
    """State of the app: the API it calls, sign-in and sessions, templates."""

    def __init__(self, main: FastAPI, settings: Settings) -> None:
        self.main = main
        self.settings = settings
        self.signin = SignIn(
            getattr(settings, "coder_app_client", "billable-coder-app"), CODER_SCOPES
        )
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            enable_async=False,
        )
        self.templates.globals["prefix"] = PREFIX
        self._http: httpx.AsyncClient | None = None
        self._payers: tuple[float, dict[str, str]] = (0.0, {})

    @property
    def security(self) -> Any:
        return getattr(self.main.state, "security", None)

    async def origin(self, request: Request) -> str:
        """The server's public origin (the pinned base URL without ``/fhir``)."""
        security = self.security
        seen = str(request.base_url).rstrip("/")
        if security is None:
            return seen
        base = await security.pin_base(seen + "/fhir")
        return str(base)[: -len("/fhir")] if str(base).endswith("/fhir") else str(base)

    async def http(self, request: Request) -> httpx.AsyncClient:
        """One in-process HTTP client over the whole ASGI app (API, security, audit)."""
        if self._http is None:
            origin = await self.origin(request)
            self._http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.main), base_url=origin, timeout=120
            )
        return self._http

    async def session(self, request: Request) -> Session | None:
        return await self.signin.current(
            await self.http(request), "/auth", request.cookies.get(COOKIE)
        )

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**values)
        return HTMLResponse(html, status, headers=PAGE_HEADERS)

    async def payer_names(self, fhir: FhirClient) -> dict[str, str]:
        stamp, names = self._payers
        if time.monotonic() - stamp < PAYER_CACHE_S and names:
            return names
        try:
            # Payers: organizations typed as payers, and every one a Coverage names.
            typed, paying = await asyncio.gather(
                fhir.search_all(
                    "Organization", [("type", PAYER_TYPE), ("_elements", "name"), ("_count", "200")]
                ),
                fhir.search_all(
                    "Organization",
                    [
                        ("_has:Coverage:payor:status", "active,cancelled,draft"),
                        ("_elements", "name"),
                        ("_count", "200"),
                    ],
                ),
            )
            found = typed + paying
        except FhirCallError:
            return names
        names = {str(o["id"]): str(o.get("name") or o["id"]) for o in found}
        self._payers = (time.monotonic(), names)
        return names


def _back(path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    values = {k: v for k, v in query.items() if v}
    if notice:
        values["done"] = notice
    return RedirectResponse(f"{PREFIX}{path}" + (f"?{urlencode(values)}" if values else ""), 303)


def build_web(main: FastAPI, settings: Settings) -> FastAPI:
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    state = CoderWeb(main, settings)
    web.state.coder = state
    web.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static")

    async def signed_in(request: Request) -> tuple[Session, FhirClient] | Response:
        session = await state.session(request)
        if session is None:
            if state.security is None:  # --auth off: no sign-in, the API is open
                sid = state.signin.open_unauthenticated()
                response = RedirectResponse(str(request.url.path) + "?" + request.url.query, 303)
                _set_cookie(response, request, sid)
                return response
            return RedirectResponse(f"{PREFIX}/login", 303)
        return session, FhirClient(await state.http(request), session.access_token)

    async def form_of(request: Request, session: Session) -> dict[str, str] | None:
        form = {k: str(v) for k, v in (await request.form()).items()}
        return form if form.get("csrf") == session.csrf else None

    def failed(
        session: Session | None, error: FhirCallError | str, status: int = 400
    ) -> HTMLResponse:
        message = error.message if isinstance(error, FhirCallError) else error
        code = error.status if isinstance(error, FhirCallError) else status
        return state.render(
            "message.html", code, session=session, title="Not done", message=message
        )

    # -- sign-in -------------------------------------------------------------------------

    @web.get(f"{PREFIX}/login")
    async def login(request: Request) -> Response:
        security = state.security
        if security is None:
            return RedirectResponse(f"{PREFIX}/", 303)
        origin = await state.origin(request)
        url = state.signin.start(security.issuer_url(), security.base, f"{origin}{PREFIX}/callback")
        return RedirectResponse(url, 303)

    @web.get(f"{PREFIX}/callback")
    async def callback(request: Request) -> Response:
        params = request.query_params
        if params.get("error"):
            return state.render(
                "message.html",
                400,
                session=None,
                title="Sign-in refused",
                message=f"{params.get('error')}: {params.get('error_description', '')}",
            )
        try:
            sid = await state.signin.finish(
                await state.http(request), "/auth", params.get("state", ""), params.get("code", "")
            )
        except ValueError as exc:
            return state.render(
                "message.html", 400, session=None, title="Sign-in failed", message=str(exc)
            )
        response = RedirectResponse(f"{PREFIX}/", 303)
        _set_cookie(response, request, sid)
        return response

    @web.post(f"{PREFIX}/logout")
    async def logout(request: Request) -> Response:
        session = await state.session(request)
        if session is not None and await form_of(request, session) is not None:
            await state.signin.end(await state.http(request), "/auth", request.cookies.get(COOKIE))
        response = state.render(
            "message.html", session=None, title="Signed out", message="You are signed out."
        )
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # -- the queue -----------------------------------------------------------------------

    @web.get(PREFIX)
    async def root() -> Response:
        return RedirectResponse(f"{PREFIX}/", 307)

    @web.get(f"{PREFIX}/")
    async def queue(request: Request) -> Response:
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
            return failed(session, exc)
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

    @web.get(f"{PREFIX}/queue-count")
    async def queue_count(request: Request) -> Response:
        """How many claims match the filters: loaded after the page (htmx), because a
        count reads every matching Task while a page reads 25."""
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        f = QueueFilter.from_query(request.query_params)
        try:
            total = (await fhir.search("Task", count_search(f, session.username))).get("total")
        except FhirCallError as exc:
            return failed(session, exc)
        text = f"{total} claim{'' if total == 1 else 's'} to review" if total is not None else ""
        if request.headers.get("hx-request") != "true":  # the link, without JavaScript
            return state.render("message.html", session=session, title="Queue", message=text)
        return HTMLResponse(
            f'<p class="count" id="queue-count" role="status">{_html(text)}</p>',
            headers=PAGE_HEADERS,
        )

    @web.post(f"{PREFIX}/task/{{task_id}}/assign")
    async def assign(request: Request, task_id: str) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        form = await form_of(request, session)
        if form is None:
            return failed(session, "The form expired; reload the page.", 403)
        try:
            task = await fhir.call("GET", f"Task/{task_id}")
            task["owner"] = session.owner_reference()
            if task.get("status") == "requested":
                task["status"] = "accepted"
            task["lastModified"] = _now()
            version = str((task.get("meta") or {}).get("versionId") or "")
            await fhir.call(
                "PUT", f"Task/{task_id}", body=task, headers={"If-Match": f'W/"{version}"'}
            )
        except FhirCallError as exc:
            return failed(session, exc)
        claim_id = str((task.get("focus") or {}).get("reference") or "").split("/", 1)[-1]
        if request.headers.get("hx-request") == "true":
            return HTMLResponse(
                f'<span class="assigned">{_html(session.username)}</span>', headers=PAGE_HEADERS
            )
        if form.get("return") == "claim":
            return _back(f"/claim/{claim_id}", "assigned")
        return _back("/", "assigned")

    # -- one claim -----------------------------------------------------------------------

    @web.get(f"{PREFIX}/claim/{{claim_id}}")
    async def claim_page(request: Request, claim_id: str) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        try:
            view = await load_claim(fhir, claim_id)
        except FhirCallError as exc:
            return failed(session, exc)
        if view is None:
            return failed(session, f"Claim/{claim_id} is not there or not yours to see.", 404)
        names = await state.payer_names(fhir)
        payer = payer_label(
            str(((view.task or {}).get("groupIdentifier") or {}).get("value") or ""), names
        )
        return state.render(
            "claim.html",
            session=session,
            v=view,
            payer=payer,
            actions=ACTIONS,
            notice=NOTICES.get(request.query_params.get("done", "")),
        )

    async def regenerate(fhir: FhirClient, encounter_id: str) -> dict[str, Any]:
        answer = await fhir.call("POST", f"Encounter/{encounter_id}/$generate-claim")
        params = {p["name"]: p.get("resource") for p in answer.get("parameter") or []}
        return params

    async def claim_action(
        request: Request, claim_id: str
    ) -> tuple[Session, FhirClient, dict[str, str], dict[str, Any]] | Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        form = await form_of(request, session)
        if form is None:
            return failed(session, "The form expired; reload the page.", 403)
        try:
            claim = await fhir.call("GET", f"Claim/{claim_id}")
        except FhirCallError as exc:
            return failed(session, exc)
        return session, fhir, form, claim

    def encounter_of(claim: dict[str, Any]) -> str:
        return str(((claim.get("identifier") or [{}])[0]).get("value") or "")

    @web.post(f"{PREFIX}/claim/{{claim_id}}/decide")
    async def decide(request: Request, claim_id: str) -> Response:
        got = await claim_action(request, claim_id)
        if isinstance(got, Response):
            return got
        session, fhir, form, claim = got
        action, target = form.get("action", ""), form.get("target", "")
        value, reason = form.get("value", ""), form.get("reason", "")
        refusals = check_decision(action, target, value, reason)
        if action == "release":
            refusals.append("use the Release button to release the claim")
        if refusals:
            return failed(session, "The decision was not recorded: " + "; ".join(refusals), 422)
        basic = override_resource(
            encounter_id=encounter_of(claim),
            claim_id=claim_id,
            action=action,
            target=target,
            value=value,
            reason=reason,
            author=session.owner_reference(),
        )
        try:
            await fhir.call("POST", "Basic", body=basic)
            params = await regenerate(fhir, encounter_of(claim))
        except FhirCallError as exc:
            return failed(session, exc)
        return _back(f"/claim/{_claim_id(params, claim_id)}", "decided")

    @web.post(f"{PREFIX}/claim/{{claim_id}}/withdraw/{{basic_id}}")
    async def withdraw(request: Request, claim_id: str, basic_id: str) -> Response:
        got = await claim_action(request, claim_id)
        if isinstance(got, Response):
            return got
        session, fhir, _, claim = got
        try:
            basic = await fhir.call("GET", f"Basic/{basic_id}")
            if (basic.get("subject") or {}).get("reference") != f"Encounter/{encounter_of(claim)}":
                return failed(session, "That decision is not about this claim.", 422)
            await fhir.call("DELETE", f"Basic/{basic_id}")
            params = await regenerate(fhir, encounter_of(claim))
        except FhirCallError as exc:
            return failed(session, exc)
        return _back(f"/claim/{_claim_id(params, claim_id)}", "withdrawn")

    @web.post(f"{PREFIX}/claim/{{claim_id}}/regenerate")
    async def regenerate_page(request: Request, claim_id: str) -> Response:
        got = await claim_action(request, claim_id)
        if isinstance(got, Response):
            return got
        session, fhir, _, claim = got
        try:
            params = await regenerate(fhir, encounter_of(claim))
        except FhirCallError as exc:
            return failed(session, exc)
        return _back(f"/claim/{_claim_id(params, claim_id)}", "regenerated")

    @web.post(f"{PREFIX}/claim/{{claim_id}}/release")
    async def release(request: Request, claim_id: str) -> Response:
        got = await claim_action(request, claim_id)
        if isinstance(got, Response):
            return got
        session, fhir, form, claim = got
        reason = form.get("reason", "")
        if not reason.strip():
            return failed(session, "Say why the claim may go out (a reason is required).", 422)
        view = await load_claim(fhir, claim_id)
        if view is None:
            return failed(session, f"Claim/{claim_id} is gone.", 404)
        if view.stale:
            return failed(
                session,
                "A decision no longer fits this claim: withdraw or redo it before releasing.",
                422,
            )
        basic = override_resource(
            encounter_id=view.encounter_id,
            claim_id=claim_id,
            action="release",
            target="",
            value="",
            reason=reason,
            author=session.owner_reference(),
            accepted=view.accepted_edits,
        )
        try:
            await fhir.call("POST", "Basic", body=basic)
            params = await regenerate(fhir, view.encounter_id)
            released = params.get("claim") or {}
            if released.get("status") != "active":
                return failed(
                    session,
                    "The claim is still a draft after the release: "
                    + "; ".join(
                        str(i.get("diagnostics"))
                        for i in (params.get("outcome") or {}).get("issue") or []
                        if i.get("severity") == "error"
                    ),
                    409,
                )
            insurance = released.get("insurance") or [{}]
            if (insurance[0].get("coverage") or {}).get("reference"):
                submit = {
                    "resourceType": "Parameters",
                    "parameter": [
                        {
                            "name": "claim",
                            "valueReference": {"reference": f"Claim/{released['id']}"},
                        }
                    ],
                }
                await fhir.call("POST", "Claim/$submit", body=submit)
        except FhirCallError as exc:
            return failed(session, exc)
        return _back("/", "released")

    @web.post(f"{PREFIX}/claim/{{claim_id}}/query")
    async def query_provider(request: Request, claim_id: str) -> Response:
        got = await claim_action(request, claim_id)
        if isinstance(got, Response):
            return got
        session, fhir, form, claim = got
        question = form.get("question", "").strip()
        if not question:
            return failed(session, "Write the question for the provider.", 422)
        encounter_id = encounter_of(claim)
        try:
            tasks = matches(
                await fhir.search(
                    "Task", [("focus", f"Claim/{claim_id}"), ("code", f"{TASK_CODE}|review-claim")]
                ),
                "Task",
            )
            if not tasks:
                return failed(session, "The claim has no review Task to put on hold.", 409)
            task = tasks[0]
            encounter = await fhir.read(f"Encounter/{encounter_id}") or {}
            recipients = [
                p["individual"]
                for p in encounter.get("participant") or []
                if str((p.get("individual") or {}).get("reference", "")).startswith("Practitioner/")
            ][:1]
            request_body: dict[str, Any] = {
                "resourceType": "CommunicationRequest",
                "status": "active",
                "category": [{"text": "documentation query"}],
                "subject": claim.get("patient"),
                "about": [{"reference": f"Claim/{claim_id}"}, {"reference": f"Task/{task['id']}"}],
                "encounter": {"reference": f"Encounter/{encounter_id}"},
                "payload": [{"contentString": question}],
                "authoredOn": _now(),
                "requester": session.owner_reference(),
            }
            if recipients:
                request_body["recipient"] = recipients
            created = await fhir.call("POST", "CommunicationRequest", body=request_body)
            task["status"] = "on-hold"
            task["statusReason"] = {"text": f"Documentation query: {question}"[:500]}
            task["input"] = [
                i
                for i in task.get("input") or []
                if (i.get("type") or {}).get("text") != "documentation query"
            ] + [
                {
                    "type": {"text": "documentation query"},
                    "valueReference": {"reference": f"CommunicationRequest/{created['id']}"},
                }
            ]
            task["lastModified"] = _now()
            version = str((task.get("meta") or {}).get("versionId") or "")
            await fhir.call(
                "PUT", f"Task/{task['id']}", body=task, headers={"If-Match": f'W/"{version}"'}
            )
        except FhirCallError as exc:
            return failed(session, exc)
        return _back("/", "queried")

    # -- documentation queries -----------------------------------------------------------

    @web.get(f"{PREFIX}/queries")
    async def queries(request: Request) -> Response:
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
            return failed(session, exc)
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

    @web.post(f"{PREFIX}/queries/{{task_id}}/answer")
    async def answer(request: Request, task_id: str) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        form = await form_of(request, session)
        if form is None:
            return failed(session, "The form expired; reload the page.", 403)
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
                        "received": _now(),
                        "recipient": [session.owner_reference()],
                        "payload": [{"contentString": text}],
                        "note": [{"text": f"Answer recorded by coder {session.username}"}],
                    },
                )
                query["status"] = "completed"
                await fhir.call("PUT", ref, body=query)
            elif not text and not form.get("resume"):
                return failed(session, "Write the provider's answer.", 422)
            task["status"] = "requested"
            task.pop("statusReason", None)
            task["lastModified"] = _now()
            version = str((task.get("meta") or {}).get("versionId") or "")
            await fhir.call(
                "PUT", f"Task/{task_id}", body=task, headers={"If-Match": f'W/"{version}"'}
            )
        except FhirCallError as exc:
            return failed(session, exc)
        return _back("/queries", "answered" if text else "resumed")

    # -- dashboard -----------------------------------------------------------------------

    @web.get(f"{PREFIX}/dashboard")
    async def dashboard_page(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        session, fhir = who
        try:
            board = await dashboard.build(fhir, await state.payer_names(fhir))
        except FhirCallError as exc:
            return failed(session, exc)
        return state.render("dashboard.html", page="dashboard", session=session, board=board)

    return web


def _claim_id(params: dict[str, Any], fallback: str) -> str:
    return str((params.get("claim") or {}).get("id") or fallback)


def _query_ref(task: dict[str, Any]) -> str:
    for i in task.get("input") or []:
        if (i.get("type") or {}).get("text") == "documentation query":
            return str((i.get("valueReference") or {}).get("reference") or "")
    return ""


def _payload(resource: dict[str, Any]) -> str:
    return " ".join(str(p.get("contentString") or "") for p in resource.get("payload") or [])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _html(text: str) -> str:
    from html import escape

    return escape(text)


def _set_cookie(response: Response, request: Request, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=PREFIX,
        max_age=8 * 3600,
    )
