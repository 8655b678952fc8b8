"""Schemathesis over the OpenAPI schema: every route, every parameter, valid and invalid data; any
5xx fails. The admin token is sent, so that the reload route is exercised past its checks.

Each operation's cases come from schemathesis's hypothesis strategy (``as_strategy``), run by a
plain hypothesis test inside a pytest test that gets the built artifact from a fixture.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from recsys.serve.app import create_app

ADMIN = "an-admin-token-of-some-length"
EXAMPLES = 60  # per route and mode: the suite stays quick; raise it locally to dig deeper


@pytest.fixture(scope="module")
def api(shop, tmp_path_factory):
    art, _ = shop
    app = create_app(art, tmp_path_factory.mktemp("fuzz") / "events.sqlite", rerank=False, admin_token=ADMIN,
                     allowed_hosts=["testserver"])  # the Host schemathesis's ASGI client sends
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(api):
    return [result.ok() for result in api.get_all_operations()]


def takes_input(op) -> bool:
    """Whether the operation has parameters or a body: an invalid request of it can be made."""
    raw = op.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def test_the_schema_lists_every_route(api):
    routes = {(op.method.upper(), op.path) for op in operations(api)}
    assert routes == {("GET", "/health"), ("GET", "/recommend"), ("POST", "/recommend"), ("GET", "/similar"),
                      ("GET", "/needs"), ("POST", "/events"), ("POST", "/admin/reload")}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_route_answers_a_server_error(api, mode):
    seen = {}
    ops = [op for op in operations(api) if mode == GenerationMode.POSITIVE or takes_input(op)]
    for op in ops:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def no_5xx(case):
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
            seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"

        no_5xx()
    assert len(seen) == len(ops) == (7 if mode == GenerationMode.POSITIVE else 6), seen
    codes = set().union(*seen.values())
    assert (200 in codes) if mode == GenerationMode.POSITIVE else (422 in codes), seen
