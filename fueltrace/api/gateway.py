"""The station gateway: records as JSON over HTTPS → schema and rules → Avro → Kafka.

``POST /api/v1/gateway/{type}`` takes one record, ``…/{type}/batch`` takes
``{"records": [...]}``. Each record is checked against its schema and the semantic rules
of its type (the code ``fueltrace push`` uses); the good ones are encoded (one record in
single-object encoding, a batch as Avro container files of up to 500 records) and sent
to the type's topic, keyed as the SPEC says, and the answer waits for the broker's
acknowledgement (acks=all). Bad records are answered one by one with the reason, and
the rest is still sent; when none is good the answer is 422 ``records_rejected``.

A station token sends its own station's records (a depot token its depot's dispatches);
one record of anyone else's refuses the whole upload with 403, nothing sent. With an
``Idempotency-Key`` header the answer is kept: the same key and body again get the same
answer (header ``Idempotent-Replayed: true``) and nothing is sent twice; the same key
with another body is 422 ``idempotency_key_reused``; while the first is in flight, 409.
"""


import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from kafka.producer.future import FutureRecordMetadata
from starlette.concurrency import run_in_threadpool

from fueltrace import metrics
from fueltrace.api.auth import Anyone, refuse
from fueltrace.api.errors import (
    COMMON_RESPONSES,
    Conflict,
    ErrorBody,
    Forbidden,
    InvalidRequest,
    Unavailable,
)
from fueltrace.api.limits import TokenBuckets
from fueltrace.api.models import Receipt
from fueltrace.api.schemas import record_json_schema
from fueltrace.api.services import Services, services
from fueltrace.errors import RecordRejected
from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.frames import to_frame
from ingest.jsonl import convert_record, parse_json
from ingest.kafka_client import kafka_errors
from ingest.records import SPECS
from ingest.topics import record_topic
from ingest.validate import validate
from schemas import default_registry
from warehouse.access import Principal, find_receipt, request_digest, store_receipt
from warehouse.access import Receipt as Stored

log = logging.getLogger(__name__)
#: Who may send which record type, and the field that must carry the token's scope.
SENDERS: dict[str, dict[str, str | None]] = {
    **{t: {"station": "station_id", "admin": None}
       for t in ("sale", "tank_reading", "delivery", "vapor", "device_status")},
    "dispatch": {"depot": "depot_id", "admin": None},
    "facility": {"admin": None},
}  # fmt: skip
CONTAINER_RECORDS = 500


class Gateway:
    """The gateway's state: rate buckets, and the idempotency keys in flight."""

    def __init__(self, settings: Settings) -> None:
        self.buckets = TokenBuckets(settings.gateway_rate_per_s, settings.gateway_burst)
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def begin(self, sender: str, key: str) -> None:
        with self._lock:
            if (sender, key) in self._in_flight:
                raise Conflict(f"an upload with Idempotency-Key {key!r} is still in progress; "
                               "retry when it has been answered", code="idempotency_in_progress",
                               headers={"Retry-After": "1"})  # fmt: skip
            self._in_flight.add((sender, key))

    def end(self, sender: str, key: str) -> None:
        with self._lock:
            self._in_flight.discard((sender, key))


def _malformed(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="malformed_json",
                          details=[{"message": message, "where": "body"}])  # fmt: skip


def _parse(body: bytes, batch: bool, max_records: int) -> list[Any]:
    """The records of an upload: UTF-8 JSON (a UTF-8 byte-order mark is skipped; UTF-16
    and the other encodings ``json.loads`` would guess are refused, as RFC 8259 asks)."""
    try:
        text = body.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset "
                         f"{exc.start}; send JSON encoded as UTF-8") from None  # fmt: skip
    try:
        value = parse_json(text)
    except RecordRejected as exc:
        raise _malformed(f"the body is {exc.detail}") from None
    if not batch:
        if not isinstance(value, dict):
            raise _malformed("the body must be one record, a JSON object (many records go "
                             "to …/batch)")  # fmt: skip
        return [value]
    records = value.get("records") if isinstance(value, dict) else None
    if not isinstance(records, list) or not records:
        raise _malformed('the body must be {"records": [record, …]} with at least one')
    if len(records) > max_records:
        message = f"{len(records)} records in one batch; at most {max_records}"
        raise InvalidRequest(message, code="too_many_records",
                             details=[{"message": message, "where": "body.records"}])
    return records


def _check_sender(request: Request, who: Principal, record_type: str,
                  records: list[Any]) -> None:  # fmt: skip
    """403 unless every record is the caller's own (a station's, a depot's). A record
    whose field is missing, null or not a string names no one: the schema refuses it."""
    field = SENDERS[record_type].get(who.role)
    if field is None:
        return
    foreign = [i for i, r in enumerate(records)
               if isinstance(r, dict) and isinstance(r.get(field), str)
               and r[field] != who.scope]  # fmt: skip
    if foreign:
        refuse(request, 403, "other_sender", who, record_type=record_type,
               records=len(foreign))  # fmt: skip
        raise Forbidden(f"a {who.role} token sends its own records only ({field} = "
                        f"{who.scope}); {len(foreign)} records are not: nothing was sent")


Checked = tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]


def _too_big(value: Any, path: str = "") -> str | None:
    """The path of the first integer a 64-bit Avro long cannot hold, if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        return path if not -(2**63) <= value < 2**63 else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, inner in items:
        found = _too_big(inner, f"{path}{key}" if str(key).startswith("[") or not path
                         else f"{path}.{key}")  # fmt: skip
        if found is not None:
            return found
    return None


def _check(record_type: str, records: list[Any], settings: Settings) -> Checked:
    """(index, datum) of the records that pass the schema and the rules; the errors."""
    schema = default_registry().current(record_type).schema
    good: list[tuple[int, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(records):
        try:
            datum = convert_record(raw, schema)
            where = _too_big(datum)
            if where is not None:
                raise RecordRejected("schema_violation", f"{where}: out of the range of a "
                                     "64-bit integer", field=where)  # fmt: skip
            good.append((index, datum))
        except RecordRejected as exc:
            errors.append({"index": index, "reason": exc.reason, "field": exc.field,
                           "message": exc.detail})  # fmt: skip
    if good:
        rows = [{**d, "src_partition": 0, "src_offset": i, "src_index": 0} for i, d in good]
        _, bad = validate(record_type, to_frame(record_type, rows), settings)
        rejected = set()
        for index, reason, field, detail in bad.select(
            "src_offset", "reason", "field", "detail"
        ).iter_rows():
            rejected.add(index)
            errors.append({"index": index, "reason": reason, "field": field, "message": detail})
        good = [(i, d) for i, d in good if i not in rejected]
    errors.sort(key=lambda e: e["index"])
    return good, errors


def _send(svc: Services, record_type: str, records: list[dict[str, Any]], batch: bool) -> int:
    """Produce and wait for every acknowledgement; the number of messages."""
    if svc.producer is None or svc.bootstrap is None:
        raise Unavailable("the gateway has no Kafka producer in this process")
    version = default_registry().current(record_type)
    key_field = SPECS[record_type].kafka_key
    topic = record_topic(svc.settings, record_type)
    futures: list[FutureRecordMetadata] = []
    with kafka_errors(svc.bootstrap):
        if not batch or record_type == "dispatch":  # a dispatch's key is its own id
            for record in records:
                futures.append(svc.producer.send(topic, key=record[key_field].encode(),
                                                 value=encode_single(version, record)))
        else:
            by_key: dict[str, list[dict[str, Any]]] = {}
            for record in records:
                by_key.setdefault(record[key_field], []).append(record)
            for key, group in by_key.items():
                for i in range(0, len(group), CONTAINER_RECORDS):
                    value = encode_container(version, group[i:i + CONTAINER_RECORDS])
                    futures.append(svc.producer.send(topic, key=key.encode(), value=value))
        for future in futures:  # each waits for its own acknowledgement (no global flush)
            future.get(timeout=svc.settings.broker_timeout_s)
    return len(futures)


def _answer(receipt: dict[str, Any], headers: dict[str, str]) -> JSONResponse:
    if receipt["accepted"] == 0:
        first = receipt["errors"][0]
        raise InvalidRequest(f"all {receipt['received']} records were rejected (first: record "
                             f"{first['index']}: {first['reason']}: {first['message']})",
                             code="records_rejected", details=receipt["errors"],
                             headers=headers)  # fmt: skip
    return JSONResponse(receipt, headers=headers)


def _upload(request: Request, svc: Services, who: Principal, record_type: str, body: bytes,
            batch: bool, key: str | None) -> JSONResponse:  # fmt: skip
    settings = svc.settings
    timeout = settings.api_query_timeout_s
    digest = request_digest(f"{record_type}{'/batch' if batch else ''}", body)
    if key is not None:
        stored = svc.warehouse.run(timeout, find_receipt, who.sender, key, what="receipt")
        if stored is not None:
            if stored.request_sha256 != digest:
                raise InvalidRequest(f"Idempotency-Key {key!r} was used for another upload; "
                                     "use a new key for new content",
                                     code="idempotency_key_reused")  # fmt: skip
            metrics.GATEWAY_RECORDS.labels(record_type, "replayed").inc(
                stored.response["received"])
            return _answer({**stored.response, "replayed": True},
                           {"Idempotent-Replayed": "true"})  # fmt: skip
    records = _parse(body, batch, settings.gateway_max_records)
    _check_sender(request, who, record_type, records)
    good, errors = _check(record_type, records, settings)
    messages = _send(svc, record_type, [d for _, d in good], batch) if good else 0
    receipt = Receipt.model_validate({
        "record_type": record_type, "received": len(records), "accepted": len(good),
        "rejected": len(errors), "messages": messages, "errors": errors,
        "idempotency_key": key, "replayed": False}).model_dump()  # fmt: skip
    metrics.GATEWAY_RECORDS.labels(record_type, "accepted").inc(len(good))
    metrics.GATEWAY_RECORDS.labels(record_type, "rejected").inc(len(errors))
    log.info("gateway upload sender=%s record_type=%s received=%d accepted=%d rejected=%d "
             "messages=%d", who.sender, record_type, len(records), len(good), len(errors),
             messages)  # fmt: skip
    if key is not None:
        status = 200 if good else 422
        try:
            svc.warehouse.run(timeout, store_receipt, who.sender, key, record_type,
                              Stored(digest, status, receipt), svc.clock(), what="receipt")
        except Exception as exc:  # the records are sent: answer that, even if unremembered
            log.error("gateway receipt not stored sender=%s key=%s error=%s", who.sender, key,
                      exc)  # fmt: skip
    return _answer(receipt, {})


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/api/v1/gateway", tags=["gateway"], responses={
        **COMMON_RESPONSES,
        409: {"model": ErrorBody, "description": "The same Idempotency-Key is in flight."},
        413: {"model": ErrorBody, "description": "The body is too large."},
        415: {"model": ErrorBody, "description": "The body is not sent as application/json."},
        429: {"model": ErrorBody, "description": "Too many requests; see Retry-After."},
    })  # fmt: skip
    IdempotencyKey = Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Any unique string per upload (a UUID): a retry with the same key and body "
                    "gets the first answer and sends nothing again.")]  # fmt: skip

    def add(record_type: str, batch: bool) -> None:
        schema = record_json_schema(record_type)
        body = ({"type": "object", "required": ["records"], "additionalProperties": False,
                 "properties": {"records": {"type": "array", "items": schema, "minItems": 1,
                                            "maxItems": settings.gateway_max_records}}}
                if batch else schema)  # fmt: skip
        roles = ", ".join(SENDERS[record_type])
        what = f"a batch of {record_type} records" if batch else f"one {record_type} record"

        async def endpoint(request: Request, who: Anyone,
                           idempotency_key: IdempotencyKey = None) -> JSONResponse:  # fmt: skip
            svc = services(request)
            if who.role not in SENDERS[record_type]:
                refuse(request, 403, "role", who, record_type=record_type)
                raise Forbidden(f"a {who.role} token may not send {record_type} records; "
                                f"senders: {roles}")  # fmt: skip
            gateway: Gateway = request.app.state.gateway
            try:
                gateway.buckets.take(who.sender)
            except Exception:
                refuse(request, 429, "rate", who)
                raise
            body = await request.body()
            if idempotency_key is not None:
                gateway.begin(who.sender, idempotency_key)
            try:
                return await run_in_threadpool(_upload, request, svc, who, record_type, body,
                                               batch, idempotency_key)  # fmt: skip
            finally:
                if idempotency_key is not None:
                    gateway.end(who.sender, idempotency_key)

        api.add_api_route(
            f"/{record_type}{'/batch' if batch else ''}", endpoint, methods=["POST"],
            response_model=Receipt, name=f"gateway_{record_type}{'_batch' if batch else ''}",
            summary=f"Send {what}",
            description=f"Send {what} to Kafka ({roles} tokens). The answer comes after the "
                        "broker acknowledged; bad records are listed one by one and the rest "
                        "is sent.",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": body}}}},
        )  # fmt: skip

    for record_type in SENDERS:
        add(record_type, batch=False)
        add(record_type, batch=True)
    return api
