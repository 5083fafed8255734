"""Fixtures for the terminology tests: the shipped tables, an empty user data directory,
and a small FastAPI app with only the terminology router and the error handlers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.api.errors import install_error_handlers
from terminology.fhir_api import router
from terminology.service import TerminologyService

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> TerminologyService:
    """The shipped terminology only (the user data directory is empty)."""
    return TerminologyService(data_dir=tmp_path_factory.mktemp("terminology-empty"))


def make_app(service: TerminologyService) -> FastAPI:
    app = FastAPI()
    app.state.terminology = service
    app.include_router(router, prefix="/fhir")
    install_error_handlers(app)
    return app


@pytest.fixture(scope="session")
def client(service: TerminologyService) -> Iterator[TestClient]:
    with TestClient(make_app(service)) as test_client:
        yield test_client


def parameters(body: dict) -> dict:
    """A Parameters resource as {name: value or [values]} (parts as nested dicts)."""
    out: dict = {}
    for p in body["parameter"]:
        if "part" in p:
            value = parameters({"parameter": p["part"]})
        else:
            value = next(v for k, v in p.items() if k.startswith("value"))
        out.setdefault(p["name"], []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def properties(body: dict) -> dict[str, list]:
    """$lookup properties as {code: [values]}."""
    out: dict[str, list] = {}
    for p in body["parameter"]:
        if p["name"] == "property":
            part = {q["name"]: q for q in p["part"]}
            value = next(v for k, v in part["value"].items() if k.startswith("value"))
            out.setdefault(part["code"]["valueCode"], []).append(value)
    return out
