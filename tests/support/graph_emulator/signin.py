"""The Microsoft identity platform's client credentials grant, as far as an app-only Graph
client uses it: OpenID discovery, the v2.0 token endpoint with a client secret, a certificate
(client assertion signed by the app's key) or a federated credential (client assertion issued
by an external OIDC issuer), and the signed access tokens Graph later checks.

Access tokens look like Entra's v1.0 app-only tokens for Graph: `aud`
https://graph.microsoft.com, `iss` https://sts.windows.net/{tid}/, `appid`, `appidacr`,
`idtyp` app, `oid`/`sub` the service principal, `tid`, `roles` (the granted application
permissions, omitted when there are none), `iat`/`nbf`/`exp`.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .errors import TokenError
from .state import (
    GRAPH_AUDIENCES,
    App,
    AppCertificate,
    EmulatorState,
    FederatedCredential,
    Tenant,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]
CLOCK_SKEW = 300  # seconds of leeway on assertion times, as Entra allows some skew
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/(?:v2\.0/)?token/?$")


def openid_configuration(authority: str, tenant: Tenant) -> dict[str, Any]:
    """What MSAL reads from /{tenant}/v2.0/.well-known/openid-configuration."""
    base = f"{authority}/{tenant.id}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "private_key_jwt", "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def jwks(state: EmulatorState) -> dict[str, Any]:
    numbers = state.signing_key.public_key().public_numbers()
    return {"keys": [{
        "kty": "RSA", "use": "sig", "kid": state.key_id, "x5t": state.key_id,
        "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
    }]}


def certificate_from_pem(pem: str) -> AppCertificate:
    cert = x509.load_pem_x509_certificate(pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashes.Hash(hashes.SHA1())
    sha1.update(der)
    sha256 = hashes.Hash(hashes.SHA256())
    sha256.update(der)
    return AppCertificate(_b64(sha1.finalize()), _b64(sha256.finalize()), cert.public_key())


def issue_token(
    state: EmulatorState,
    tenant_key: str,
    form: Mapping[str, str],
    authorization: str | None,
    host: str,
) -> dict[str, Any]:
    """The token response for a client credentials request, or TokenError."""
    tenant = state.tenant(tenant_key)
    if tenant is None:
        raise TokenError(
            400, "invalid_request", 90002,
            f"Tenant '{tenant_key}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant.",
        )
    grant = form.get("grant_type")
    if grant != "client_credentials":
        raise TokenError(
            400, "unsupported_grant_type", 70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )
    _check_scope(form.get("scope", ""), tenant)
    client_id, basic_secret = _basic_auth(authorization)
    client_id = form.get("client_id") or client_id
    if not client_id:
        raise TokenError(
            400, "invalid_request", 900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    app = tenant.apps.get(client_id)
    if app is None:
        raise TokenError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.display_name}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant. You "
            "may have sent your authentication request to the wrong tenant.",
        )
    secret = form.get("client_secret") or basic_secret
    assertion = form.get("client_assertion")
    if secret is not None:
        _check_secret(app, secret)
        acr = "1"
    elif assertion and form.get("client_assertion_type") == JWT_BEARER:
        _check_assertion(app, tenant, state, assertion, host)
        acr = "2"
    else:
        raise TokenError(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    return _token_response(state, tenant, app, acr)


def _check_scope(scope: str, tenant: Tenant) -> None:
    scopes = scope.split()
    if not scopes:
        raise TokenError(
            400, "invalid_request", 900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    for item in scopes:
        if not item.endswith("/.default"):
            raise TokenError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {item} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = item[: -len("/.default")]
        if resource.rstrip("/") not in GRAPH_AUDIENCES:
            raise TokenError(
                400, "invalid_resource", 500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.display_name}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
            )


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None, None
    user, _, password = decoded.partition(":")
    return unquote(user), unquote(password)


def _check_secret(app: App, secret: str) -> None:
    if not any(hmac.compare_digest(secret.encode(), known.encode()) for known in app.secrets):
        raise TokenError(
            401, "invalid_client", 7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{app.client_id}'.",
        )


def _check_assertion(app: App, tenant: Tenant, state: EmulatorState, assertion: str,
                     host: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError(
            400, "invalid_request", 50027,
            "JWT token is invalid or malformed.",
        ) from None
    if claims.get("iss") == app.client_id:
        _check_certificate_assertion(app, tenant, state, assertion, header, claims, host)
    else:
        _check_federated_assertion(app, assertion, claims)


def _check_certificate_assertion(app: App, tenant: Tenant, state: EmulatorState, assertion: str,
                                 header: dict[str, Any], claims: dict[str, Any],
                                 host: str) -> None:
    # Clients differ on base64url padding (azure-identity keeps it, MSAL doesn't): compare
    # without it.
    thumb256 = str(header.get("x5t#S256") or "").rstrip("=")
    thumb1 = str(header.get("x5t") or "").rstrip("=")
    cert = next((c for c in app.certificates
                 if (thumb256 and c.sha256 == thumb256) or (thumb1 and c.sha1 == thumb1)), None)
    if cert is None:
        raise TokenError(
            401, "invalid_client", 700027,
            "The certificate with identifier used to sign the client assertion is not "
            f"registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{thumb256 or thumb1}', Please visit the Azure Portal, Graph "
            "Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{app.client_id}'.]",
        )
    try:
        verified = jwt.decode(
            assertion, cert.public_key, algorithms=ASSERTION_ALGORITHMS,  # type: ignore[arg-type]
            options={"verify_aud": False, "require": ["exp"]}, leeway=CLOCK_SKEW,
        )
    except jwt.ExpiredSignatureError:
        raise _out_of_range(claims) from None
    except jwt.PyJWTError:
        raise TokenError(
            401, "invalid_client", 700027, "Client assertion failed signature validation."
        ) from None
    if verified.get("sub") != app.client_id:
        raise TokenError(
            401, "invalid_client", 700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    if not _audience_is_token_endpoint(verified.get("aud"), state, tenant, host):
        raise TokenError(
            401, "invalid_client", 50012,
            "Client assertion audience claim does not match Realm issuer.",
        )


def _check_federated_assertion(app: App, assertion: str, claims: dict[str, Any]) -> None:
    issuer, subject = claims.get("iss"), claims.get("sub")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
    by_issuer = [f for f in app.federated if f.issuer == issuer]  # case-sensitive, as Entra
    if not by_issuer:
        raise _no_federated_match("issuer", issuer)
    by_subject = [f for f in by_issuer if f.subject == subject]
    if not by_subject:
        raise _no_federated_match("subject", subject)
    matching = [f for f in by_subject if set(f.audiences) & set(audiences)]
    if not matching:
        raise _no_federated_match("audience", ", ".join(audiences))
    for credential in matching:
        if _verifies(assertion, credential, audiences):
            return
    raise TokenError(
        401, "invalid_client", 50013,
        "Assertion failed signature validation. [Reason - The key was not found.]",
    )


def _verifies(assertion: str, credential: FederatedCredential, audiences: list[str]) -> bool:
    for key in credential.keys:
        try:
            jwt.decode(
                assertion, key, algorithms=ASSERTION_ALGORITHMS,  # type: ignore[arg-type]
                audience=credential.audiences, options={"require": ["exp"]}, leeway=CLOCK_SKEW,
            )
            return True
        except jwt.ExpiredSignatureError:
            raise _out_of_range(jwt.decode(assertion, options={"verify_signature": False})
                                ) from None
        except jwt.PyJWTError:
            continue
    return False


def _no_federated_match(what: str, value: Any) -> TokenError:
    code = {"issuer": 700211, "audience": 700212, "subject": 700213}[what]
    return TokenError(
        401, "invalid_client", code,
        f"No matching federated identity record found for presented assertion {what} "
        f"'{value}'. Please check your federated identity credential Subject, Audience and "
        "Issuer against the presented assertion. "
        "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
    )


def _out_of_range(claims: dict[str, Any]) -> TokenError:
    now = int(time.time())
    return TokenError(
        401, "invalid_client", 700024,
        f"Client assertion is not within its valid time range. Current time: "
        f"{_iso(now)}, assertion valid from {_iso(claims.get('nbf') or claims.get('iat'))}, "
        f"expiry time of assertion {_iso(claims.get('exp'))}.",
    )


def _audience_is_token_endpoint(aud: Any, state: EmulatorState, tenant: Tenant,
                                host: str) -> bool:
    for value in [aud] if isinstance(aud, str) else list(aud or []):
        parsed = urlparse(value)
        match = _TOKEN_PATH.match(parsed.path)
        if (parsed.scheme == "https" and parsed.netloc == host and match
                and state.tenant(match.group(1)) is tenant):
            return True
    return False


def _token_response(state: EmulatorState, tenant: Tenant, app: App, acr: str) -> dict[str, Any]:
    now = int(time.time())
    lifetime = tenant.token_lifetime
    issuer = f"https://sts.windows.net/{tenant.id}/"
    claims: dict[str, Any] = {
        "aud": "https://graph.microsoft.com",
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "aio": uuid.uuid4().hex,
        "app_displayname": app.display_name,
        "appid": app.client_id,
        "appidacr": acr,
        "idp": issuer,
        "idtyp": "app",
        "oid": app.service_principal_id,
        "sub": app.service_principal_id,
        "tid": tenant.id,
        "uti": uuid.uuid4().hex,
        "ver": "1.0",
    }
    if app.roles:
        claims["roles"] = sorted(app.roles)
    token = jwt.encode(claims, state.signing_key, algorithm="RS256",
                       headers={"kid": state.key_id, "x5t": state.key_id})
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": token}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _iso(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "unknown"
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(epoch))
