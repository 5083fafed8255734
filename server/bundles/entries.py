"""``Bundle.entry`` of a batch or transaction, parsed into what the processors act on.

Parsing checks the structure only (method, URL, resource type, the resource being there
when the method needs one); FHIR validation of the resources comes later, once per
resource. Every problem names the entry: ``Bundle.entry[3].request.url``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from server.errors import FhirError, Issue
from server.spec.resources import is_resource_type

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# The order R4 processes the entries of a transaction in (http.html#trules): deletes,
# creates, updates and patches, then reads. The response keeps the order of the request.
PROCESSING_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
JSON_PATCH = "application/json-patch+json"


@dataclass(slots=True)
class Entry:
    """One request of a bundle. Exactly one of ``rid`` and ``query`` is set, except for
    a plain create (POST) and a type-level search without criteria, where neither is."""

    index: int
    method: str
    url: str
    resource_type: str
    rid: str | None = None
    vid: str | None = None
    query: str | None = None
    # The entry's resource: the parsed object, or (after ``release``) only its compact
    # JSON, parsed again whenever it is needed, so that a 100 MB bundle is never held
    # as Python objects all at once (about four times the bytes).
    _resource: dict[str, Any] | None = None
    compact: bytes | None = None
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None
    patch: list[Any] | None = None

    @property
    def resource(self) -> dict[str, Any] | None:
        if self._resource is not None:
            return self._resource
        if self.compact is None:
            return None
        value: dict[str, Any] = orjson.loads(self.compact)
        return value

    def resource_bytes(self) -> bytes | None:
        """The resource as orjson's compact JSON (what reference rewriting scans)."""
        if self.compact is not None:
            return self.compact
        return orjson.dumps(self._resource) if self._resource is not None else None

    def release(self) -> None:
        """Keep the resource as compact JSON only (large bundles). Copied to a bytes
        object of its exact size: the one orjson returns keeps its growth buffer (a 2 KB
        resource held that way costs about 8 KB)."""
        if self._resource is not None:
            self.compact = memoryview(orjson.dumps(self._resource)).tobytes()
            self._resource = None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}] ({self.method} {self.url})"

    @property
    def interaction(self) -> str:
        """The name of the interaction, as access control knows it."""
        if self.method == "POST":
            return "create"
        if self.method == "PUT":
            return "update"
        if self.method == "PATCH":
            return "patch"
        if self.method == "DELETE":
            return "delete"
        if self.vid is not None:
            return "vread"
        return "read" if self.rid is not None else "search-type"


def entry_error(entry_index: int, label: str, exc: FhirError) -> FhirError:
    """``exc`` restated for one entry: diagnostics say which, expressions are bundle paths.

    ``Claim.item[0].sequence`` from the validator becomes
    ``Bundle.entry[3].resource.item[0].sequence``.
    """
    where = f"Bundle.entry[{entry_index}]"
    issues = []
    for issue in exc.issues:
        expressions = tuple(_bundle_path(where, e) for e in issue.expression) or (where,)
        issues.append(
            Issue(issue.severity, issue.code, f"{label}: {issue.diagnostics}", expressions)
        )
    return FhirError(exc.status, issues, exc.headers)


def _bundle_path(where: str, expression: str) -> str:
    if expression.startswith("Bundle.entry["):
        return expression
    head, dot, rest = expression.partition(".")
    head_type = head.split("[", 1)[0]
    if is_resource_type(head_type):
        return f"{where}.resource" + (f".{rest}" if dot else "")
    return f"{where}.{expression}"


def _fail(index: int, element: str, diagnostics: str, code: str = "invalid") -> FhirError:
    return FhirError.of(
        400, code, f"Bundle.entry[{index}]: {diagnostics}", (f"Bundle.entry[{index}].{element}",)
    )


def entries_of(bundle: dict[str, Any]) -> list[Any]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise FhirError.of(400, "structure", "Bundle.entry must be an array", ("Bundle.entry",))
    return raw


def parse_entry(index: int, raw: Any, base_url: str) -> Entry:
    """One ``Bundle.entry`` → ``Entry``; a 400 naming the element when it is malformed."""
    if not isinstance(raw, dict):
        raise _fail(index, "", "an entry must be an object", "structure")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise _fail(index, "request", "the entry has no request (method and url)", "required")
    method = request.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _fail(
            index, "request.method", f"method {method!r} is not one of {', '.join(METHODS)}"
        )
    method = method.upper()
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _fail(index, "request.url", "the request has no url", "required")
    full_url = raw.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise _fail(index, "fullUrl", "fullUrl must be a string")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise _fail(index, "resource", "the resource must be a JSON object", "structure")

    path, _, query = _relative(url.strip(), base_url, index).partition("?")
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or not is_resource_type(parts[0]):
        shown = parts[0] if parts else "(nothing)"
        raise _fail(
            index,
            "request.url",
            f"{url!r} does not start with a FHIR resource type ({shown}); system-level"
            " requests and operations are not supported in bundles",
            "not-supported",
        )
    if any(p.startswith("$") for p in parts):
        raise _fail(index, "request.url", "operations are not supported here", "not-supported")
    entry = Entry(index, method, url, parts[0], full_url=full_url)
    if len(parts) == 2:
        entry.rid = parts[1]
    elif len(parts) == 4 and parts[2] == "_history" and method in ("GET", "HEAD"):
        entry.rid, entry.vid = parts[1], parts[3]
    elif len(parts) != 1:
        raise _fail(index, "request.url", f"{url!r} is not a URL this method accepts")
    if query:
        if entry.rid is not None:
            raise _fail(index, "request.url", "an instance URL takes no search criteria")
        entry.query = query
    for name in ("ifNoneExist", "ifMatch"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            raise _fail(index, f"request.{name}", f"{name} must be a string")
    entry.if_none_exist = request.get("ifNoneExist")
    entry.if_match = request.get("ifMatch")
    _check_method(entry, resource)
    return entry


def _relative(url: str, base_url: str, index: int) -> str:
    if url.startswith(("http://", "https://")):
        base = base_url.rstrip("/") + "/"
        if not url.startswith(base):
            raise _fail(index, "request.url", f"{url!r} is not on this server ({base_url})")
        return url[len(base) :]
    return url


def _check_method(entry: Entry, resource: dict[str, Any] | None) -> None:
    i, method = entry.index, entry.method
    if method == "POST":
        if entry.rid is not None or entry.query is not None:
            raise _fail(i, "request.url", "POST (create) takes a type only, e.g. 'Patient'")
    elif method in ("PUT", "PATCH", "DELETE"):
        if entry.rid is None and entry.query is None:
            raise _fail(
                i, "request.url", f"{method} needs 'Type/id' or conditional criteria 'Type?...'"
            )
    if method in ("POST", "PUT"):
        if resource is None:
            raise _fail(i, "resource", f"{method} needs a resource", "required")
        if resource.get("resourceType") != entry.resource_type:
            raise _fail(
                i,
                "resource.resourceType",
                f"the resource is a {resource.get('resourceType')!r}, but the request is for"
                f" {entry.resource_type}",
            )
        entry._resource = resource
    if method == "PUT" and entry.rid is not None and resource is not None:
        body_id = resource.get("id")
        if body_id is None:
            raise _fail(i, "resource.id", "an update must carry the resource id", "required")
        if body_id != entry.rid:
            raise _fail(
                i,
                "resource.id",
                f"the id in the resource ({body_id!r}) differs from the URL ({entry.rid!r})",
            )
    if method == "PATCH":
        entry.patch = _patch_operations(i, resource)
    if entry.if_none_exist is not None and method != "POST":
        raise _fail(i, "request.ifNoneExist", "ifNoneExist applies to POST only")


def _patch_operations(index: int, resource: dict[str, Any] | None) -> list[Any]:
    """A JSON Patch travels in a bundle as a Binary (R4 http.html#patch)."""
    if resource is None or resource.get("resourceType") != "Binary":
        raise _fail(
            index,
            "resource",
            f"PATCH in a bundle needs a Binary with contentType {JSON_PATCH}"
            " (FHIRPath Patch with Parameters is not supported)",
            "not-supported",
        )
    if str(resource.get("contentType", "")).split(";")[0].strip() != JSON_PATCH:
        raise _fail(index, "resource.contentType", f"the Binary must be {JSON_PATCH}")
    try:
        operations = orjson.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise _fail(index, "resource.data", f"the patch is not base64 JSON: {exc}") from exc
    if not isinstance(operations, list):
        raise _fail(index, "resource.data", "a JSON Patch document must be a JSON array")
    return operations
