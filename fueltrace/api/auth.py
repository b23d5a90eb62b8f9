"""Who is calling, and whether they may: bearer tokens, roles and scopes.

Every refusal is logged (``access refused status=… reason=…`` with the route, the token
id when there is one, and the client address; never the token) and answered with the
common error body, which names no data. Reading something of another city answers 404,
exactly as if it did not exist, so a city regulator cannot probe other cities' ids;
asking for another city by name (``?city=``) answers 403, city names being public.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fueltrace.api.errors import Forbidden, ResourceNotFound, Unauthorized
from warehouse.access import Principal, verify_token

log = logging.getLogger(__name__)
REGULATORS = ("city_regulator", "provincial_regulator", "admin")
_bearer = HTTPBearer(auto_error=False, description="A token from `fueltrace token create` "
                     "(or POST /api/v1/tokens): `Authorization: Bearer ft_…`.")  # fmt: skip


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def refuse(request: Request, status: int, reason: str, principal: Principal | None = None,
           **context: Any) -> None:  # fmt: skip
    """Log a refusal with its context (the caller raises the answer)."""
    client = request.client.host if request.client else "-"
    who = f" token_id={principal.token_id} role={principal.role}" if principal else ""
    extra = "".join(f" {k}={v}" for k, v in context.items())
    log.warning("access refused status=%d reason=%s method=%s route=%s client=%s "
                "request_id=%s%s%s", status, reason, request.method, _route(request), client,
                getattr(request.state, "request_id", "-"), who, extra)  # fmt: skip


def authenticate(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                 ) -> Principal:  # fmt: skip
    """The caller's principal; 401 for no token, a malformed, unknown, expired or revoked
    one (one answer for all, so a token's state is not disclosed)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        refuse(request, 401, "no_token")
        raise Unauthorized()
    services = request.app.state.services
    principal = services.warehouse.run(
        services.settings.api_query_timeout_s, verify_token, credentials.credentials,
        datetime.now(UTC), what="token check")  # fmt: skip
    if principal is None:
        token_id = credentials.credentials.split("_")[1] if credentials.credentials.count("_") \
            >= 2 else "-"  # fmt: skip
        refuse(request, 401, "invalid_token", token_id=token_id[:16])
        raise Unauthorized("the bearer token is not valid (unknown, expired or revoked)")
    request.state.principal = principal
    return principal


def require(*roles: str) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold one of ``roles``; 403 otherwise."""

    def dependency(request: Request,
                   principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            refuse(request, 403, "role", principal, needs="|".join(roles))
            raise Forbidden(f"a {principal.role} token may not call this; it needs one of: "
                            f"{', '.join(roles)}")  # fmt: skip
        return principal

    return dependency


Regulator = Annotated[Principal, Depends(require(*REGULATORS))]
Admin = Annotated[Principal, Depends(require("admin"))]
Anyone = Annotated[Principal, Depends(authenticate)]


def city_filter(request: Request, principal: Principal, asked: str | None) -> str | None:
    """The city a read is limited to: the city regulator's own (asking for another is
    403), or what a provincial caller asked for."""
    own = principal.city
    if own is None:
        return asked
    if asked is not None and asked != own:
        refuse(request, 403, "other_city", principal, asked=asked)
        raise Forbidden(f"a city regulator of {own} reads {own} only")
    return own


def check_visible(request: Request, principal: Principal, city_of: Callable[[], str | None],
                  not_found: str) -> None:  # fmt: skip
    """For a city regulator: 404 with ``not_found`` (the very message a missing thing
    gets) unless ``city_of()`` — the thing's city, None when it does not exist — is
    theirs. Provincial callers see everything; ``city_of`` is not even called."""
    own = principal.city
    if own is None:
        return
    city = city_of()
    if city != own:
        if city is not None:
            refuse(request, 404, "other_city", principal)
        raise ResourceNotFound(not_found)
