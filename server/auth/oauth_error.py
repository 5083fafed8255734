"""The error answer of the OAuth endpoints (RFC 6749 section 5.2): a JSON body with
``error`` and ``error_description``, never cached; a 401 names the Basic scheme."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="billable"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            self.status,
            headers=headers,
        )
