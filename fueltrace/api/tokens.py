"""Tokens over HTTP (admin only), and ``whoami`` for any caller.

`fueltrace token create/revoke/list` does the same on the warehouse file; while
`fueltrace serve` holds the file, these endpoints are the way.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from fueltrace.api.auth import Admin, Anyone
from fueltrace.api.errors import COMMON_RESPONSES, InvalidRequest
from fueltrace.api.models import Token, TokenCreated, TokenIn, WhoAmI
from fueltrace.api.regulator import NOT_FOUND
from fueltrace.api.services import read, services
from warehouse import access

log = logging.getLogger(__name__)


def router() -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=COMMON_RESPONSES)

    @api.get("/whoami", tags=["access"], response_model=WhoAmI)
    def whoami(who: Anyone) -> dict[str, Any]:
        """The caller's token: its id, role, scope and label (never the secret)."""
        return {"token_id": who.token_id, "role": who.role, "scope": who.scope,
                "label": who.label}  # fmt: skip

    @api.get("/tokens", tags=["access"], response_model=list[Token])
    def list_tokens(request: Request, who: Admin,
                    include_revoked: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        """Every token (never a secret or its hash), newest first."""
        return read(request, access.list_tokens, include_revoked=include_revoked)

    @api.post("/tokens", tags=["access"], response_model=TokenCreated, status_code=201)
    def create_token(request: Request, who: Admin, body: TokenIn) -> dict[str, Any]:
        """A new token; the answer shows it once."""
        expires = None
        if body.expires_at is not None:
            try:
                expires = datetime.fromisoformat(body.expires_at.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequest(f"expires_at: not an ISO-8601 time: {body.expires_at!r}",
                                     code="invalid_parameter") from None  # fmt: skip
            if expires.tzinfo is None:
                raise InvalidRequest("expires_at needs an offset (…Z or …+08:00)",
                                     code="invalid_parameter")  # fmt: skip
        token, row = read(request, access.create_token, role=body.role, scope=body.scope,
                          label=body.label, created_by=who.actor, now=services(request).clock(),
                          expires_at=expires)  # fmt: skip
        log.warning("token created token_id=%s role=%s scope=%s by=%s", row["token_id"],
                    row["role"], row["scope"], who.token_id)  # fmt: skip
        return {**row, "token": token}

    @api.delete("/tokens/{token_id}", tags=["access"], response_model=Token,
                responses=NOT_FOUND)  # fmt: skip
    def revoke_token(request: Request, who: Admin,
                     token_id: Annotated[str, Path(min_length=1, max_length=64)]
                     ) -> dict[str, Any]:  # fmt: skip
        """Revoke a token: refused from its next request on. Kept, for the record."""
        row = read(request, access.revoke_token, token_id, by=who.actor,
                   now=services(request).clock())  # fmt: skip
        log.warning("token revoked token_id=%s by=%s", token_id, who.token_id)
        return row

    return api
