"""Who may do what: the access token, the cookie it is kept in, and cross-site request checks.

- Every control action (start, abort, resume) needs the token: a ``Bearer`` header (scripts), or
  the ``rram_hil_token`` cookie (``HttpOnly``, ``SameSite=Strict``) that ``/login?token=...`` sets,
  together with the form's CSRF field (an HMAC of the token) and an ``Origin`` (or ``Referer``)
  that is this server's own. A browser on another site can send neither the field nor our Origin.
- On a loopback address anyone on the machine may browse; on any other address every page needs
  the token too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

TOKEN_ENV = "RRAM_HIL_TOKEN"
COOKIE = "rram_hil_token"
CSRF_FIELD = "csrf"
MIN_TOKEN_CHARS = 16


class Forbidden(Exception):
    """A request without the right to do what it asks; the message says why (one line)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """The access token and whether it was generated (``False``: from ``RRAM_HIL_TOKEN``).

    Raises:
        ValueError: ``RRAM_HIL_TOKEN`` is set but shorter than :data:`MIN_TOKEN_CHARS` characters.
    """
    env = os.environ if environ is None else environ
    given = env.get(TOKEN_ENV)
    if given is not None:
        given = given.strip()
        if len(given) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"{TOKEN_ENV}: the access token must be at least {MIN_TOKEN_CHARS} characters "
                f"(got {len(given)})"
            )
        return given, False
    return secrets.token_urlsafe(24), True


def csrf_value(token: str) -> str:
    """The CSRF field's value: derived from the token, so it needs no server-side session."""
    return hmac.new(token.encode(), b"rram-hil csrf", hashlib.sha256).hexdigest()


def has_token(request: Request, token: str) -> bool:
    """The request carries the token (Bearer header or cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and hmac.compare_digest(cookie.encode(), token.encode())


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def check_control(request: Request, token: str, form_csrf: str | None) -> None:
    """Allow a control action only with the token and from this server's own pages.

    Raises:
        Forbidden: no token (401), a wrong one, or a cross-site request (403).
    """
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        if not has_token(request, token):
            raise Forbidden("token: the access token is wrong", 403)
        return  # a header no other site's page can make a browser send
    if request.cookies.get(COOKIE) is None:
        raise Forbidden("token: this action needs the access token (open /login?token=...)", 401)
    if not has_token(request, token):
        raise Forbidden("token: the access token is wrong", 403)
    own = _own_origin(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != own:
            raise Forbidden(f"origin: cross-site request from '{origin}' refused")
    else:
        referer = request.headers.get("referer")
        if referer is None:
            raise Forbidden("origin: a control request must come from this server's pages (no Origin or Referer)")
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" != own:
            raise Forbidden(f"origin: cross-site request from '{parts.scheme}://{parts.netloc}' refused")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("origin: cross-site request refused")
    if form_csrf is None or not hmac.compare_digest(form_csrf.encode(), csrf_value(token).encode()):
        raise Forbidden("csrf: the form's CSRF field is missing or wrong (reload the page)")


def origin_record(request: Request, via: str) -> dict[str, str]:
    """Where a control request came from, as recorded in the run's events."""
    client = request.client
    return {
        "via": via,
        "client": f"{client.host}:{client.port}" if client else "",
        "user_agent": request.headers.get("user-agent", "")[:200],
        "origin": request.headers.get("origin") or request.headers.get("referer") or "",
    }
