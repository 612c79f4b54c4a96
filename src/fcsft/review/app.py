"""The review web app: one page, a JSON API over the store, and a session token on everything.

Imported only once fastapi is known to be installed (see `fcsft.review.server`). The token
keeps other local users and web pages that guess the port out: every request must carry it,
as `?token=` (the page and its assets) or as the `X-Review-Token` header (the API calls).
The Content-Security-Policy allows nothing but this server, so the page cannot load anything
from the internet even by mistake.
"""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, model_validator

from fcsft.formats import FormatError, get_format
from fcsft.review.store import Item, ReviewStore

TOKEN_HEADER = "x-review-token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it elsewhere
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
ASSETS = {"review.js": "text/javascript", "review.css": "text/css"}


class DecisionIn(BaseModel):
    decision: Literal["accepted", "rejected"]
    reason: str = ""

    @model_validator(mode="after")
    def _rejection_says_why(self) -> DecisionIn:
        if self.decision == "rejected" and not self.reason.strip():
            raise ValueError("a rejection needs a reason")
        return self


def static_text(name: str) -> str:
    return (resources.files("fcsft.review") / "static" / name).read_text(encoding="utf-8")


def item_view(item: Item) -> dict[str, Any]:
    """What the page shows for one item: the parsed trajectory, or the raw record and why not."""
    view: dict[str, Any] = {
        "item": item.summary(),
        "reasons": [verdict.to_json() for verdict in item.reasons],
        "trajectory": None,
        "parse_error": None,
        "record": None,
    }
    try:
        view["trajectory"] = get_format("openai").parse(item.record or {}).to_json()
    except FormatError as exc:
        view["parse_error"] = str(exc)
        view["record"] = item.record
    return view


def create_app(store: ReviewStore, token: str) -> FastAPI:
    app = FastAPI(title="fcsft review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
        if secrets.compare_digest(given.encode(), token.encode()):
            response = await call_next(request)
        else:
            response = PlainTextResponse(
                "forbidden: open the URL with ?token=... that `fcsft review` printed",
                status_code=403,
            )
        response.headers.update(SECURITY_HEADERS)
        return response

    def progress() -> dict[str, int]:
        reviewed, total = store.progress()
        return {"reviewed": reviewed, "total": total}

    def existing(ident: str) -> Item:
        item = store.item(ident)
        if item is None:
            raise HTTPException(404, f"no sampled item {ident!r}")
        return item

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return static_text("index.html").replace("__TOKEN__", token)

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(static_text(name), media_type=ASSETS[name])

    @app.get("/api/items")
    def items() -> dict[str, Any]:
        return {"items": [item.summary() for item in store.items()], "progress": progress()}

    @app.get("/api/items/{ident:path}/view")
    def view(ident: str) -> dict[str, Any]:
        return item_view(existing(ident))

    @app.post("/api/items/{ident:path}/decision")
    def decide(ident: str, body: DecisionIn) -> dict[str, Any]:
        existing(ident)
        item = store.decide(ident, body.decision, body.reason)
        return {"item": item.summary(), "progress": progress()}

    @app.delete("/api/items/{ident:path}/decision")
    def undecide(ident: str) -> dict[str, Any]:
        store.undecide(existing(ident).id)
        return {"item": existing(ident).summary(), "progress": progress()}

    return app
