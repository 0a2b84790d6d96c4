"""`/login` and `/logout`: a browser signs in with a token and gets a session cookie.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page can send it,
which is what keeps the POST routes safe from cross-site requests) and Secure when served over
HTTPS. It holds a random id whose hash is a row of `api_browser_sessions`; revoking the token or
signing out deletes the row.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evmonitor.api import queries
from evmonitor.api.deps import COOKIE, ttl
from evmonitor.api.page import login_page

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return HTMLResponse(login_page())


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=500)] = "") -> Response:
    settings = request.app.state.settings
    with request.app.state.engine.begin() as conn:
        found = queries.token_for_hash(conn, token_sha256=queries.token_hash(token.strip())) if token.strip() else None
        if found is None:
            return HTMLResponse(login_page("That token is not valid (or was revoked)."), status_code=401)
        session = queries.start_browser_session(conn, found["id"], ttl(settings))
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, session, max_age=int(settings.api_session_ttl_s), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> RedirectResponse:
    if request.cookies.get(COOKIE):
        with request.app.state.engine.begin() as conn:
            queries.end_browser_session(conn, request.cookies[COOKIE])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
