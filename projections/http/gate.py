"""The door in front of the routes: limits before work.

FastAPI reads and parses a route's body before it resolves the route's dependencies,
so a key checked in a dependency comes too late: an unauthenticated caller could make
the API buffer and parse any body. `Gate` is a plain ASGI middleware that runs first
and, for a request to a write route (`POST` to a route under `/v1/`, `write_routes`),
in this order:

1. the key must cover the route's scope (`write_scope`): 401 without a valid one, 403
   for another scope, 429 past the key's rate (taken here, once; the route reads the
   caller from the scope state, `CALLER`), or past the client address's rate of
   failed authentications (`Authenticator.from_address`). Nothing of the body has
   been received yet;
2. a `Content-Length` above `max_body_bytes` is 413, still unread;
3. the body is received chunk by chunk and counted (a chunked body has no length):
   past `max_body_bytes` it is 413 and the rest is never asked for;
4. the route gets the buffered body, replayed.

Every other request passes straight through (GET, HEAD and OPTIONS after one
comparison): those routes read no body (the router's 404 and 405 neither), the read
routes' keys are checked and rate-limited by their dependency, so the entitlement
check's path is unchanged. Writes are logged with the key's name, never the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from re import Pattern
from typing import Any

from fastapi.routing import APIRoute

from projections.http.auth import (
    ADMIN_HEADER,
    CALLER,
    KEY_HEADER,
    Authenticator,
    request_address,
)
from projections.http.keys import Scope
from projections.read.errors import RateLimited, ReadSideError, TooLarge

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY = KEY_HEADER.encode("latin-1")
_ADMIN = ADMIN_HEADER.encode("latin-1")
log = logging.getLogger("streambill.api")


WriteRoutes = Sequence[tuple[Pattern[str], Scope]]


def write_routes(routes: Sequence[object]) -> list[tuple[Pattern[str], Scope]]:
    """(path pattern, scope) of each write route of an app (`POST` under `/v1/`):
    `ingest` for usage, `admin` for the others."""
    return [
        (route.path_regex, "ingest" if route.path == "/v1/usage" else "admin")
        for route in routes
        if isinstance(route, APIRoute)
        and "POST" in (route.methods or ())
        and route.path.startswith("/v1/")
    ]


def write_scope(writes: WriteRoutes, method: str, path: str) -> Scope | None:
    """The key scope a request needs before its body is read, or None for a request
    no write route serves (the router answers 404 or 405 without reading the body;
    the portal's sign-out reads none)."""
    if method != "POST":
        return None
    for pattern, scope in writes:
        if pattern.match(path):
            return scope
    return None


def error_content(exc: ReadSideError) -> tuple[dict[str, str], dict[str, str]]:
    """The JSON body and extra headers of an error answer (the API's one error shape:
    `WWW-Authenticate` on 401, `Retry-After` on 429)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return {"error": exc.code, "detail": exc.detail}, headers


class Gate:
    def __init__(
        self, app: ASGIApp, auth: Authenticator, max_body_bytes: int, writes: WriteRoutes
    ) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.writes = writes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        need = write_scope(self.writes, scope["method"], scope["path"])
        if need is None:
            await self.app(scope, receive, send)
            return
        name = None
        try:
            presented = _presented(scope["headers"])
            caller = self.auth.from_address(
                request_address(scope), lambda: self.auth.key(presented, need)
            )
            scope.setdefault("state", {})[CALLER] = caller
            name = caller.name
            body = await self._body(scope["headers"], receive)
        except ReadSideError as exc:
            log.warning("%s %s %d key=%s", scope["method"], scope["path"], exc.status, name)
            await _answer(send, exc)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, replay, sent)
        log.info("%s %s %d key=%s", scope["method"], scope["path"], status, name)

    async def _body(self, headers: list[tuple[bytes, bytes]], receive: Receive) -> bytes:
        """The whole body, or `TooLarge` as soon as it is known to exceed the limit."""
        limit = self.max_body_bytes
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise TooLarge(f"the body is longer than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # a disconnect: nobody to answer
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the body is longer than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    key = admin = None
    for name, value in headers:
        if name == _KEY:
            key = value.decode("latin-1")
        elif name == _ADMIN:
            admin = value.decode("latin-1")
    return key if key is not None else admin


async def _answer(send: Send, exc: ReadSideError) -> None:
    content, extra = error_content(exc)
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
