"""Executor authentication as a Mesos 1.11 agent does it (pure).

With ``--authenticate_http_executors`` every executor request needs
``Authorization: Bearer <token>``. The agent issues HS256 tokens
(``src/authentication/executor/jwt_secret_generator.cpp``) and libprocess'
``JWTAuthenticatorProcess::authenticate`` (``3rdparty/libprocess/src/authenticator.cpp``,
``jwt.cpp``) answers 401 with a ``WWW-Authenticate`` challenge for a missing,
malformed or badly signed token. ``Http::executor`` in ``src/slave/http.cpp``
then compares the principal's claims (``fid``, ``eid``, ``cid``) with the call
(403 when one differs). The texts are the captured ones.

Pure: the signing key and the agent's ids come in as arguments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

from ..v1 import executor_pb2
from ._request import Reply, Request, default_error_body

__all__ = ["Authenticator", "Claims", "claims_error"]

REALM: Final = "mesos-agent-executor"
_CHALLENGE: Final = f'Bearer realm="{REALM}"'

#: A principal's claims: ``fid``, ``eid``, ``cid``.
Claims = dict[str, str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unauthorized(description: str | None = None) -> Reply:
    value = _CHALLENGE
    if description is not None:
        value += f',error="invalid_token",error_description="{description}"'
    return Reply(401, default_error_body(401), (("WWW-Authenticate", value),))


@dataclass(eq=False)
class Authenticator:
    """Issues and checks the tokens of one agent.

    Args:
        key: the HS256 secret (the agent's ``--jwt_secret_key``).
    """

    key: bytes

    def make_token(self, claims: Claims) -> str:
        """An HS256 JWT with these claims, signed with :attr:`key`."""
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256)
        return f"{header}.{payload}.{_b64url(signature.digest())}"

    def authenticate(self, request: Request, token: str, own_claims: Claims) -> Reply | Claims:
        """A 401 reply, or the claims of the request's principal.

        ``token`` is the static token the agent gave its executor, accepted as
        a principal with ``own_claims``.
        """
        value = request.header("Authorization")
        if value is None:
            return _unauthorized()
        parts = value.split(" ")
        if len(parts) != 2:
            return _unauthorized("Malformed 'Authorization' header")
        scheme, presented = parts
        if scheme != "Bearer":
            return _unauthorized(f"Scheme '{scheme}' unsupported")
        if presented == token:
            return dict(own_claims)
        claims = self._verify(presented)
        if isinstance(claims, str):
            return _unauthorized(f"Invalid JWT: {claims}")
        if not claims:
            return _unauthorized("JWT claims missing")
        return claims

    def _verify(self, token: str) -> Claims | str:
        """The token's claims, or what is wrong with it."""
        parts = token.split(".")
        if len(parts) != 3:
            return "Expected 3 parts in JWT"
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
        try:
            signature = _b64url_decode(parts[2])
            payload = json.loads(_b64url_decode(parts[1]))
        except (ValueError, TypeError):
            return "Failed to parse JWT"
        if not hmac.compare_digest(signature, expected.digest()):
            return "Token signature does not match"
        if not isinstance(payload, dict):
            return "Token payload is not a JSON object"
        return {str(k): str(v) for k, v in payload.items()}


def claims_error(claims: Claims, call: executor_pb2.Call, container_id: str) -> str | None:
    """The 403 text when the principal may not make ``call`` (``Http::executor``), or None."""
    principal = json.dumps({"claims": dict(sorted(claims.items()))}, separators=(",", ":"))
    framework_id = call.framework_id.value
    executor_id = call.executor_id.value
    if claims.get("fid") != framework_id:
        return (
            f"Authenticated principal '{principal}' does not contain an 'fid' claim with "
            f"the framework ID {framework_id}, which is set in the call"
        )
    if claims.get("eid") != executor_id:
        return (
            f"Authenticated principal '{principal}' does not contain an 'eid' claim with "
            f"the executor ID {executor_id}, which is set in the call"
        )
    if claims.get("cid") != container_id:
        return (
            f"Authenticated principal '{principal}' does not contain a 'cid' claim with "
            "the correct active ContainerID"
        )
    return None
