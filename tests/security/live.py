"""A real ``billable serve`` process on either store, its clients, users and real tokens.

Used by the attack-table tests and by ``bench/attack_table.py``. Tokens come from the
server's own endpoints: backend services sign a ``private_key_jwt`` assertion; patient
tokens go through SMART App Launch (authorize, the login form, the code, PKCE S256).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from server.auth.clients import add_app_client, add_backend_client, add_user
from server.auth.records import Records
from server.repository.opened import opened
from tests.security.world import A, B, PatientData, resources_of
from tests.support.serve import stop, wait_until_healthy

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Setting up an attack (tokens, seed data) is not what a case measures: on FerretDB under a
# loaded machine a token exchange has taken over httpx's 5 s default.
SETUP_TIMEOUT_S = 30
APP = "attack-app"
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the code is read from Location
APP_SCOPES = "launch/patient openid fhirUser offline_access patient/*.cruds patient/*.rs"
PASSWORD = "attack-table-password"
USERS = {"alice": A, "bruno": B}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(store_url: str, key: RSAKey) -> None:
    """Clients and users, written into the store before the server starts."""

    async def go() -> None:
        async with opened(store_url) as repository:
            records = Records(repository)
            jwks = KeySet([key]).as_dict(private=False)
            await add_backend_client(
                records, "payer", "system/*.cruds system/AuditEvent.rs", jwks=jwks
            )
            await add_backend_client(records, "reader", "system/*.rs", jwks=jwks)
            await add_backend_client(records, "claims-only", "system/Claim.rs", jwks=jwks)
            await add_app_client(records, APP, APP_SCOPES, [REDIRECT])
            for name, who in USERS.items():
                await add_user(
                    records,
                    name,
                    PASSWORD,
                    fhir_user=f"Patient/{who.patient_id}",
                    patients=[who.patient_id],
                )

    asyncio.run(go())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Attack:
    """A running server with the two patients' data and a token per identity."""

    base: str
    store_url: str
    key: RSAKey
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.base}/auth/token"

    def assertion(self, client_id: str = "payer", **claims: object) -> str:
        body = {
            "iss": client_id,
            "sub": client_id,
            "aud": self.token_url,
            "exp": int(time.time()) + 240,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        header = {"alg": "RS384", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, body, self.key, algorithms=["RS384"])

    def backend_token(self, scope: str, client_id: str = "payer") -> str:
        r = httpx.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(client_id),
            },
            timeout=SETUP_TIMEOUT_S,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def authorization_code(self, user: str, scope: str) -> tuple[str, str]:
        """(code, PKCE verifier) from a real login of ``user`` through the form."""
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": APP,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "attack-state",
            "aud": self.fhir,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        with httpx.Client(timeout=SETUP_TIMEOUT_S) as http:
            page = http.get(f"{self.base}/auth/authorize", params=params)
            found = re.search(r"name=request value='([^']*)'", page.text)
            assert found, page.text
            landed = http.post(
                f"{self.base}/auth/login",
                data={"username": user, "password": PASSWORD, "request": found.group(1)},
            )
        assert landed.status_code in (302, 303), landed.text
        query = parse_qs(urlsplit(landed.headers["location"]).query)
        return query["code"][0], verifier

    def exchange(self, code: str, verifier: str) -> httpx.Response:
        return httpx.post(
            self.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": APP,
                "code_verifier": verifier,
            },
            timeout=SETUP_TIMEOUT_S,
        )

    def patient_token(self, user: str, scope: str) -> str:
        r = self.exchange(*self.authorization_code(user, scope))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def seed(self) -> None:
        headers = {
            "Authorization": f"Bearer {self.tokens['payer']}",
            "Content-Type": "application/fhir+json",
        }
        with httpx.Client(base_url=self.fhir, headers=headers, timeout=30) as http:
            for who in (A, B):
                for resource in resources_of(who):
                    path = f"/{resource['resourceType']}/{resource['id']}"
                    r = http.put(path, json=resource)
                    assert r.status_code == 201, r.text
            # B's deleted Observation: A must not be able to re-create it (leak 5).
            deleted = {**resources_of(B)[4], "id": "observation-bravo-deleted"}
            assert http.put("/Observation/observation-bravo-deleted", json=deleted).is_success
            assert http.delete("/Observation/observation-bravo-deleted").status_code == 204

    def issue_tokens(self) -> None:
        self.tokens["payer"] = self.backend_token("system/*.cruds system/AuditEvent.rs")
        self.tokens["reader"] = self.backend_token("system/*.rs", "reader")
        self.tokens["claims-only"] = self.backend_token("system/Claim.rs", "claims-only")
        self.tokens["A"] = self.patient_token("alice", "launch/patient patient/*.cruds")
        self.tokens["A-read"] = self.patient_token("alice", "launch/patient patient/*.rs")
        self.tokens["A-claims"] = self.patient_token("alice", "launch/patient patient/Claim.rs")
        self.tokens["B"] = self.patient_token("bruno", "launch/patient patient/*.rs")

    def server_log(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def patient_of(identity: str) -> PatientData | None:
    return {"A": A, "A-read": A, "A-claims": A, "B": B}.get(identity)


@contextmanager
def attack_server(store_url: str, workdir: Path | None = None) -> Iterator[Attack]:
    """Start ``billable serve`` (SMART mode) on ``store_url``, seed it, issue tokens."""
    key = RSAKey.generate_key(2048, parameters={"kid": "attack-key"})
    register(store_url, key)
    port = free_port()
    log = tempfile.TemporaryFile()
    export_dir = str((workdir or Path(tempfile.mkdtemp())) / "export")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            "--store",
            store_url,
            "--coding",
            "manual",
            "--adjudication",
            "manual",
            "--export-dir",
            export_dir,
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    attack = Attack(base, store_url, key, process, log)
    try:
        wait_until_healthy(base, process, attack.server_log)
        httpx.get(f"{base}/auth/jwks", timeout=30)  # makes the signing keys
        attack.issue_tokens()
        attack.seed()
        yield attack
    finally:
        stop(process)
        log.close()
