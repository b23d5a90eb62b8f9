"""Limits of the service: the size and media type of a request body, the rate of a
sender's uploads."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fueltrace.api.errors import RateLimited, UnsupportedMediaType, response


class TokenBuckets:
    """A token bucket per key (a station, a depot): ``rate`` per second, ``burst`` deep.

    In memory: one process serves the API. Buckets idle long enough to be full again are
    forgotten, so the table stays as small as the set of recently active senders.
    """

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise :class:`RateLimited`."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                wait = math.ceil((1.0 - tokens) / self.rate)
                self._buckets[key] = (tokens, now)
                raise RateLimited(
                    f"more than {self.rate:g} requests per second (bursts of {self.burst}) "
                    f"from {key}; retry after {wait} s", headers={"Retry-After": str(wait)})
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:
                self._forget(now)

    def _forget(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at > full_after:
                del self._buckets[key]


_BODY_METHODS = {"POST", "PUT", "PATCH"}


def media_type_problem(content_type: str) -> str | None:
    """Why a request body of ``content_type`` is not JSON the API reads, if it is not:
    ``application/json`` (or ``application/…+json``), in UTF-8."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):  # fmt: skip
        return f"Content-Type {content_type!r} is not accepted: the API reads JSON bodies"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return f"Content-Type {content_type!r}: JSON bodies are UTF-8, not {charset}"
    return None


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` is refused with 413, by
    its Content-Length before a byte of it is read, or as it arrives without one; a body
    sent to the API with a Content-Type other than JSON is refused with 415 before it is
    read (no Content-Type: taken as JSON).

    413 is raised as Starlette's HTTPException, which FastAPI's body parsing lets through
    to the one error handler (any other exception there would become a 400)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> HTTPException:
        return HTTPException(413, f"the request body is larger than {self.max_bytes} bytes; "
                             "send fewer records per request")  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        content_type: str | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if (content_type is not None and scope.get("method") in _BODY_METHODS
                and str(scope.get("path", "")).startswith("/api/")):  # fmt: skip
            problem = media_type_problem(content_type)
            if problem is not None:
                error = UnsupportedMediaType(
                    f"{problem}; send Content-Type: application/json",
                    details=[{"message": problem, "where": "header.Content-Type",
                              "accepted": ["application/json"]}])  # fmt: skip
                request_id = str(scope.get("state", {}).get("request_id", "-"))
                await response(error, request_id)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if declared > self.max_bytes:
                raise self._error()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited, send)
