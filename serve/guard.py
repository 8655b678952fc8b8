"""What stands between the network and the engine: body limits counted on bytes, read timeouts,
strict JSON, short error bodies, tokens for the routes that change things, and trusted hosts.

- :class:`BodyGuard` (ASGI): reads a request's body itself, counting the bytes as they stream in
  (chunked transfer included) and stopping at :data:`MAX_BODY` with a 413; a body that stalls for
  :data:`READ_TIMEOUT` seconds gets a 408; a JSON body that holds ``NaN`` or ``Infinity``, a number
  too large for a float, or a lone surrogate gets a 422. The body it read is then handed on as is.
- :class:`HeaderTimeoutH11` (uvicorn's HTTP/1.1 protocol): a connection that has not sent a whole
  request line and headers within :data:`HEADER_TIMEOUT` seconds is closed, so that clients that
  trickle bytes cannot hold connections open.
- :func:`short_errors`: validation errors as one short line that never echoes the input.
- :func:`token_matches`: the admin routes and, when configured, ``POST /events`` need a bearer
  token, compared in constant time; the admin routes are off without one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY = 256 * 1024  # bytes of a request body
READ_TIMEOUT = 10.0  # seconds a request body may stall
HEADER_TIMEOUT = 10.0  # seconds to send a request line and its headers
EXCERPT = 200  # characters of an error message that comes from the input


class BadJSON(ValueError):
    """A JSON body that the service refuses (see :func:`strict_json`)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON(f"the number {text[:20]} is too large for a float")
    return value


def _no_constant(name: str):
    raise BadJSON(f"{name} is not a JSON number; send finite numbers only")


def _check_text(obj, path: str = "body") -> None:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise BadJSON(f"{path}: holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_text(k, path)
            _check_text(v, f"{path}.{k}"[:80])
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_text(v, f"{path}[{i}]"[:80])


def strict_json(body: bytes):
    """Parse ``body`` as JSON, refusing ``NaN`` / ``Infinity``, non-finite numbers and lone surrogates.

    >>> strict_json(b'{"k": 10, "t": 1.5}')
    {'k': 10, 't': 1.5}
    >>> strict_json(b'{"k": NaN}')
    Traceback (most recent call last):
    ...
    recsys.serve.guard.BadJSON: NaN is not a JSON number; send finite numbers only
    """
    try:
        text = body.decode("utf-8")  # JSON over HTTP is UTF-8 (RFC 8259); json.loads would guess UTF-16 too
    except UnicodeDecodeError:
        raise BadJSON("the body is not UTF-8 text") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as e:
        raise BadJSON(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    _check_text(obj)
    return obj


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail[:EXCERPT * 2]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """ASGI middleware: see the module doc."""

    def __init__(self, app, max_body: int = MAX_BODY, timeout: float = READ_TIMEOUT):
        self.app, self.max_body, self.timeout = app, max_body, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        size = headers.get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_body):
            return await _send_json(send, 413, f"request body of {size.decode(errors='replace')[:20]} bytes: at most "
                                               f"{self.max_body} bytes per request; split it")
        chunks, total = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                return await _send_json(send, 408, f"the request body stalled for {self.timeout:g} s; send it whole")
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:  # counted on the bytes, chunked bodies included: stop reading here
                return await _send_json(send, 413, f"request body over {self.max_body} bytes: at most "
                                                   f"{self.max_body} bytes per request; split it")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body and b"json" in headers.get(b"content-type", b""):
            try:
                strict_json(body)
            except BadJSON as e:
                return await _send_json(send, 422, str(e))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's line and headers (see the module doc)."""

    header_timeout = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def short_errors(errors: list[dict]) -> str:
    """Validation errors as one line, each ``location: message``, never echoing the input.

    >>> short_errors([{"loc": ("body", "k"), "msg": "Input should be a valid integer", "input": "10"}])
    'body.k: Input should be a valid integer'
    """
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    return "; ".join(parts)[:EXCERPT * 2]


def token_matches(given: str | None, expected: str) -> bool:
    """``Authorization: Bearer <token>`` compared with ``expected`` in constant time."""
    if not given or not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given[len("Bearer "):].encode(), expected.encode())
