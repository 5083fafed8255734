"""A real ``billable serve`` process in SMART mode, and a loopback redirect target."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Callback:
    """An app's redirect URI: records the query strings it receives."""

    port: int
    received: list[dict[str, str]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"


def start_callback() -> tuple[Callback, HTTPServer]:
    callback = Callback(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlsplit(self.path).query)
            callback.received.append({k: v[0] for k, v in query.items()})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"app received the redirect")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", callback.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return callback, server


@dataclass
class LiveServer:
    base: str
    fhir: str
    store_url: str
    backend_key: RSAKey
    callback: Callback
    process: subprocess.Popen[str]

    def assertion(self, client_id: str = "payer", aud: str | None = None) -> str:
        """A private_key_jwt client assertion signed with the registered backend key."""
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": aud or f"{self.base}/auth/token",
            "exp": int(time.time()) + 240,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            {"alg": "RS384", "kid": self.backend_key.kid},
            claims,
            self.backend_key,
            algorithms=["RS384"],
        )

    def token_response(
        self, scope: str = "system/*.cruds", client_id: str = "payer", **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", None)
        return httpx.post(
            f"{self.base}/auth/token",
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(client_id, **kwargs),
            },
            headers=headers,
            timeout=30,
        )

    def backend_token(self, scope: str = "system/*.cruds", client_id: str = "payer") -> str:
        r = self.token_response(scope, client_id)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def live_server(
    tmp_path: Path, extra_args: tuple[str, ...] = (), store_url: str | None = None
) -> Iterator[LiveServer]:
    """``billable serve`` on a free port; SQLite under ``tmp_path`` unless ``store_url``."""
    (tmp_path / "data").mkdir(exist_ok=True)
    store_url = store_url or f"sqlite:///{tmp_path / 'data' / 'billable.db'}"
    key = RSAKey.generate_key(2048, parameters={"kid": "payer-key"})
    jwks_file = tmp_path / "payer.jwks.json"
    jwks_file.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    callback, callback_server = start_callback()
    store = ("--store", store_url)
    cli(
        "clients",
        "add",
        "payer",
        "--kind",
        "backend",
        "--jwks",
        str(jwks_file),
        "--scope",
        "system/*.cruds system/AuditEvent.rs",
        *store,
    )
    cli(
        "clients",
        "add",
        "coverage-app",
        "--kind",
        "app",
        "--redirect-uri",
        callback.uri,
        "--scope",
        "launch/patient launch openid fhirUser offline_access patient/*.rs",
        *store,
    )
    password = {"BILLABLE_PASSWORD": "correct horse battery"}
    cli(
        "users",
        "add",
        "guardian",
        "--fhir-user",
        "RelatedPerson/rp1",
        "--patient",
        "p1",
        "--patient",
        "p2",
        *store,
        env=password,
    )
    cli("users", "add", "ada", "--fhir-user", "Patient/p1", *store, env=password)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            *store,
            "--audit-key-file",
            str(tmp_path / "data" / "audit.key"),
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(process.stdout.read() if process.stdout else "server did not start")
    # Make the signing key now (RSA generation is slow on a busy machine); this also pins
    # the base URL to the address the tests use.
    httpx.get(f"{base}/auth/jwks", timeout=60)
    try:
        yield LiveServer(base, f"{base}/fhir", store_url, key, callback, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        callback_server.shutdown()
