"""Limits of the service: the size of a request body, the rate of a sender's uploads."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fueltrace.api.errors import RateLimited


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


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` is refused with 413, by
    its Content-Length before a byte of it is read, or as it arrives without one.

    Raised as Starlette's HTTPException, which FastAPI's body parsing lets through to the
    one error handler (any other exception there would become a 400)."""

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
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
                break
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
