"""Who may call the HTTP service, and what the gateway already answered each sender.

Tokens. A bearer token is ``ft_<token_id>_<secret>``: the public id finds the row, the
secret is 256 random bits, stored only as ``sha256(salt || secret)`` with a random
salt per token and compared with :func:`hmac.compare_digest`. The token itself is shown
once, when it is created. Each token has a role and, for some roles, a scope:

=====================  =========  ====================================================
role                   scope      may
=====================  =========  ====================================================
station                station_id push its own station's records
depot                  depot_id   push its own depot's dispatches
city_regulator         city       read its city's data, work its city's cases
provincial_regulator   —          read everything, work every case
admin                  —          everything, and manage tokens
=====================  =========  ====================================================

Gateway receipts. The answer to an upload sent with an ``Idempotency-Key``, kept per
sender, so a retried upload returns the same answer without producing again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from fueltrace.errors import UsageError
from ingest.records.facility import CITIES
from warehouse.connection import scalar
from warehouse.trace import NotFound, _jsonable

ROLES = ("station", "depot", "city_regulator", "provincial_regulator", "admin")
#: The roles whose tokens are bound to a scope, and what the scope is.
SCOPED = {"station": "station_id", "depot": "depot_id", "city_regulator": "city"}
PREFIX = "ft"


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    token_id: str
    role: str
    scope: str | None
    label: str

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"{self.label} ({self.token_id})"

    @property
    def sender(self) -> str:
        """The gateway's key for idempotency and rate limits: one per station or depot."""
        return f"{self.role}:{self.scope or self.token_id}"

    @property
    def regulator(self) -> bool:
        return self.role in ("city_regulator", "provincial_regulator", "admin")

    @property
    def city(self) -> str | None:
        """The one city this caller may read, or None for the whole province."""
        return self.scope if self.role == "city_regulator" else None


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def check_scope(role: str, scope: str | None) -> str | None:
    """The scope a token of ``role`` needs, checked; UsageError says what is wrong."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role not in SCOPED:
        if scope:
            raise UsageError(f"a {role} token has no scope (got {scope!r})")
        return None
    if not scope or not scope.strip():
        raise UsageError(f"a {role} token needs its {SCOPED[role]} as scope")
    scope = scope.strip()
    if role == "city_regulator" and scope not in CITIES:
        raise UsageError(f"{scope!r} is not a city of Liaoning; one of {', '.join(CITIES)}")
    return scope


def create_token(con: duckdb.DuckDBPyConnection, *, role: str, scope: str | None, label: str,
                 created_by: str, now: datetime,
                 expires_at: datetime | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """A new token: (the token, shown this once; its row without secrets)."""
    scope = check_scope(role, scope)
    if not label.strip():
        raise UsageError("a token needs a label: who holds it")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    con.execute("""
        INSERT INTO api_token (token_id, salt, secret_hash, role, scope, label, created_at,
                               created_by, expires_at)
        VALUES ($id, $salt, $hash, $role, $scope, $label, $now, $by, $expires)
    """, {"id": token_id, "salt": salt, "hash": _hash(salt, secret), "role": role,
          "scope": scope, "label": label.strip(), "now": now, "by": created_by,
          "expires": expires_at}).fetchall()  # fmt: skip
    return f"{PREFIX}_{token_id}_{secret}", get_token(con, token_id)


def verify_token(con: duckdb.DuckDBPyConnection, token: str,
                 now: datetime) -> Principal | None:  # fmt: skip
    """The principal of a valid, unrevoked, unexpired token; None for anything else."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    rows = con.execute("""
        SELECT salt, secret_hash, role, scope, label, expires_at, revoked_at
        FROM api_token WHERE token_id = $id
    """, {"id": parts[1]}).fetchall()  # fmt: skip
    if not rows:
        _hash("00" * 16, parts[2])  # the same work as a known id: no timing oracle
        return None
    salt, stored, role, scope, label, expires_at, revoked_at = rows[0]
    if not hmac.compare_digest(_hash(salt, parts[2]), stored):
        return None
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    return Principal(parts[1], role, scope, label)


def revoke_token(con: duckdb.DuckDBPyConnection, token_id: str, *, by: str,
                 now: datetime) -> dict[str, Any]:  # fmt: skip
    """Revoke a token (from its next request on); NotFound if there is none."""
    get_token(con, token_id)
    con.execute("""
        UPDATE api_token SET revoked_at = $now, revoked_by = $by
        WHERE token_id = $id AND revoked_at IS NULL
    """, {"id": token_id, "now": now, "by": by}).fetchall()  # fmt: skip
    return get_token(con, token_id)


_TOKEN_COLUMNS = ("token_id, role, scope, label, created_at, created_by, expires_at, "
                  "revoked_at, revoked_by")  # fmt: skip


def _token_rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [_jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def get_token(con: duckdb.DuckDBPyConnection, token_id: str) -> dict[str, Any]:
    rows = _token_rows(con, f"SELECT {_TOKEN_COLUMNS} FROM api_token WHERE token_id = $id",
                       {"id": token_id})  # fmt: skip
    if not rows:
        raise NotFound(f"no token {token_id!r}")
    return rows[0]


def list_tokens(con: duckdb.DuckDBPyConnection, *,
                include_revoked: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Every token's row (never a secret or its hash), newest first."""
    where = "TRUE" if include_revoked else "revoked_at IS NULL"
    return _token_rows(con, f"SELECT {_TOKEN_COLUMNS} FROM api_token WHERE {where} "
                            "ORDER BY created_at DESC, token_id", {})  # fmt: skip


# --- gateway receipts ------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What the gateway answered an upload: sent again verbatim to a retry."""

    request_sha256: str
    status: int
    response: dict[str, Any]


def request_digest(record_type: str, body: bytes) -> str:
    return hashlib.sha256(record_type.encode() + b"\0" + body).hexdigest()


def find_receipt(con: duckdb.DuckDBPyConnection, sender: str, key: str) -> Receipt | None:
    rows = con.execute("""
        SELECT request_sha256, status, response::VARCHAR FROM gateway_upload
        WHERE sender = $sender AND idempotency_key = $key
    """, {"sender": sender, "key": key}).fetchall()  # fmt: skip
    if not rows:
        return None
    digest, status, response = rows[0]
    return Receipt(digest, int(status), json.loads(response))


def store_receipt(con: duckdb.DuckDBPyConnection, sender: str, key: str, record_type: str,
                  receipt: Receipt, now: datetime) -> None:  # fmt: skip
    con.execute("""
        INSERT OR IGNORE INTO gateway_upload VALUES ($sender, $key, $digest, $type, $status,
                                                     $response, $now)
    """, {"sender": sender, "key": key, "digest": receipt.request_sha256, "type": record_type,
          "status": receipt.status, "response": json.dumps(receipt.response, ensure_ascii=False),
          "now": now}).fetchall()  # fmt: skip


def prune_receipts(con: duckdb.DuckDBPyConnection, now: datetime, ttl: timedelta) -> int:
    """Forget receipts older than ``ttl``: a retry after that is a new upload (and its
    records, if already stored, are caught as duplicates by natural key)."""
    return scalar(con, "DELETE FROM gateway_upload WHERE created_at < $cut",
                  {"cut": now - ttl})  # fmt: skip
