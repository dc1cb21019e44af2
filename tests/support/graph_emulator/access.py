"""Graph's side of authentication: the bearer token of a request, checked (signature, audience,
lifetime, tenant, app), becomes the caller. Failures are 401 InvalidAuthenticationToken with
Graph's WWW-Authenticate challenge."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from .errors import GraphError
from .state import GRAPH_AUDIENCES, App, EmulatorState, Tenant

CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


@dataclass(frozen=True)
class Caller:
    tenant: Tenant
    app: App
    roles: frozenset[str]  # as granted when the token was issued, like Entra's tokens


def authenticate(state: EmulatorState, authorization: str | None) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise _unauthorized("Access token is empty.")
    token = authorization[7:].strip()
    if not token:
        raise _unauthorized("Access token is empty.")
    try:
        claims = jwt.decode(
            token, state.signing_key.public_key(), algorithms=["RS256"],
            audience=list(GRAPH_AUDIENCES), options={"require": ["exp", "tid", "appid"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("Lifetime validation failed, the token is expired.") from None
    except jwt.InvalidAudienceError:
        raise _unauthorized("Access token validation failure. Invalid audience.") from None
    except jwt.DecodeError:
        raise _unauthorized(
            "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in "
            "JWS or JWE Compact Serialization Format."
            if token.count(".") != 2 else "Access token validation failure."
        ) from None
    except jwt.PyJWTError:
        raise _unauthorized("Access token validation failure.") from None
    tenant = state.tenants.get(str(claims["tid"]))
    app = tenant.apps.get(str(claims["appid"])) if tenant else None
    if tenant is None or app is None:
        raise _unauthorized("Access token validation failure.")
    return Caller(tenant, app, frozenset(claims.get("roles") or ()))


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message,
                      headers={"WWW-Authenticate": CHALLENGE})
