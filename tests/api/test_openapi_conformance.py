"""Schemathesis: the running app (in-process ASGI) answers as its OpenAPI document says —
no 5xx on generated input; every status, content type, header and body as documented.

Driven through schemathesis's Python API, each operation with a few generated cases
(derandomized: the same cases every run), under an admin token.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from fueltrace.api.app import create_app
from tests.api.conftest import World

EXAMPLES = 3
#: Schema-valid input that the service's own rules refuse, by design, with 409 or 422: a
#: reconciliation range from > to, an illegal case transition, a closed case's
#: resolution missing, a record breaking the semantic rules. Every other check runs.
EXCLUDED = [checks.positive_data_acceptance]


class Acknowledged:
    """A producer whose every record is acknowledged at once (the gateway's path through a
    real broker is tested end to end in test_gateway.py)."""

    sent = 0

    def send(self, topic: str, key: bytes, value: bytes) -> Acknowledged:
        self.sent += 1
        return self

    def get(self, timeout: float | None = None) -> None:
        return None

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_the_api_answers_as_its_openapi_document_says(world: World) -> None:
    producer = Acknowledged()
    app = create_app(world.settings, world.con, web=None, producer=producer,  # type: ignore[arg-type]
                     bootstrap="stub:9092")  # fmt: skip
    headers = world.headers("admin")
    failures: list[str] = []
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 30
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def check(case: Any) -> None:
                case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # report every failing operation
                failures.append(f"{operation.label}: {exc}"[:2000])
    assert failures == [], "\n\n".join(failures)
    assert producer.sent > 0
