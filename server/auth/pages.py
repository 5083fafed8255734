"""The two HTML pages of the embedded authorization server: login and patient picker."""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
    "label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]"
    "{width:100%;padding:.4rem}button{margin-top:1rem;padding:.5rem 1.2rem}"
    ".error{color:#a00}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(client_name: str, scopes: list[str], request_token: str, error: str = "") -> str:
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    message = f"<p class=error>{escape(error)}</p>" if error else ""
    return _page(
        "Sign in to Billable",
        f"<h1>Sign in</h1><p><b>{escape(client_name)}</b> asks for:</p><ul>{items}</ul>"
        f"{message}<form method=post action=login>"
        f"<input type=hidden name=request value='{escape(request_token)}'>"
        "<label for=username>User name</label>"
        "<input type=text id=username name=username autocomplete=username required>"
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        "<button type=submit>Sign in and allow</button></form>",
    )


def picker_page(
    patients: list[str],
    request_token: str,
    session_token: str,
    labels: dict[str, str] | None = None,
) -> str:
    """``labels``: name and birth date per patient id (server.auth.picker_labels)."""
    labels = labels or {}
    options = "".join(
        f"<label><input type=radio name=patient value='{escape(p)}' required>"
        f" {escape(labels.get(p, 'Patient/' + p))}"
        f"{f' <small>Patient/{escape(p)}</small>' if p in labels else ''}</label>"
        for p in patients
    )
    return _page(
        "Choose a patient",
        "<h1>Choose a patient</h1><form method=post action=pick>"
        f"<input type=hidden name=request value='{escape(request_token)}'>"
        f"<input type=hidden name=session value='{escape(session_token)}'>"
        f"{options}<button type=submit>Continue</button></form>",
    )


def error_page(message: str) -> str:
    return _page("Authorization error", f"<h1>Authorization error</h1><p>{escape(message)}</p>")
