"""The load thread's queue (ingest.consumer): batches load in turn, and none commits past
one that failed. Pure: the Ingest's own methods on stand-ins, no broker."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from fueltrace.errors import WarehouseFull
from ingest.consumer import Ingest, LoadSkipped, _InFlight


def loader(fail_on: set[str]) -> Any:
    """An Ingest stand-in whose loads are recorded, failing for the batches named."""
    loads: list[str] = []

    def load(batch: str, loaded: str) -> str:
        if batch in fail_on:
            raise WarehouseFull(f"no space for {batch}")
        loads.append(batch)
        return f"result {batch}"

    return SimpleNamespace(_load_failed=threading.Event(), _load=load, loads=loads)


def future(result: object = None, error: BaseException | None = None) -> Future[Any]:
    """A finished future: what the decode thread (or the load thread) handed on."""
    f: Future[Any] = Future()
    if error is None:
        f.set_result(result)
    else:
        f.set_exception(error)
    return f


def test_after_a_failed_load_the_batches_queued_behind_it_do_not_load() -> None:
    fake = loader(fail_on={"b2"})
    assert Ingest._load_decoded(fake, "b1", future("decoded b1")) == ("decoded b1", "result b1")
    with pytest.raises(WarehouseFull):
        Ingest._load_decoded(fake, "b2", future("decoded b2"))
    with pytest.raises(LoadSkipped):  # its offsets would pass b2's records
        Ingest._load_decoded(fake, "b3", future("decoded b3"))
    assert fake.loads == ["b1"]
    fake._load_failed.clear()  # what run() does before it starts again from the warehouse
    assert Ingest._load_decoded(fake, "b3", future("decoded b3"))[1] == "result b3"


def test_a_decode_that_raises_stops_the_queue_too() -> None:
    fake = loader(fail_on=set())
    with pytest.raises(RuntimeError):
        Ingest._load_decoded(fake, "b1", future(error=RuntimeError("decoder bug")))
    with pytest.raises(LoadSkipped):
        Ingest._load_decoded(fake, "b2", future("decoded b2"))
    assert fake.loads == []


def test_finish_load_raises_the_first_failure_and_empties_the_queue() -> None:
    published: list[str] = []

    def publish(in_flight: _InFlight, *, commit: bool) -> None:
        in_flight.future.result()
        published.append(in_flight.batch)

    queue = deque([
        _InFlight("b1", future("ok")),  # type: ignore[arg-type]
        _InFlight("b2", future(error=WarehouseFull("disk full"))),  # type: ignore[arg-type]
        _InFlight("b3", future(error=LoadSkipped("behind b2"))),  # type: ignore[arg-type]
    ])  # fmt: skip
    fake = SimpleNamespace(_in_flight=queue, _publish=publish)
    with pytest.raises(WarehouseFull):
        Ingest.finish_load(fake)  # type: ignore[arg-type]
    assert published == ["b1"] and not queue
