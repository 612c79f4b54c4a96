"""Serve the review page on 127.0.0.1 only, on a free or given port, behind a fresh token.

The socket is bound here rather than by uvicorn so that port 0 can be resolved to the real
port before the URL is printed, and so that no option exists that would expose the page (and
its trajectories) beyond this machine.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable

from fcsft.errors import UserError, require
from fcsft.review.store import ReviewStore

HOST = "127.0.0.1"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def bind(port: int = 0) -> socket.socket:
    """A listening socket on the loopback interface; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {HOST}:{port} ({exc.strerror}); pass --port 0 for a free port"
        ) from None
    sock.listen(64)
    return sock


def review_url(sock: socket.socket, token: str) -> str:
    return f"http://{HOST}:{sock.getsockname()[1]}/?token={token}"


def build_server(store: ReviewStore, token: str):
    """A uvicorn Server for the review app (not started), quiet except for warnings."""
    require("fastapi", "review")
    uvicorn = require("uvicorn", "review")
    from fcsft.review.app import create_app

    config = uvicorn.Config(create_app(store, token), log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(store: ReviewStore, port: int = 0, on_ready: Callable[[str], None] = print) -> None:
    """Serve until interrupted; `on_ready` gets the URL (with a new token) before serving."""
    token = new_token()
    server = build_server(store, token)
    sock = bind(port)
    with sock:
        on_ready(review_url(sock, token))
        server.run(sockets=[sock])
