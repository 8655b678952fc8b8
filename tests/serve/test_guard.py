"""The guard on its own: bytes counted as they stream, stalled bodies and headers timed out, strict
JSON; and hypothesis tests of the event and history parsers."""

import asyncio
import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys.serve.guard import BadJSON, BodyGuard, HeaderTimeoutH11, short_errors, strict_json, token_matches
from recsys.serve.models import EARLIEST, LATEST, Events, History

from .servers import serving


async def echo_app(scope, receive, send):
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % len(body)})


def call(guard, messages, headers=()):
    """Run ``guard`` on one POST whose body arrives as ``messages``; returns (status, body, receives)."""
    sent, pulled = [], []

    async def receive():
        pulled.append(1)
        if not messages:
            await asyncio.sleep(3600)  # the client stalls
        m = messages.pop(0)
        return m

    async def send(m):
        sent.append(m)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json"), *headers]}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), len(pulled)


def test_streamed_bytes_are_counted_and_reading_stops_at_the_limit():
    guard = BodyGuard(echo_app, max_body=1000)
    chunks = [{"type": "http.request", "body": b"x" * 100, "more_body": True} for _ in range(1000)]
    status, body, pulled = call(guard, chunks)
    assert status == 413 and b"at most 1000 bytes per request" in body
    assert pulled == 11  # 11 x 100 bytes pass the limit: not one chunk more is read


def test_a_body_within_the_limit_is_handed_on_whole():
    guard = BodyGuard(echo_app, max_body=1000)
    chunks = [{"type": "http.request", "body": b"[1,2]", "more_body": True}, {"type": "http.request", "body": b""}]
    assert call(guard, chunks)[:2] == (200, b"5")


def test_a_stalled_body_gets_a_408():
    guard = BodyGuard(echo_app, timeout=0.2)
    status, body, _ = call(guard, [{"type": "http.request", "body": b"{", "more_body": True}])
    assert status == 408 and b"stalled for 0.2 s" in body


def test_a_lying_content_length_is_refused_before_reading():
    guard = BodyGuard(echo_app, max_body=1000)
    for value in (b"5000", b"-1", b"1e3"):
        status, _, pulled = call(guard, [], headers=[(b"content-length", value)])
        assert (status, pulled) == (413, 0)


@pytest.mark.parametrize("text, message", [
    (b'{"t": NaN}', "NaN is not a JSON number"), (b'{"t": Infinity}', "Infinity is not a JSON number"),
    (b'[1e400]', "the number 1e400 is too large for a float"), (b'["\\udc00"]', "body[0]: holds a lone surrogate"),
    (b'{"\\ud800": 1}', "body: holds a lone surrogate"), (b"\xff\xfe", "the body is not UTF-8 text"),
])
def test_strict_json_refuses(text, message):
    with pytest.raises(BadJSON, match=message.replace("[", r"\[").replace("]", r"\]")):
        strict_json(text)


def test_tokens_compare_whole_bearer_values():
    assert token_matches("Bearer s3cret-token", "s3cret-token")
    assert not token_matches("Bearer s3cret-toke", "s3cret-token")
    assert not token_matches("s3cret-token", "s3cret-token") and not token_matches(None, "s3cret-token")


def test_validation_errors_are_short_and_never_echo_the_input():
    try:
        Events.model_validate({"events": [{"user_id": "u", "item_id": "x" * 10_000, "timestamp": "soon"}]})
    except ValidationError as e:
        line = short_errors(e.errors())
    assert line.startswith("events.0.item_id: String should have at most 256 characters")
    assert "xxxx" not in line and "soon" not in line and len(line) <= 400


class QuickTimeout(HeaderTimeoutH11):
    header_timeout = 0.5


def test_a_connection_that_trickles_its_headers_is_closed():
    with serving(echo_app, http=QuickTimeout, lifespan="off") as port:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: ")  # and nothing more
        slow.settimeout(10)
        start = time.monotonic()
        assert slow.recv(100) == b""  # closed by the server
        waited = time.monotonic() - start
        fine = socket.create_connection(("127.0.0.1", port))
        fine.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc")
        fine.settimeout(10)
        assert fine.recv(1000).startswith(b"HTTP/1.1 200")
        assert waited < 5


ids = st.text(min_size=1, max_size=300)
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.booleans(), st.none())
event = st.fixed_dictionaries({"item_id": st.one_of(ids, st.integers())},
                              optional={"user_id": st.one_of(ids, st.none(), st.integers()),
                                        "event": st.one_of(st.sampled_from(["view", "purchase"]), ids),
                                        "timestamp": numbers})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=5), numbers)
def test_the_parsers_accept_only_what_they_promise(events, k):
    """Whatever JSON arrives, the parsers either refuse it with a short error or give what the
    routes rely on: string ids of at most 256 characters, finite timestamps between 1970 and 2100,
    an integer k from 1 to 1000."""
    text = json.dumps({"history": events, "k": k}, allow_nan=True).encode()
    try:
        body = strict_json(text)
        parsed = History.model_validate(body)
    except BadJSON:
        return
    except ValidationError as e:
        assert len(short_errors(e.errors())) <= 400
        return
    assert type(parsed.k) is int and 1 <= parsed.k <= 1000
    for e in parsed.history:
        assert isinstance(e.item_id, str) and 1 <= len(e.item_id) <= 256
        assert e.timestamp is None or EARLIEST <= e.timestamp <= LATEST
