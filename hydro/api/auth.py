"""Bearer tokens with roles: viewer reads, operator also acknowledges, admin also sees phones.

Tokens are compared in constant time and never logged; a request names its token's holder only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hydro.api.context import ApiContext

_RANK = {"viewer": 0, "operator": 1, "admin": 2}
_bearer = HTTPBearer(auto_error=False, description="NAME:ROLE:TOKEN entries of HYDRO_API__TOKENS")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    @property
    def sees_phones(self) -> bool:
        return self.role == "admin"


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    offered = credentials.credentials.encode()
    found = None
    for token in context(request).tokens:
        # Every token is compared, so the time taken says nothing about which one nearly matched.
        if hmac.compare_digest(offered, token.token.get_secret_value().encode()):
            found = token
    if found is None:
        raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
    return Principal(found.name, found.role)


def _at_least(role: str) -> object:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if _RANK[principal.role] < _RANK[role]:
            raise HTTPException(
                403, f"this needs the {role} role; {principal.name} is a {principal.role}"
            )
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _at_least("viewer")]
Operator = Annotated[Principal, _at_least("operator")]
Context = Annotated[ApiContext, Depends(context)]
