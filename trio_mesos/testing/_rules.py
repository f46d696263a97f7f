"""What a Mesos 1.11 agent answers to which request in which phase (pure).

:func:`answer` follows ``Http::executor`` in ``src/slave/http.cpp`` step by
step (PROTOCOL.md §1.5): route, authentication, containerizer recovery (503),
method (405), ``Content-Type`` (400/415), decoding (400), the test's own
failure rules, ``validateExecutorCall`` (``src/common/validation.cpp``, 400),
``Accept`` for SUBSCRIBE (406), the agent's recovery (503), the framework and
executor lookups (400), the principal's claims (403), an executor not yet
subscribed (403); what is left is accepted, and the agent (the caller) acts
on it. Every rule is checked byte for byte against the real agent's captures
(``tests/io/test_fake_agent_fidelity.py``).

Pure: no trio, h11, os or time. The agent's state comes in as an
:class:`AgentView`, the answer goes out as a :class:`~._request.Reply` or an
:class:`Accepted` call, so the rules can be tested without I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from .._messages import ContentType, is_valid_uuid
from ..v1 import executor_pb2, mesos_pb2
from ._agent_json import CallParseError, parse_json_call, parse_protobuf_call
from ._auth import Authenticator, Claims, claims_error
from ._request import PLAIN_TEXT, Reply, Request, default_error_body

__all__ = [
    "AGENT_PROCESS_ID",
    "EXECUTOR_ENDPOINT",
    "Accepted",
    "FailRule",
    "AgentState",
    "AgentView",
    "ExecutorState",
    "accepts",
    "answer",
    "decode_call",
    "finish",
    "route",
    "take_rule",
    "validate",
]

Call = executor_pb2.Call

#: The agent's libprocess id; requests go to ``/slave(1)/api/v1/executor``.
AGENT_PROCESS_ID: Final = "slave(1)"
EXECUTOR_ENDPOINT: Final = "/api/v1/executor"
OPERATOR_ENDPOINT: Final = "/api/v1"
NOT_RECOVERED: Final = b"Agent has not finished recovery"
_FORBIDDEN: Final = "forbidden"


class AgentState(enum.Enum):
    """The agent itself (PROTOCOL.md §3)."""

    RUNNING = "running"
    DOWN = "down"
    RECOVERING_CONTAINERS = "recovering containers"
    RECOVERING = "recovering"


class ExecutorState(enum.Enum):
    """The agent's view of its executor (PROTOCOL.md §3)."""

    REGISTERING = "registering"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class AgentView:
    """What the rules need to know of the agent at the moment a request arrives.

    Attributes:
        transport: ``"memory"``, ``"tcp"``, ``"tls"`` or ``"unix"``.
        token: when set, authentication is enforced and this static token is
            accepted besides the JWTs ``auth`` issued.
    """

    agent_state: AgentState
    executor_state: ExecutorState
    framework_known: bool
    framework_id: str
    executor_id: str
    container_id: str
    transport: str = "memory"
    token: str | None = None
    auth: Authenticator | None = None

    @property
    def own_claims(self) -> Claims:
        """The claims of the agent's own executor (its static token's principal)."""
        return {"cid": self.container_id, "eid": self.executor_id, "fid": self.framework_id}


@dataclass(frozen=True)
class Accepted:
    """A call that passed every rule: the agent acts on it.

    Attributes:
        call: the decoded call (SUBSCRIBE, UPDATE, MESSAGE or UNKNOWN).
        accept: the media type of the event stream (SUBSCRIBE only).
    """

    call: executor_pb2.Call
    accept: ContentType = ContentType.JSON


#: The test's rules that may fail a call (``FakeAgent.fail_next``): the answer, or None.
FailCheck = Callable[[executor_pb2.Call], "Reply | None"]


@dataclass(eq=False)
class FailRule:
    """Answer the next ``remaining`` calls (of types ``calls``) with ``status`` and ``body``."""

    remaining: int
    status: int
    body: bytes
    calls: frozenset[int] | None


class _CountedRule(Protocol):
    remaining: int
    calls: frozenset[int] | None


_Rule = TypeVar("_Rule", bound=_CountedRule)


def take_rule(rules: list[_Rule], call: executor_pb2.Call) -> _Rule | None:
    """The first rule that applies to ``call``, counted down (and dropped when used up)."""
    kind = int(call.type) if call.HasField("type") else None
    for rule in rules:
        if rule.calls is not None and kind not in rule.calls:
            continue
        rule.remaining -= 1
        if rule.remaining <= 0:
            rules.remove(rule)
        return rule
    return None


def _no_failure(call: executor_pb2.Call) -> Reply | None:
    return None


def route(transport: str, path: str) -> str | None:
    """The endpoint (``/api/v1/executor`` or ``/api/v1``) a path reaches, ``"forbidden"``
    (a Unix socket serves only the two exact paths), or None (404)."""
    if transport == "unix":
        for endpoint in (EXECUTOR_ENDPOINT, OPERATOR_ENDPOINT):
            if path == f"/{AGENT_PROCESS_ID}{endpoint}":
                return endpoint
        return _FORBIDDEN
    prefix = f"/{AGENT_PROCESS_ID}/"
    endpoint = "/" + path[len(prefix) :] if path.startswith(prefix) else path
    endpoint = endpoint.rstrip("/") or "/"
    if endpoint in (EXECUTOR_ENDPOINT, OPERATOR_ENDPOINT):
        return endpoint
    return None


def accepts(accept_values: list[str], media_type: str) -> bool:
    """libprocess' ``Request::acceptsMediaType`` (PROTOCOL.md §1.4)."""
    if not accept_values:
        return True
    main, _, _sub = media_type.partition("/")
    wanted = {media_type.lower(), f"{main}/*".lower(), "*/*"}
    for value in accept_values:
        for item in value.split(","):
            token, *params = (part.strip() for part in item.split(";"))
            if token.lower() not in wanted:
                continue
            q: float | None = None
            for param in params:
                name, eq, number = param.partition("=")
                if eq and name.strip().lower() == "q":
                    try:
                        q = float(number.strip())
                    except ValueError:
                        q = None
            if q is None or q > 0:
                return True
    return False


def _method_not_allowed(method: str) -> Reply:
    body = f"405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{method}'."
    return Reply(405, body.encode(), (("Allow", "POST"),))


_UNSUPPORTED_TYPE: Final = Reply(
    415, b"Expecting 'Content-Type' of application/json or application/x-protobuf"
)
_NO_CONTENT_TYPE: Final = Reply(400, b"Expecting 'Content-Type' to be present")


def decode_call(request: Request) -> executor_pb2.Call | Reply:
    """The request's Call by its ``Content-Type``, or the 400/415 answer."""
    content_type = request.header("Content-Type")
    if content_type is None:
        return _NO_CONTENT_TYPE
    try:
        if content_type == ContentType.PROTOBUF.value:
            return parse_protobuf_call(request.body)
        if content_type == ContentType.JSON.value:
            return parse_json_call(request.body)
    except CallParseError as exc:
        return Reply(400, str(exc).encode("utf-8", "surrogateescape"))
    return _UNSUPPORTED_TYPE


def answer(
    request: Request, view: AgentView, fail: FailCheck = _no_failure
) -> tuple[Reply | Accepted, executor_pb2.Call | None]:
    """The agent's answer to ``request``, and the call it decoded (None if none).

    ``fail`` is consulted once the call is decoded, before validation, for
    every call but SUBSCRIBE (it may count itself down).
    """
    endpoint = route(view.transport, request.path)
    if endpoint == _FORBIDDEN:
        return Reply(403), None
    if endpoint is None:
        return Reply(404), None
    if endpoint == OPERATOR_ENDPOINT:
        return operator_answer(request), None

    claims: Claims | None = None
    if view.token is not None:
        auth = view.auth or Authenticator(b"")
        principal = auth.authenticate(request, view.token, view.own_claims)
        if isinstance(principal, Reply):
            return principal, None
        claims = principal

    # Row 1: containerizer recovery not finished (every call, every method).
    if view.agent_state is AgentState.RECOVERING_CONTAINERS:
        return Reply(503, NOT_RECOVERED), None
    if request.method != "POST":
        return _method_not_allowed(request.method), None
    call = decode_call(request)
    if isinstance(call, Reply):
        return call, None

    if not (call.HasField("type") and call.type == Call.SUBSCRIBE):
        failed = fail(call)
        if failed is not None:
            return failed, call

    problem = validate(call)
    if problem is not None:
        body = "Failed to validate Executor::Call: " + problem
        return Reply(400, body.encode("utf-8", "surrogateescape")), call

    accept_type = ContentType.JSON
    if call.type == Call.SUBSCRIBE:
        accept = request.header_values("Accept")
        if accepts(accept, ContentType.JSON.value):
            accept_type = ContentType.JSON
        elif accepts(accept, ContentType.PROTOBUF.value):
            accept_type = ContentType.PROTOBUF
        else:
            wanted = b"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"
            return Reply(406, wanted), call
    elif call.type == Call.HEARTBEAT:
        return Reply(202), call
    elif view.agent_state is AgentState.RECOVERING:
        return Reply(503, NOT_RECOVERED), call

    if not view.framework_known or call.framework_id.value != view.framework_id:
        return Reply(400, b"Framework cannot be found"), call
    if call.executor_id.value != view.executor_id:
        return Reply(400, b"Executor cannot be found"), call
    if claims is not None:
        error = claims_error(claims, call, view.container_id)
        if error is not None:
            return Reply(403, error.encode()), call
    if view.executor_state is ExecutorState.REGISTERING and call.type != Call.SUBSCRIBE:
        return Reply(403, b"Executor is not subscribed"), call
    if call.type in (Call.SUBSCRIBE, Call.UPDATE, Call.MESSAGE):
        return Accepted(call, accept_type), call
    return Reply(501), call  # Call.UNKNOWN


def operator_answer(request: Request) -> Reply:
    """``/api/v1`` (the operator API): not implemented beyond the real agent's
    answers to an executor Call sent there by mistake."""
    if request.method != "POST":
        return _method_not_allowed(request.method)
    content_type = request.header("Content-Type")
    if content_type is None:
        return _NO_CONTENT_TYPE
    if content_type == ContentType.PROTOBUF.value:
        return Reply(400, b"Failed to parse body into a protobuf object")
    if content_type != ContentType.JSON.value:
        return _UNSUPPORTED_TYPE
    try:
        parse_json_call(request.body)
    except CallParseError as exc:
        text = str(exc)
        if text.startswith("Failed to parse body into JSON"):
            return Reply(400, text.encode("utf-8", "surrogateescape"))
    return Reply(400, b"Failed to validate agent::Call: Expecting 'type' to be present")


def finish(reply: Reply) -> Reply:
    """``reply`` with the headers libprocess adds: an error or a body gets a text
    body (``"<code> <reason>."`` when it has none), ``Content-Type`` and
    ``Content-Length``; anything else ``Content-Length: 0``."""
    if reply.status >= 400 or reply.body:
        body = reply.body or default_error_body(reply.status)
        extra = (("Content-Type", PLAIN_TEXT), ("Content-Length", str(len(body))))
        return Reply(reply.status, body, (*reply.headers, *extra))
    return Reply(reply.status, b"", (*reply.headers, ("Content-Length", "0")))


def initialization_errors(message: Any) -> list[str]:
    """The required fields ``message`` lacks."""
    # FindInitializationErrors exists at run time but not in the type stubs.
    find: Callable[[], list[str]] = getattr(message, "FindInitializationErrors")  # noqa: B009
    return find()


def validate(call: executor_pb2.Call) -> str | None:
    """``validateExecutorCall`` (src/common/validation.cpp): the first problem, or None."""
    if not call.IsInitialized():
        return "Not initialized: " + ", ".join(initialization_errors(call))
    if not call.HasField("type"):
        return "Expecting 'type' to be present"
    if not call.HasField("executor_id"):
        return "Expecting 'executor_id' to be present"
    if not call.HasField("framework_id"):
        return "Expecting 'framework_id' to be present"
    executor_id = call.executor_id.value
    framework_id = call.framework_id.value
    if call.type == Call.SUBSCRIBE:
        if not call.HasField("subscribe"):
            return "Expecting 'subscribe' to be present"
    elif call.type == Call.UPDATE:
        if not call.HasField("update"):
            return "Expecting 'update' to be present"
        status = call.update.status
        if not status.HasField("uuid"):
            return "Expecting 'uuid' to be present"
        if not is_valid_uuid(status.uuid):
            return "Not a valid UUID"
        if status.HasField("executor_id") and status.executor_id.value != executor_id:
            return (
                f"ExecutorID in Call: {executor_id} does not match ExecutorID in TaskStatus: "
                f"{status.executor_id.value}"
            )
        if status.source != mesos_pb2.TaskStatus.SOURCE_EXECUTOR:
            return (
                f"Received Call from executor {executor_id} of framework {framework_id} "
                "with invalid source, expecting 'SOURCE_EXECUTOR'"
            )
        if status.state == mesos_pb2.TASK_STAGING:
            return (
                f"Received TASK_STAGING from executor {executor_id} of framework "
                f"{framework_id} which is not allowed"
            )
        if status.HasField("check_status"):
            return _validate_check_status(status.check_status)
    elif call.type == Call.MESSAGE and not call.HasField("message"):
        return "Expecting 'message' to be present"
    return None


def _validate_check_status(check: mesos_pb2.CheckStatusInfo) -> str | None:
    if not check.HasField("type"):
        return "CheckStatusInfo must specify 'type'"
    names = {
        mesos_pb2.CheckInfo.COMMAND: ("command", "COMMAND"),
        mesos_pb2.CheckInfo.HTTP: ("http", "HTTP"),
        mesos_pb2.CheckInfo.TCP: ("tcp", "TCP"),
    }
    entry = names.get(check.type)
    if entry is None:
        name = mesos_pb2.CheckInfo.Type.Name(check.type)
        return f"'{name}' is not a valid check's status type"
    field, label = entry
    if not check.HasField(field):  # type: ignore[arg-type]
        return f"Expecting '{field}' to be set for {label} check's status"
    return None
