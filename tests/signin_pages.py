"""Reading the hosted sign-in pages the way a browser's user would: the forms and their fields.

Shared by the in-process tests (tests/unit/test_signin*.py) and the peer tests that drive the
pages of a real issuer over HTTP (tests/integration/test_oidc_peers.py).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"_action": values.get("action", "")})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][values["name"]] = values.get("value", "")
        elif tag == "button" and values.get("name"):
            self.buttons.append((values["name"], values.get("value", "")))


def form_fields(html: str) -> dict[str, str]:
    """The fields of the page's one form (hidden ones with their values), `_action` its target."""
    parser = _Forms()
    parser.feed(html)
    assert len(parser.forms) == 1, f"expected one form on the page, found {len(parser.forms)}"
    return parser.forms[0]


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636 sections 4.1 and 4.2."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect, each once."""
    params = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in params.values()), location
    return {name: values[0] for name, values in params.items()}


def page_text(html: str) -> str:
    """What a person reads: the page without its tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
