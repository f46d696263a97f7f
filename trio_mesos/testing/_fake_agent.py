"""FakeAgent: the agent side of the v1 Executor HTTP API, scriptable, on trio.

Theory of operation
-------------------
A :class:`FakeAgent` is an ``async with`` object that owns one trio nursery.
Every accepted connection (an in-memory stream pair from :meth:`~FakeAgent.connect`,
TCP on 127.0.0.1, or a Unix socket) gets one task there, which reads a request
with h11, decides the answer synchronously (:meth:`FakeAgent._respond`, which
follows ``Http::executor`` in ``src/slave/http.cpp`` step by step; see
PROTOCOL.md §1.5), and writes it before reading the next request, so
keep-alive and pipelining behave as on libprocess.

A SUBSCRIBE turns its connection into an event stream. Events are put on the
stream's queue (``_enqueue``, synchronous, so their order is the order in
which the agent decided to send them); the connection task writes them one
per HTTP chunk, each write bounded by ``write_timeout``. The control methods
(:meth:`~FakeAgent.launch`, :meth:`~FakeAgent.kill`, ...) queue an event and
wait until it has been written, which happens at once unless the executor
stopped reading.

The agent-side state follows the real one (PROTOCOL.md §3): the executor is
``REGISTERING`` (launched, never subscribed), ``RUNNING`` (subscribed),
``TERMINATING`` (SHUTDOWN sent) or ``TERMINATED`` (its container is gone, and
with it the framework: calls then get ``400 Framework cannot be found``). The
agent itself is ``RUNNING``, ``DOWN`` (restarting: connections refused),
``RECOVERING_CONTAINERS`` (every request 503) or ``RECOVERING`` (waiting for
the executor to re-subscribe: SUBSCRIBE and HEARTBEAT work, UPDATE and
MESSAGE get 503).

Everything the agent sees and does is recorded (:attr:`~FakeAgent.calls`,
:attr:`~FakeAgent.events`, :meth:`~FakeAgent.updates`); the ``wait_*``
methods sleep on one ``trio.lowlevel.ParkingLot`` that every state change
wakes, so nothing polls.

Timers (heartbeats, delayed acknowledgements, the shutdown grace period, the
re-registration timeout) are trio sleeps, so they run in virtual time under
``trio.testing.MockClock``.

TLS: ``listen_tcp(ssl_context=...)`` wraps every accepted TCP connection in a
server-side ``trio.SSLStream`` (the handshake runs on the connection's first
read, so a failed one just ends that connection), as an agent with
``LIBPROCESS_SSL_ENABLED=true``; a restart listens again with the same context.

Hostile behaviour: :meth:`~FakeAgent.hijack_next` hands chosen requests to an
async function that writes raw bytes on the connection (a huge or endless
head, a trickle, a body that never ends, a wrong Content-Type, a response
nobody asked for...); ``trio_mesos.testing._hostile`` builds such functions.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import errno
import getpass
import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

import trio
import trio.testing

from .._config import ExecutorConfig, format_duration
from .._messages import ContentType, is_terminal, is_valid_uuid
from .._recordio import encode_record
from ..v1 import executor_pb2, mesos_pb2
from ._agent_json import CallParseError, parse_json_call, parse_protobuf_call, write_json
from ._hostile import RawAnswer
from ._http_server import (
    PLAIN_TEXT,
    Request,
    ServerConnection,
    default_error_body,
    first_header,
)

__all__ = [
    "DEFAULT_PATH",
    "AckPolicy",
    "ExecutorProcess",
    "FakeAgent",
    "FakeAgentError",
    "NotSubscribedError",
    "RecordedCall",
    "SentEvent",
]

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trio_mesos.testing.fake_agent")

Call = executor_pb2.Call
Event = executor_pb2.Event

#: ``PATH`` in every executor environment: the Mesos containerizer's host
#: default (checked against a real 1.11 agent, ../shared/realmesos/README.md).
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The agent's libprocess id; requests go to ``/slave(1)/api/v1/executor``.
AGENT_PROCESS_ID: Final = "slave(1)"
_EXECUTOR_ENDPOINT: Final = "/api/v1/executor"
_OPERATOR_ENDPOINT: Final = "/api/v1"
#: ``DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL`` in ``src/slave/constants.hpp``.
DEFAULT_HEARTBEAT_INTERVAL: Final = 30 * 60.0
#: How long one event write may take before the agent gives the stream up.
DEFAULT_WRITE_TIMEOUT: Final = 10.0
#: Grace for killing and reaping a spawned executor on exit (real time).
_REAP_TIMEOUT: Final = 5.0
_REALM: Final = "mesos-agent-executor"
_NOT_RECOVERED: Final = "Agent has not finished recovery"

_Predicate: TypeAlias = Callable[[], bool]


# ------------------------------------------------------------------------------------
# Public value types
# ------------------------------------------------------------------------------------


class AckPolicy(enum.Enum):
    """When the agent sends ACKNOWLEDGED for an update it accepted.

    Attributes:
        IMMEDIATE: right away (queued before the ``202`` is written).
        DELAYED: after ``ack_delay`` seconds (trio time), like a real agent
            that acknowledges only once the update is checkpointed. A restart
            in between loses the acknowledgement.
        WITHHELD: never on its own; :meth:`FakeAgent.ack` still sends one.
        MANUAL: only when the test calls :meth:`FakeAgent.ack`.
    """

    IMMEDIATE = "immediate"
    DELAYED = "delayed"
    WITHHELD = "withheld"
    MANUAL = "manual"


class FakeAgentError(Exception):
    """A FakeAgent control method was used in a way the agent cannot honour."""


class NotSubscribedError(FakeAgentError):
    """No executor is subscribed: there is no event stream to write to."""


@dataclass(frozen=True, slots=True, eq=False)
class RecordedCall:
    """One request the agent answered, as it arrived.

    Attributes:
        time: ``trio.current_time()`` when the answer was decided.
        method: the HTTP method.
        path: the request path (query string removed).
        headers: request headers, ``(name, value)`` with the sender's spelling.
        content_type: the request's ``Content-Type``, or None.
        call: the decoded ``Call``, or None when the body did not decode (or
            was never read, e.g. 404 / 405 / 401).
        status_code: the HTTP status answered (200 for an accepted SUBSCRIBE).
        response_body: the response body (empty for 200 and 202).
        request_body: the raw request body.
        transport: ``"memory"``, ``"tcp"``, ``"tls"`` (TCP with TLS) or ``"unix"``.
        connection: serial number of the connection it came on.
    """

    time: float
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    content_type: str | None
    call: executor_pb2.Call | None
    status_code: int
    response_body: bytes
    request_body: bytes
    transport: str
    connection: int

    @property
    def type(self) -> int | None:
        """The ``Call.Type`` of the decoded call, or None (undecodable or unset)."""
        if self.call is None or not self.call.HasField("type"):
            return None
        return int(self.call.type)

    def header(self, name: str) -> str | None:
        """The first value of request header ``name`` (case-insensitive)."""
        return first_header(self.headers, name)


@dataclass(frozen=True, slots=True, eq=False)
class SentEvent:
    """One event the agent wrote (or tried to write) on a SUBSCRIBE stream.

    Attributes:
        time: ``trio.current_time()`` when it was written or given up.
        event: the Event, or None for bytes written by :meth:`FakeAgent.inject`.
        chunk: the bytes of the HTTP chunk's payload (RecordIO-framed record,
            or the injected bytes as given).
        delivered: True when the bytes were handed to the transport; False
            when the event was lost (stream stalled, peer gone, write timed out).
        subscription: which subscription stream (1 = the first SUBSCRIBE).
    """

    time: float
    event: executor_pb2.Event | None
    chunk: bytes
    delivered: bool
    subscription: int

    @property
    def type(self) -> int | None:
        """The ``Event.Type``, or None for injected bytes."""
        return None if self.event is None else int(self.event.type)


# ------------------------------------------------------------------------------------
# Internal state
# ------------------------------------------------------------------------------------


class _AgentState(enum.Enum):
    RUNNING = "running"
    DOWN = "down"
    RECOVERING_CONTAINERS = "recovering containers"
    RECOVERING = "recovering"


class _ExecutorState(enum.Enum):
    REGISTERING = "registering"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class _ItemKind(enum.Enum):
    CHUNK = "chunk"
    END = "end"


@dataclass(eq=False)
class _Outgoing:
    kind: _ItemKind
    chunk: bytes = b""
    event: executor_pb2.Event | None = None
    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    delivered: bool = False


class _StreamStatus(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # the last chunk is queued
    CLOSED = "closed"  # ended with the last chunk
    BROKEN = "broken"  # peer gone, write failed or timed out, dropped


@dataclass(eq=False)
class _EventStream:
    serial: int
    content_type: ContentType
    connection: _Connection
    queue: deque[_Outgoing] = dataclasses.field(default_factory=deque)
    wakeup: trio.lowlevel.ParkingLot = dataclasses.field(default_factory=trio.lowlevel.ParkingLot)
    status: _StreamStatus = _StreamStatus.OPEN
    stalled: bool = False


@dataclass(eq=False)
class _Connection:
    http: ServerConnection
    scope: trio.CancelScope = dataclasses.field(default_factory=trio.CancelScope)
    done: trio.Event = dataclasses.field(default_factory=trio.Event)


@dataclass(eq=False)
class _Listener:
    transport: str
    address: Any
    ssl_context: ssl.SSLContext | None = None
    scope: trio.CancelScope = dataclasses.field(default_factory=trio.CancelScope)
    done: trio.Event = dataclasses.field(default_factory=trio.Event)


@dataclass(eq=False)
class _Task:
    info: mesos_pb2.TaskInfo
    state: int = mesos_pb2.TASK_STAGING
    uuids: set[bytes] = dataclasses.field(default_factory=set)


@dataclass(eq=False)
class _Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class _FailRule:
    remaining: int
    status: int
    body: bytes
    calls: frozenset[int] | None


@dataclass(eq=False)
class _Hijack:
    remaining: int
    answer: RawAnswer
    calls: frozenset[int] | None
    process: bool


_Rule = TypeVar("_Rule", _FailRule, _Hijack)


def _take_rule(rules: list[_Rule], call: executor_pb2.Call) -> _Rule | None:
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


class _Generation:
    """Cancel scopes of the background timers of one agent incarnation."""

    def __init__(self) -> None:
        # A dict, not a set: cancelled in the order they started (a set's
        # order depends on memory addresses, and so would the scheduling).
        self.scopes: dict[trio.CancelScope, None] = {}
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        for scope in list(self.scopes):
            scope.cancel()


# ------------------------------------------------------------------------------------
# Spawned executors
# ------------------------------------------------------------------------------------


class ExecutorProcess:
    """A running executor started by :meth:`FakeAgent.spawn_executor`.

    It runs in its own process group (session); leaving the
    ``spawn_executor`` block kills the whole group with SIGKILL.

    Attributes:
        pid: the executor's process id (also its process group id).
        sandbox: its sandbox folder (``MESOS_SANDBOX``, ``MESOS_DIRECTORY``,
            working directory); holds ``stdout`` and ``stderr``.
        argv: the command line.
        environment: the exact environment it was given.
    """

    def __init__(
        self,
        process: trio.Process,
        sandbox: pathlib.Path,
        argv: tuple[str, ...],
        environment: Mapping[str, str],
    ) -> None:
        self._process = process
        self.pid: int = process.pid
        self.sandbox = sandbox
        self.argv = argv
        self.environment = dict(environment)

    @property
    def stdout_path(self) -> pathlib.Path:
        """``<sandbox>/stdout``."""
        return self.sandbox / "stdout"

    @property
    def stderr_path(self) -> pathlib.Path:
        """``<sandbox>/stderr``."""
        return self.sandbox / "stderr"

    @property
    def returncode(self) -> int | None:
        """The exit status (negative signal number), or None while it runs."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait until the executor process exits; return its exit status.

        Cancelling the wait leaves the process alone.
        """
        return await self._process.wait()

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the executor's whole process group (no-op once it is empty)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the whole process group, as the agent destroying the container."""
        self.signal_group(signal.SIGKILL)


# ------------------------------------------------------------------------------------
# The agent
# ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _accepts(accept_values: list[str], media_type: str) -> bool:
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


class FakeAgent:
    """A scriptable Mesos agent serving the v1 executor HTTP API.

    Use it as ``async with FakeAgent(...) as agent:``; leaving the block
    closes every listener and connection, cancels every timer and kills any
    executor process it spawned. An agent can be entered only once.

    Args:
        framework_id: the framework the executor belongs to.
        executor_id: the one executor this agent runs.
        agent_id: the agent's id (``MESOS_SLAVE_ID``, ``AgentInfo.id``).
        hostname: ``AgentInfo.hostname`` and ``FrameworkInfo.hostname``.
        checkpoint: ``FrameworkInfo.checkpoint``. With it, a :meth:`restart`
            keeps the framework, executor and tasks (the executor must
            re-subscribe); without it they are forgotten.
        token: when set, executor authentication is enforced: every request
            needs ``Authorization: Bearer <token>`` (or a token from
            :meth:`make_token`), else 401; a token whose claims do not match
            the call gets 403. The executor environment carries the token.
        ack_policy: when ACKNOWLEDGED is sent; see :class:`AckPolicy`.
        ack_delay: seconds to wait with :attr:`AckPolicy.DELAYED`.
        shutdown_grace_period: seconds between SHUTDOWN and the agent
            destroying the executor (``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``).
        reregistration_timeout: seconds the restarted agent waits for the
            executor to re-subscribe (``--executor_reregistration_timeout``,
            ``MESOS_SUBSCRIPTION_BACKOFF_MAX``).
        recovery_timeout: ``MESOS_RECOVERY_TIMEOUT`` for checkpointing executors.
        executor_info: ``ExecutorInfo`` sent in SUBSCRIBED (default: a custom
            executor with this agent's ids).
        framework_info: ``FrameworkInfo`` sent in SUBSCRIBED (default: built
            from the ids, ``hostname`` and ``checkpoint``); its ``id`` is filled
            in when unset.
        heartbeat_interval: seconds between HEARTBEAT events on a stream, the
            first one that long after SUBSCRIBED (the real agent: 30 minutes);
            None disables them.
        write_timeout: seconds one event write may block (the executor not
            reading) before the agent gives the stream up.
    """

    def __init__(
        self,
        *,
        framework_id: str = "fake-framework-0000",
        executor_id: str = "fake-executor",
        agent_id: str = "fake-agent-S0",
        hostname: str = "localhost",
        checkpoint: bool = False,
        token: str | None = None,
        ack_policy: AckPolicy = AckPolicy.IMMEDIATE,
        ack_delay: float = 0.0,
        shutdown_grace_period: float = 5.0,
        reregistration_timeout: float = 2.0,
        recovery_timeout: float = 900.0,
        executor_info: mesos_pb2.ExecutorInfo | None = None,
        framework_info: mesos_pb2.FrameworkInfo | None = None,
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ) -> None:
        if not isinstance(ack_policy, AckPolicy):
            raise TypeError(f"ack_policy must be an AckPolicy, not {ack_policy!r}")
        for name, value in (
            ("ack_delay", ack_delay),
            ("shutdown_grace_period", shutdown_grace_period),
            ("reregistration_timeout", reregistration_timeout),
            ("recovery_timeout", recovery_timeout),
            ("write_timeout", write_timeout),
        ):
            if not value >= 0 or math.isinf(value):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not write_timeout > 0:
            raise ValueError(f"write_timeout must be > 0, not {write_timeout!r}")
        if heartbeat_interval is not None and not heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0 or None, not {heartbeat_interval!r}")
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.agent_id = agent_id
        self.hostname = hostname
        self.checkpoint = checkpoint
        self.token = token
        self.ack_policy = ack_policy
        self.ack_delay = ack_delay
        self.shutdown_grace_period = shutdown_grace_period
        self.reregistration_timeout = reregistration_timeout
        self.recovery_timeout = recovery_timeout
        self.heartbeat_interval = heartbeat_interval
        self.write_timeout = write_timeout
        self._executor_info = executor_info
        self._framework_info = framework_info
        #: ``ContainerID.value`` of the executor's current container.
        self.container_id = str(uuid.uuid4())

        #: Every request answered, in order.
        self.calls: list[RecordedCall] = []
        #: Every event written or lost, in order.
        self.events: list[SentEvent] = []
        #: Data of every MESSAGE call accepted (executor to framework).
        self.messages: list[bytes] = []
        #: Number of accepted SUBSCRIBE calls (streams that started with SUBSCRIBED).
        self.subscriptions = 0
        #: The last accepted SUBSCRIBE call, or None.
        self.last_subscribe: executor_pb2.Call | None = None

        self._jwt_key = os.urandom(32)
        self._issued_tokens: dict[str, dict[str, str]] = {}
        self._agent_state = _AgentState.RUNNING
        self._executor_state = _ExecutorState.REGISTERING
        self._framework_known = True
        self._stream: _EventStream | None = None
        self._streams: list[_EventStream] = []
        self._tasks: dict[str, _Task] = {}
        self._history: dict[str, list[mesos_pb2.TaskStatus]] = {}
        self._all_updates: list[mesos_pb2.TaskStatus] = []
        self._pending_acks: dict[bytes, str] = {}
        self._fail_rules: list[_FailRule] = []
        self._hijacks: list[_Hijack] = []
        #: Requests answered by a :meth:`hijack_next` rule without processing.
        self.hijacked: list[Request] = []
        self._observers: list[Callable[[RecordedCall | SentEvent], None]] = []
        # Insertion-ordered (see _Generation.scopes).
        self._connections: dict[_Connection, None] = {}
        self._listeners: list[_Listener] = []
        self._tcp_port: int | None = None
        self._tcp_ssl_context: ssl.SSLContext | None = None
        self._unix_path: str | None = None
        self._processes: list[ExecutorProcess] = []
        self._executor_argv: tuple[str, ...] | None = None
        self._tmpdir: pathlib.Path | None = None
        self._serials = itertools.count(1)
        self._changed = trio.lowlevel.ParkingLot()
        self._generation = _Generation()
        self._restart_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._lifetime: contextlib.AbstractAsyncContextManager[FakeAgent] | None = None
        self._entered = False
        self._closed = False

    # -- lifetime -------------------------------------------------------------------

    async def __aenter__(self) -> FakeAgent:
        if self._entered:
            raise RuntimeError("a FakeAgent can be entered only once")
        self._entered = True
        self._lifetime = self._run()
        return await self._lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._lifetime is not None
        return await self._lifetime.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _run(self) -> AsyncIterator[FakeAgent]:
        body_error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    yield self
                except BaseException as exc:
                    body_error = exc
                    raise
                finally:
                    self._closed = True
                    self._generation.cancel()
                    for process in self._processes:
                        process.kill_group()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps the body's own exception: hand it back as it was
            # raised (STYLE.md §4 pitfalls 1-2), unless a background task failed too.
            if body_error is not None and list(group.exceptions) == [body_error]:
                context = body_error.__context__
                try:
                    raise body_error  # the group only wrapped it
                finally:
                    body_error.__context__ = context
            raise
        finally:
            self._closed = True
            self._nursery = None
            if self._unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._unix_path)
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None or self._closed:
            raise RuntimeError("the FakeAgent is not running (use 'async with FakeAgent()')")
        return self._nursery

    # -- observation helpers ----------------------------------------------------------

    def _notify(self) -> None:
        self._changed.unpark_all()

    async def _wait_until(self, predicate: _Predicate) -> None:
        if predicate():
            await trio.lowlevel.checkpoint()
            return
        while not predicate():
            await self._changed.park()

    def add_observer(
        self, callback: Callable[[RecordedCall | SentEvent], None]
    ) -> Callable[[], None]:
        """Call ``callback`` synchronously with every new RecordedCall and SentEvent.

        Returns:
            A function that removes the observer.
        """
        self._observers.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._observers.remove(callback)

        return remove

    def _record(self, item: RecordedCall | SentEvent) -> None:
        if isinstance(item, RecordedCall):
            self.calls.append(item)
        else:
            self.events.append(item)
        for observer in list(self._observers):
            try:
                observer(item)
            except Exception:
                logger.exception("FakeAgent observer %r failed", observer)
        self._notify()

    @property
    def subscribed(self) -> bool:
        """Whether the agent holds an event stream for the executor (it subscribed
        and the stream was not replaced, dropped, ended or lost to a restart)."""
        return self._stream is not None

    @property
    def stream_connected(self) -> bool:
        """Whether the current event stream's connection is still usable for writing."""
        stream = self._stream
        return stream is not None and stream.status is _StreamStatus.OPEN

    @property
    def executor_state(self) -> str:
        """The agent's view of the executor: ``registering``, ``running``,
        ``terminating`` or ``terminated``."""
        return self._executor_state.value

    @property
    def state(self) -> str:
        """The agent's own state: ``running``, ``down``, ``recovering containers``
        (every request 503) or ``recovering`` (waiting for re-subscription)."""
        return self._agent_state.value

    @property
    def port(self) -> int | None:
        """The TCP port, once :meth:`listen_tcp` was called."""
        return self._tcp_port

    @property
    def unix_path(self) -> str | None:
        """The Unix socket path, once :meth:`listen_unix` was called."""
        return self._unix_path

    @property
    def unacknowledged_tasks_seen(self) -> list[mesos_pb2.TaskInfo]:
        """``unacknowledged_tasks`` of the last accepted SUBSCRIBE ([] before any)."""
        if self.last_subscribe is None:
            return []
        return list(self.last_subscribe.subscribe.unacknowledged_tasks)

    @property
    def unacknowledged_updates_seen(self) -> list[mesos_pb2.TaskStatus]:
        """The statuses in ``unacknowledged_updates`` of the last accepted SUBSCRIBE."""
        if self.last_subscribe is None:
            return []
        return [u.status for u in self.last_subscribe.subscribe.unacknowledged_updates]

    @property
    def pending_acks(self) -> list[tuple[str, bytes]]:
        """``(task_id, uuid)`` of accepted updates whose ACKNOWLEDGED is not sent yet."""
        return [(task_id, key) for key, task_id in self._pending_acks.items()]

    def updates(self, task_id: str | None = None) -> list[mesos_pb2.TaskStatus]:
        """Status history of ``task_id`` (every task when None), in arrival order.

        Holds every status that reached the agent's update path: each UPDATE
        answered 202 (also for unknown tasks, and updates the agent then
        dropped), each status re-sent in a SUBSCRIBE's
        ``unacknowledged_updates`` (duplicates appear once per arrival), and
        the updates the agent generates itself (``source = SOURCE_AGENT``:
        TASK_LOST after a restart, TASK_FAILED when the executor is gone).
        """
        if task_id is None:
            return list(self._all_updates)
        return list(self._history.get(task_id, ()))

    def task_state(self, task_id: str) -> int | None:
        """The latest ``TaskState`` the agent holds for a launched task.

        ``TASK_STAGING`` from :meth:`launch` until the first update; never
        changed by updates after a terminal one. None for tasks never launched.
        """
        task = self._tasks.get(task_id)
        return None if task is None else task.state

    async def wait_for_update(self, task_id: str, state: int) -> mesos_pb2.TaskStatus:
        """Wait until a status with ``state`` for ``task_id`` is in :meth:`updates`.

        Returns the first such status (at once when it already arrived).
        Cancelling the wait has no other effect.
        """
        found: list[mesos_pb2.TaskStatus] = []

        def arrived() -> bool:
            for status in self._history.get(task_id, ()):
                if status.state == state:
                    found.append(status)
                    return True
            return False

        await self._wait_until(arrived)
        return found[0]

    async def wait_terminal(self, *task_ids: str) -> None:
        """Wait until every one of ``task_ids`` is in a terminal state (:meth:`task_state`).

        Returns at once when they all are. Cancelling the wait has no other effect.
        """

        def done() -> bool:
            states = [self.task_state(task_id) for task_id in task_ids]
            return all(state is not None and is_terminal(state) for state in states)

        await self._wait_until(done)

    async def wait_subscribed(self, count: int = 1) -> None:
        """Wait until the executor has subscribed ``count`` times in total.

        Returns at once when it already has. Cancelling the wait has no other
        effect.
        """
        await self._wait_until(lambda: self.subscriptions >= count)

    async def wait_call(self, call_type: int, count: int = 1) -> RecordedCall:
        """Wait until ``count`` requests whose Call has ``call_type`` were answered.

        Returns the ``count``-th such :class:`RecordedCall` (1 = the first one,
        also when it arrived before the wait started).
        """
        found: list[RecordedCall] = []

        def arrived() -> bool:
            matches = [c for c in self.calls if c.type == call_type]
            if len(matches) >= count:
                found.append(matches[count - 1])
                return True
            return False

        await self._wait_until(arrived)
        return found[0]

    async def wait_event(self, event_type: int, count: int = 1) -> SentEvent:
        """Wait until ``count`` events of ``event_type`` were written (delivered).

        Returns the ``count``-th such :class:`SentEvent`.
        """
        found: list[SentEvent] = []

        def written() -> bool:
            matches = [e for e in self.events if e.delivered and e.type == event_type]
            if len(matches) >= count:
                found.append(matches[count - 1])
                return True
            return False

        await self._wait_until(written)
        return found[0]

    async def wait_recovered(self) -> None:
        """Wait until a :meth:`restart` has run all its phases (at once if none runs)."""
        await self._wait_until(lambda: self._agent_state is _AgentState.RUNNING)

    async def wait_state(self, state: str) -> None:
        """Wait until the agent's :attr:`state` equals ``state`` (e.g. ``"recovering"``)."""
        known = {s.value for s in _AgentState}
        if state not in known:
            raise ValueError(f"unknown agent state {state!r}; one of {sorted(known)}")
        await self._wait_until(lambda: self._agent_state.value == state)

    async def wait_executor_state(self, state: str) -> None:
        """Wait until :attr:`executor_state` equals ``state`` (e.g. ``"terminated"``)."""
        known = {s.value for s in _ExecutorState}
        if state not in known:
            raise ValueError(f"unknown executor state {state!r}; one of {sorted(known)}")
        await self._wait_until(lambda: self._executor_state.value == state)

    # -- transports ---------------------------------------------------------------------

    def _refuse_if_down(self) -> None:
        if self._agent_state is _AgentState.DOWN:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "FakeAgent is down (restarting)")

    async def connect(self) -> trio.abc.Stream:
        """Open an in-memory connection to the agent; return the client's end.

        The agent serves the other end like a TCP connection (both endpoint
        paths work). Works under ``trio.testing.MockClock``.

        Raises:
            ConnectionRefusedError: the agent is down (during a :meth:`restart`).
        """
        nursery = self._require_nursery()
        self._refuse_if_down()
        await trio.lowlevel.checkpoint()
        self._refuse_if_down()
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(self._serve_connection, server, "memory")
        return client

    async def listen_tcp(self, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Serve on 127.0.0.1 at a free port; return the port (same port when called again).

        With ``ssl_context`` (a server-side context, e.g. from ``trustme``) the
        port speaks TLS, as an agent with ``LIBPROCESS_SSL_ENABLED=true``;
        recorded calls then have ``transport == "tls"``. Require client
        certificates with ``ssl_context.verify_mode = ssl.CERT_REQUIRED``. As
        on a real cluster the executor is not told: give it the
        ``LIBPROCESS_SSL_*`` settings yourself (``executor_config(tls=...)`` or
        ``spawn_executor(extra_env=...)``).

        Raises:
            RuntimeError: already listening on TCP with another ``ssl_context``.
        """
        self._require_nursery()
        if self._tcp_port is not None:
            if ssl_context is not self._tcp_ssl_context:
                raise RuntimeError("already listening on TCP with another ssl_context")
            await trio.lowlevel.checkpoint()
            return self._tcp_port
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listener = listeners[0]
        for extra in listeners[1:]:
            await extra.aclose()
        assert isinstance(listener, trio.SocketListener)
        self._tcp_port = int(listener.socket.getsockname()[1])
        self._tcp_ssl_context = ssl_context
        transport = "tcp" if ssl_context is None else "tls"
        await self._start_listener(listener, transport, self._tcp_port, ssl_context)
        return self._tcp_port

    @property
    def tls(self) -> bool:
        """Whether the TCP listener speaks TLS (``listen_tcp(ssl_context=...)``)."""
        return self._tcp_ssl_context is not None

    async def listen_unix(self, path: str | os.PathLike[str]) -> None:
        """Serve on a Unix socket at ``path`` (it must not exist; removed on exit).

        Over the socket only ``/slave(1)/api/v1/executor`` and
        ``/slave(1)/api/v1`` are served (anything else: 403), as on a real agent.
        """
        self._require_nursery()
        if self._unix_path is not None:
            raise RuntimeError(f"already listening on {self._unix_path}")
        text = os.fspath(path)
        listener = await self._open_unix_listener(text)
        self._unix_path = text
        await self._start_listener(listener, "unix", text)

    @staticmethod
    async def _open_unix_listener(path: str) -> trio.SocketListener:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await sock.bind(path)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return trio.SocketListener(sock)

    async def _start_listener(
        self,
        listener: trio.SocketListener,
        transport: str,
        address: Any,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        nursery = self._require_nursery()
        record = _Listener(transport, address, ssl_context)
        self._listeners.append(record)
        await nursery.start(self._accept_loop, listener, record)

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        record: _Listener,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with record.scope:
                async with listener:
                    task_status.started()
                    while True:
                        try:
                            stream = await listener.accept()
                        except trio.ClosedResourceError:
                            return
                        if self._nursery is None:  # pragma: no cover - shutting down
                            await trio.aclose_forcefully(stream)
                            return
                        served: trio.abc.Stream = stream
                        if record.ssl_context is not None:
                            # The handshake runs on the first read, in the
                            # connection's own task; a failed one reads as EOF.
                            served = trio.SSLStream(
                                stream,
                                record.ssl_context,
                                server_side=True,
                                https_compatible=True,
                            )
                        self._nursery.start_soon(self._serve_connection, served, record.transport)
        finally:
            # A Unix socket file stays behind, as after a crash: connecting to
            # it is refused until the agent listens again.
            record.done.set()

    async def _reopen_listeners(self, records: list[_Listener]) -> None:
        for old in records:
            try:
                if old.transport in ("tcp", "tls"):
                    listener = trio.SocketListener(await self._bind_tcp(int(old.address)))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(old.address)
                    listener = await self._open_unix_listener(old.address)
            except OSError as exc:
                logger.error("FakeAgent could not listen again on %s: %s", old.address, exc)
                continue
            await self._start_listener(listener, old.transport, old.address, old.ssl_context)

    @staticmethod
    async def _bind_tcp(port: int) -> trio.socket.SocketType:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        try:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            await sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    # -- connection handling --------------------------------------------------------------

    async def _serve_connection(self, stream: trio.abc.Stream, transport: str) -> None:
        connection = _Connection(ServerConnection(stream, transport, next(self._serials)))
        self._connections[connection] = None
        try:
            with connection.scope:
                if self._agent_state is _AgentState.DOWN:
                    return
                await self._connection_loop(connection)
        finally:
            self._connections.pop(connection, None)
            for event_stream in [s for s in self._streams if s.connection is connection]:
                self._break_stream(event_stream)
                self._streams.remove(event_stream)
            await trio.aclose_forcefully(stream)
            connection.done.set()

    async def _connection_loop(self, connection: _Connection) -> None:
        http = connection.http
        while True:
            request = await http.next_request()
            if request is None:
                return
            hijack = self._take_hijack(request)
            if hijack is not None:
                if not await self._run_hijack(connection, request, hijack):
                    return
                if not http.start_next_cycle():
                    return
                continue
            outcome = self._respond(connection, request)
            if isinstance(outcome, _Reply):
                try:
                    await http.send_response(outcome.status, outcome.headers, outcome.body)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            elif not await self._run_event_stream(connection, outcome):
                return
            if not http.start_next_cycle():
                return

    async def _run_event_stream(self, connection: _Connection, stream: _EventStream) -> bool:
        """Write ``stream``'s events on ``connection``; True if the connection may go on."""
        http = connection.http
        try:
            await http.send_stream_head(stream.content_type.value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._break_stream(stream)
            return False
        keep_open = False
        async with trio.open_nursery() as nursery:

            async def watch_peer() -> None:
                await http.receive_while_streaming()
                logger.debug("subscription %d: the executor closed the stream", stream.serial)
                self._break_stream(stream)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_peer)
            keep_open = await self._write_events(http, stream)
            nursery.cancel_scope.cancel()
        return keep_open and not http.peer_closed

    async def _write_events(self, http: ServerConnection, stream: _EventStream) -> bool:
        while True:
            while not stream.queue:
                if stream.status is _StreamStatus.BROKEN:
                    return False
                await stream.wakeup.park()
            item = stream.queue.popleft()
            if stream.status is _StreamStatus.BROKEN:
                self._lose(stream, item)
                continue
            if item.kind is _ItemKind.END:
                try:
                    await http.send_last_chunk()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._break_stream(stream)
                    item.done.set()
                    return False
                except BaseException:
                    item.done.set()
                    raise
                stream.status = _StreamStatus.CLOSED
                item.delivered = True
                item.done.set()
                self._notify()
                return True
            with trio.move_on_after(self.write_timeout) as timeout:
                try:
                    await http.send_chunk(item.chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._lose(stream, item)
                    self._break_stream(stream)
                    return False
                except BaseException:
                    # Cancelled mid-write (the peer went away, or the agent is
                    # closing): the item is lost, and whoever awaits it must know.
                    self._lose(stream, item)
                    raise
            if timeout.cancelled_caught:
                logger.warning(
                    "subscription %d: event write blocked for %ss; giving the stream up",
                    stream.serial,
                    self.write_timeout,
                )
                self._lose(stream, item)
                self._break_stream(stream)
                return False
            item.delivered = True
            item.done.set()
            self._record(
                SentEvent(trio.current_time(), item.event, item.chunk, True, stream.serial)
            )

    def _lose(self, stream: _EventStream, item: _Outgoing) -> None:
        item.done.set()
        if item.kind is _ItemKind.CHUNK:
            self._record(
                SentEvent(trio.current_time(), item.event, item.chunk, False, stream.serial)
            )

    def _break_stream(self, stream: _EventStream) -> None:
        if stream.status in (_StreamStatus.BROKEN, _StreamStatus.CLOSED):
            return
        stream.status = _StreamStatus.BROKEN
        while stream.queue:
            self._lose(stream, stream.queue.popleft())
        stream.wakeup.unpark_all()
        self._notify()

    # -- events ---------------------------------------------------------------------------

    def _encode(self, event: executor_pb2.Event, content_type: ContentType) -> bytes:
        if content_type is ContentType.JSON:
            return write_json(event)
        return event.SerializeToString()

    def _enqueue(self, stream: _EventStream | None, item: _Outgoing) -> _Outgoing:
        """Queue ``item`` on ``stream`` (or lose it at once); never blocks."""
        if stream is None or stream.stalled or stream.status is not _StreamStatus.OPEN:
            item.done.set()
            if item.kind is _ItemKind.CHUNK:
                self._record(
                    SentEvent(
                        trio.current_time(),
                        item.event,
                        item.chunk,
                        False,
                        0 if stream is None else stream.serial,
                    )
                )
            return item
        if item.kind is _ItemKind.END:
            stream.status = _StreamStatus.CLOSING
        stream.queue.append(item)
        stream.wakeup.unpark_all()
        return item

    def _enqueue_event(self, stream: _EventStream | None, event: executor_pb2.Event) -> _Outgoing:
        chunk = b""
        if stream is not None:
            chunk = encode_record(self._encode(event, stream.content_type))
        return self._enqueue(stream, _Outgoing(_ItemKind.CHUNK, chunk, event))

    def _end_stream(self, stream: _EventStream) -> None:
        """Close ``stream`` with the last chunk (its connection stays open)."""
        if stream.stalled:
            # A stalled stream writes nothing, not even the last chunk.
            stream.status = _StreamStatus.CLOSED
            return
        self._enqueue(stream, _Outgoing(_ItemKind.END))

    def _current_stream(self) -> _EventStream:
        self._require_nursery()
        if self._stream is None:
            raise NotSubscribedError(f"executor {self.executor_id!r} is not subscribed")
        return self._stream

    async def _emit(self, event: executor_pb2.Event) -> bool:
        item = self._enqueue_event(self._current_stream(), event)
        await item.done.wait()
        return item.delivered

    # -- control --------------------------------------------------------------------------

    def _task_info(self, task: mesos_pb2.TaskInfo) -> mesos_pb2.TaskInfo:
        if not isinstance(task, mesos_pb2.TaskInfo):
            raise TypeError(f"expected a mesos_pb2.TaskInfo, not {type(task).__name__}")
        copy = mesos_pb2.TaskInfo()
        copy.CopyFrom(task)
        if not copy.HasField("agent_id"):
            copy.agent_id.value = self.agent_id
        if not copy.IsInitialized():
            missing = ", ".join(_initialization_errors(copy))
            raise ValueError(f"TaskInfo is missing required fields: {missing}")
        return copy

    def _remember_launched(self, task: mesos_pb2.TaskInfo) -> None:
        self._tasks[task.task_id.value] = _Task(task)
        self._notify()

    async def launch(self, task: mesos_pb2.TaskInfo) -> bool:
        """Send LAUNCH for ``task`` (``agent_id`` filled in when unset).

        The task is recorded as launched, in ``TASK_STAGING``, before the
        event is queued. Returns once the event was written (True) or lost
        (False: the stream is stalled or its connection is gone). If the
        executor stops reading, a write blocks at most ``write_timeout``
        seconds; then the agent gives the stream up (its connection is closed)
        and the event is lost. Cancelling the wait does not withdraw the event.

        Raises:
            NotSubscribedError: no executor is subscribed.
            ValueError: the TaskInfo lacks required fields.
        """
        stream = self._current_stream()
        info = self._task_info(task)
        self._remember_launched(info)
        event = Event(type=Event.LAUNCH)
        event.launch.task.CopyFrom(info)
        item = self._enqueue_event(stream, event)
        await item.done.wait()
        return item.delivered

    async def launch_group(self, group: mesos_pb2.TaskGroupInfo) -> bool:
        """Send LAUNCH_GROUP for ``group``; every task is recorded as launched (STAGING).

        Blocking, return value, cancellation and errors as :meth:`launch`.
        """
        stream = self._current_stream()
        if not isinstance(group, mesos_pb2.TaskGroupInfo):
            raise TypeError(f"expected a mesos_pb2.TaskGroupInfo, not {type(group).__name__}")
        event = Event(type=Event.LAUNCH_GROUP)
        infos = [self._task_info(task) for task in group.tasks]
        for info in infos:
            self._remember_launched(info)
            event.launch_group.task_group.tasks.add().CopyFrom(info)
        item = self._enqueue_event(stream, event)
        await item.done.wait()
        return item.delivered

    async def kill(self, task_id: str, kill_policy: mesos_pb2.KillPolicy | None = None) -> bool:
        """Send KILL for ``task_id`` (with ``kill_policy`` as override when given).

        Blocking, return value and cancellation as :meth:`launch`.

        Raises:
            NotSubscribedError: no executor is subscribed.
        """
        event = Event(type=Event.KILL)
        event.kill.task_id.value = task_id
        if kill_policy is not None:
            event.kill.kill_policy.CopyFrom(kill_policy)
        return await self._emit(event)

    async def message(self, data: bytes) -> bool:
        """Send MESSAGE with ``data`` (a framework message to the executor).

        Blocking, return value and cancellation as :meth:`launch`.
        """
        event = Event(type=Event.MESSAGE)
        event.message.data = bytes(data)
        return await self._emit(event)

    async def heartbeat(self) -> bool:
        """Send a HEARTBEAT event now (besides the periodic ones).

        Blocking, return value and cancellation as :meth:`launch`.
        """
        return await self._emit(Event(type=Event.HEARTBEAT))

    async def shutdown(self) -> bool:
        """Send SHUTDOWN; the executor becomes ``terminating``; the stream stays open.

        As on a real agent, after ``shutdown_grace_period`` seconds the
        executor is destroyed if it is still there: its spawned process group
        is killed, tasks that are not terminal become TASK_FAILED
        (``REASON_EXECUTOR_TERMINATED``), the stream is closed with the last
        chunk and the framework is forgotten (calls then get 400). A
        SUBSCRIBE in between gets a stream holding only SHUTDOWN.

        Blocking, return value and cancellation as :meth:`launch`.
        """
        stream = self._current_stream()
        self._begin_termination()
        item = self._enqueue_event(stream, Event(type=Event.SHUTDOWN))
        await item.done.wait()
        return item.delivered

    def _begin_termination(self) -> None:
        if self._executor_state in (_ExecutorState.REGISTERING, _ExecutorState.RUNNING):
            self._executor_state = _ExecutorState.TERMINATING
            self._spawn_timer(self._shutdown_timeout)
            self._notify()

    async def _shutdown_timeout(self) -> None:
        await trio.sleep(self.shutdown_grace_period)
        if self._executor_state is _ExecutorState.TERMINATING:
            logger.info("executor did not exit within the shutdown grace period; destroying it")
            self._terminate_executor(
                mesos_pb2.TASK_FAILED,
                mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED,
                "Executor terminated",
            )

    async def inject(self, raw: bytes) -> bool:
        """Write ``raw`` as one HTTP chunk on the stream, exactly as given.

        For malformed RecordIO, undecodable records or unknown event types
        (frame them yourself with ``trio_mesos._recordio.encode_record``).
        Blocking, return value and cancellation as :meth:`launch`.
        """
        stream = self._current_stream()
        item = self._enqueue(stream, _Outgoing(_ItemKind.CHUNK, bytes(raw), None))
        await item.done.wait()
        return item.delivered

    async def stall(self) -> None:
        """Stop writing on the current stream; it stays open but silent.

        From now on every event for this stream (ACKs and heartbeats too) is
        lost, and control methods return False at once; a re-SUBSCRIBE gets a
        normal new stream (the stalled one is abandoned without a last
        chunk). :meth:`drop_stream` or :meth:`restart` close it.

        Raises:
            NotSubscribedError: no executor is subscribed.
        """
        stream = self._current_stream()
        stream.stalled = True
        await trio.lowlevel.checkpoint()

    async def drop_stream(self) -> None:
        """Close the current stream's connection abruptly (EOF, no last chunk).

        What the executor sees when the agent crashes, but the agent keeps
        running and keeps the executor ``running``: a re-SUBSCRIBE is
        accepted; until then :attr:`subscribed` is False and events are
        lost. Returns once the connection is closed.

        Raises:
            NotSubscribedError: no executor is subscribed.
        """
        stream = self._current_stream()
        self._stream = None
        self._break_stream(stream)
        connection = stream.connection
        connection.scope.cancel()
        await connection.done.wait()

    async def ack(self, uuid_: bytes | uuid.UUID) -> bool:
        """Send the ACKNOWLEDGED held back for the update with this uuid.

        For :attr:`AckPolicy.MANUAL` and :attr:`AckPolicy.WITHHELD` (and a
        DELAYED one not sent yet). Returns once written (True) or lost (False).

        Raises:
            KeyError: no acknowledgement is pending for this uuid.
            NotSubscribedError: no executor is subscribed (it stays pending).
        """
        key = uuid_.bytes if isinstance(uuid_, uuid.UUID) else bytes(uuid_)
        if key not in self._pending_acks:
            raise KeyError(f"no acknowledgement pending for uuid {key.hex()}")
        stream = self._current_stream()
        task_id = self._pending_acks.pop(key)
        item = self._enqueue_event(stream, self._ack_event(task_id, key))
        await item.done.wait()
        return item.delivered

    async def ack_all(self) -> int:
        """Send every pending ACKNOWLEDGED (see :meth:`ack`); return how many were written."""
        count = 0
        for _task_id, key in self.pending_acks:
            if await self.ack(key):
                count += 1
        return count

    def fail_next(
        self,
        n: int,
        status: int,
        body: str | bytes = "",
        *,
        calls: Collection[int] | None = None,
    ) -> None:
        """Answer the next ``n`` non-SUBSCRIBE calls with ``status`` and ``body``.

        Applies to requests that decoded into a Call (after routing,
        authentication and the Content-Type check, before validation); with
        ``calls`` only to those ``Call.Type`` values. A failed call is not
        processed (an UPDATE is not accepted, no ACK). Returns at once.
        Rules queue up: the oldest rule with calls left applies.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        data = body.encode() if isinstance(body, str) else bytes(body)
        wanted = None if calls is None else frozenset(int(c) for c in calls)
        if wanted is not None and Call.SUBSCRIBE in wanted:
            raise ValueError("fail_next never applies to SUBSCRIBE")
        self._fail_rules.append(_FailRule(n, int(status), data, wanted))

    def hijack_next(
        self,
        n: int,
        answer: RawAnswer,
        *,
        calls: Collection[int] | None = None,
        process: bool = False,
    ) -> None:
        """Answer the next ``n`` matching requests with ``answer`` (hostile-agent tests).

        ``answer(stream, reply)`` gets the connection's raw server-side stream
        and writes whatever it likes (see ``trio_mesos.testing._hostile`` for
        builders: trickles, endless heads, raw responses). Rules apply to
        requests whose body decodes to a Call, with ``calls`` only to those
        ``Call.Type`` values (SUBSCRIBE included); the oldest rule with
        requests left applies.

        Without ``process`` the request is not handled at all (no state
        change, not in :attr:`calls`; it is appended to :attr:`hijacked`) and
        ``reply`` is ``b""``. With ``process`` the agent first handles it as
        usual (recorded in :attr:`calls`; an UPDATE is accepted and its
        acknowledgement scheduled) and ``reply`` holds the bytes of its own
        answer; for SUBSCRIBE that is the stream head and the events queued so
        far (SUBSCRIBED), after which the stream counts as stalled: later
        events are lost until the executor subscribes again.

        When ``answer`` returns True and ``process`` was set for a call other
        than SUBSCRIBE, the connection goes on serving requests (``answer``
        is assumed to have written a complete response); otherwise it is
        closed. Returns at once.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        wanted = None if calls is None else frozenset(int(c) for c in calls)
        self._hijacks.append(_Hijack(n, answer, wanted, process))

    def _take_hijack(self, request: Request) -> _Hijack | None:
        if not self._hijacks:
            return None
        content_type = request.header("Content-Type")
        try:
            if content_type == ContentType.PROTOBUF.value:
                call = parse_protobuf_call(request.body)
            elif content_type == ContentType.JSON.value:
                call = parse_json_call(request.body)
            else:
                return None
        except CallParseError:
            return None
        return _take_rule(self._hijacks, call)

    async def _run_hijack(self, connection: _Connection, request: Request, rule: _Hijack) -> bool:
        """Run a hostile answer; True if the connection may serve another request."""
        http = connection.http
        reply = b""
        complete = False
        if rule.process:
            outcome = self._respond(connection, request)
            if isinstance(outcome, _Reply):
                reply = http.response_bytes(outcome.status, outcome.headers, outcome.body)
                complete = True
            else:
                reply = http.stream_head_bytes(outcome.content_type.value)
                while outcome.queue:
                    item = outcome.queue.popleft()
                    if item.kind is _ItemKind.CHUNK:
                        reply += http.chunk_bytes(item.chunk)
                        item.delivered = True
                        self._record(
                            SentEvent(
                                trio.current_time(), item.event, item.chunk, True, outcome.serial
                            )
                        )
                    item.done.set()
                outcome.stalled = True
        else:
            self.hijacked.append(request)
            self._notify()
        try:
            keep = await rule.answer(http.stream, reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return bool(keep) and complete

    # -- restart --------------------------------------------------------------------------

    async def restart(self, down: float = 1.0, recovering: float = 1.0) -> None:
        """Crash and restart the agent; return once it is down.

        Every connection is closed abruptly (streams end without a last chunk),
        timers stop, pending acknowledgements are forgotten. Then, in the
        background (see :meth:`wait_recovered`):

        1. ``down`` seconds: connections are refused (:meth:`connect` raises
           ConnectionRefusedError; TCP and Unix listeners are closed).
        2. ``recovering`` seconds: every request gets ``503 Agent has not
           finished recovery``.
        3. With ``checkpoint``: SUBSCRIBE (200) and HEARTBEAT (202) work,
           UPDATE and MESSAGE get 503, until the executor re-subscribed or
           ``reregistration_timeout`` passed; in the latter case the executor
           is destroyed (tasks TASK_LOST, ``REASON_EXECUTOR_REREGISTRATION_TIMEOUT``)
           and the framework forgotten. Without ``checkpoint`` the framework
           is unknown after the restart (400 ``Framework cannot be found``).
        4. Normal operation.

        Calling it again during a restart starts over.
        """
        nursery = self._require_nursery()
        if not (down >= 0 and recovering >= 0):
            raise ValueError("down and recovering must be >= 0")
        if self._restart_scope is not None:
            self._restart_scope.cancel()
        self._generation.cancel()
        self._generation = _Generation()
        self._agent_state = _AgentState.DOWN
        self._pending_acks.clear()
        self._fail_rules.clear()
        self._stream = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.scope.cancel()
        connections = list(self._connections)
        for connection in connections:
            connection.scope.cancel()
        for stream in self._streams:
            self._break_stream(stream)
        self._streams.clear()
        if not self.checkpoint:
            self._framework_known = False
        elif self._executor_state is not _ExecutorState.TERMINATED:
            self._executor_state = _ExecutorState.REGISTERING
        self._notify()
        for listener in listeners:
            await listener.done.wait()
        for connection in connections:
            await connection.done.wait()
        scope = trio.CancelScope()
        self._restart_scope = scope
        await nursery.start(self._restart_phases, scope, listeners, down, recovering)

    async def _restart_phases(
        self,
        scope: trio.CancelScope,
        listeners: list[_Listener],
        down: float,
        recovering: float,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            task_status.started()
            await trio.sleep(down)
            self._agent_state = _AgentState.RECOVERING_CONTAINERS
            await self._reopen_listeners(listeners)
            self._notify()
            await trio.sleep(recovering)
            if self._framework_known and self._executor_state is _ExecutorState.REGISTERING:
                self._agent_state = _AgentState.RECOVERING
                self._notify()
                with trio.move_on_after(self.reregistration_timeout):
                    await self._wait_until(
                        lambda: self._executor_state is not _ExecutorState.REGISTERING
                    )
                if self._executor_state is _ExecutorState.REGISTERING:
                    logger.info("executor did not re-subscribe in time; destroying it")
                    self._terminate_executor(
                        mesos_pb2.TASK_LOST,
                        mesos_pb2.TaskStatus.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                        "Executor did not reregister within "
                        + format_duration(self.reregistration_timeout),
                    )
            self._agent_state = _AgentState.RUNNING
            self._notify()
        if self._restart_scope is scope:
            self._restart_scope = None

    # -- executor lifecycle ----------------------------------------------------------------

    def _spawn_timer(self, fn: Callable[[], Awaitable[None]]) -> None:
        nursery = self._nursery
        if nursery is None:
            return
        generation = self._generation

        async def run() -> None:
            with trio.CancelScope() as scope:
                if generation.cancelled:
                    scope.cancel()
                generation.scopes[scope] = None
                try:
                    await fn()
                finally:
                    generation.scopes.pop(scope, None)

        nursery.start_soon(run)

    def _terminate_executor(self, state: int, reason: int, message: str) -> None:
        """The executor's container is gone: fail its tasks, end its stream, forget it."""
        for task_id, task in self._tasks.items():
            if not is_terminal(task.state):
                status = self._agent_status(task_id, state, reason, message)
                self._add_history(status)
                task.state = state
        stream = self._stream
        self._stream = None
        if stream is not None:
            self._end_stream(stream)
        self._executor_state = _ExecutorState.TERMINATED
        self._framework_known = False
        self._pending_acks.clear()
        for process in self._processes:
            process.kill_group()
        self._notify()

    def _agent_status(
        self, task_id: str, state: int, reason: int, message: str
    ) -> mesos_pb2.TaskStatus:
        status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
        status.task_id.value = task_id
        status.source = mesos_pb2.TaskStatus.SOURCE_AGENT
        status.reason = reason  # type: ignore[assignment]
        status.message = message
        status.agent_id.value = self.agent_id
        status.executor_id.value = self.executor_id
        status.uuid = uuid.uuid4().bytes
        status.timestamp = trio.current_time()
        return status

    # -- spawning -------------------------------------------------------------------------

    def executor_config(self, **overrides: Any) -> ExecutorConfig:
        """An :class:`~trio_mesos.ExecutorConfig` for an executor of this agent.

        The same values :meth:`executor_environment` gives (the recovery
        timeout and backoff only when checkpointing, else the defaults);
        ``agent_host``/``agent_port``/``agent_pid`` when listening on TCP,
        ``domain_socket`` when listening on a Unix socket, and the path
        ``/slave(1)/api/v1/executor`` in either case. ``overrides`` replace
        any field. Pure: no I/O.
        """
        checkpoint = bool(overrides.get("checkpoint", self.checkpoint))
        values: dict[str, Any] = {
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "agent_id": self.agent_id,
            "checkpoint": checkpoint,
            "shutdown_grace_period": self.shutdown_grace_period,
            "authentication_token": self.token,
        }
        if checkpoint:
            # Only checkpointing executors get these two variables.
            values["recovery_timeout"] = self.recovery_timeout
            values["subscription_backoff_max"] = self.reregistration_timeout
        if self._tcp_port is not None:
            values["agent_host"] = "127.0.0.1"
            values["agent_port"] = self._tcp_port
            values["agent_pid"] = f"{AGENT_PROCESS_ID}@127.0.0.1:{self._tcp_port}"
            values["agent_path"] = f"/{AGENT_PROCESS_ID}{_EXECUTOR_ENDPOINT}"
        if self._unix_path is not None:
            values["domain_socket"] = self._unix_path
            values["agent_path"] = f"/{AGENT_PROCESS_ID}{_EXECUTOR_ENDPOINT}"
        values.update(overrides)
        return ExecutorConfig(**values)

    def executor_environment(
        self, sandbox: str | os.PathLike[str], *, checkpoint: bool | None = None
    ) -> dict[str, str]:
        """Exactly the environment a real agent gives an executor of this agent.

        The variables of PROTOCOL.md §3.9 as a Mesos 1.11 agent sets them
        (../shared/realmesos/README.md), pointing at the TCP listener, plus
        ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` when a token is set and
        ``MESOS_DOMAIN_SOCKET`` when listening on a Unix socket.

        Args:
            sandbox: the sandbox path (``MESOS_DIRECTORY`` and ``MESOS_SANDBOX``).
            checkpoint: overrides ``MESOS_CHECKPOINT`` (and the two variables
                that come with it); None = this agent's setting.

        Raises:
            RuntimeError: the agent is not listening on TCP (:meth:`listen_tcp`).
        """
        if self._tcp_port is None:
            raise RuntimeError("executor_environment() needs a TCP listener: call listen_tcp()")
        endpoint = f"127.0.0.1:{self._tcp_port}"
        directory = os.fspath(sandbox)
        checkpointing = self.checkpoint if checkpoint is None else checkpoint
        env = {
            "LIBPROCESS_IP": "127.0.0.1",
            "LIBPROCESS_PORT": "0",
            "MESOS_AGENT_ENDPOINT": endpoint,
            "MESOS_SLAVE_PID": f"{AGENT_PROCESS_ID}@{endpoint}",
            "MESOS_SLAVE_ID": self.agent_id,
            "MESOS_FRAMEWORK_ID": self.framework_id,
            "MESOS_EXECUTOR_ID": self.executor_id,
            "MESOS_DIRECTORY": directory,
            "MESOS_SANDBOX": directory,
            "MESOS_CHECKPOINT": "1" if checkpointing else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(self.shutdown_grace_period),
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "PATH": DEFAULT_PATH,
        }
        if checkpointing:
            env["MESOS_RECOVERY_TIMEOUT"] = format_duration(self.recovery_timeout)
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = format_duration(self.reregistration_timeout)
        if self.token is not None:
            env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = self.token
        if self._unix_path is not None:
            env["MESOS_DOMAIN_SOCKET"] = self._unix_path
        return env

    def _new_sandbox(self) -> pathlib.Path:
        if self._tmpdir is None:
            self._tmpdir = pathlib.Path(tempfile.mkdtemp(prefix="trio-mesos-fake-agent-"))
        path = (
            self._tmpdir
            / "slaves"
            / self.agent_id
            / "frameworks"
            / self.framework_id
            / "executors"
            / self.executor_id
            / "runs"
            / self.container_id
        )
        path.mkdir(parents=True, exist_ok=False)
        return path

    def _relaunch_if_gone(self) -> None:
        if self._executor_state is _ExecutorState.TERMINATED:
            self._executor_state = _ExecutorState.REGISTERING
            self._framework_known = True
            self.container_id = str(uuid.uuid4())
            self._notify()

    @contextlib.asynccontextmanager
    async def spawn_executor(
        self,
        argv: Iterable[str],
        *,
        checkpoint: bool | None = None,
        sandbox: str | os.PathLike[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ExecutorProcess]:
        """Start an executor process the way a real agent does (an async context manager).

        ``async with agent.spawn_executor([...]) as proc:`` starts ``argv`` with
        exactly :meth:`executor_environment` (nothing inherited; ``PATH`` is the
        agent's default), in ``sandbox`` (a fresh folder under a temporary
        directory when None; removed when the agent exits) as working
        directory, stdout and stderr to ``<sandbox>/stdout`` and
        ``<sandbox>/stderr``, in a new session (its own process group). It
        starts listening on TCP first if needed. An executor that the agent
        had destroyed is launched anew (new container id).

        Leaving the block SIGKILLs the whole process group and reaps the
        executor (bounded by a few seconds of real time, shielded). When the
        executor exits on its own, the agent treats its container as gone:
        tasks not yet terminal become TASK_FAILED (``REASON_EXECUTOR_TERMINATED``).

        Args:
            argv: program and arguments (the program is looked up in the
                agent's ``PATH`` unless it is a path).
            checkpoint: overrides ``MESOS_CHECKPOINT`` (None = the agent's).
            sandbox: an existing folder to use as sandbox.
            extra_env: more variables (like ``--executor_environment_variables``).
        """
        nursery = self._require_nursery()
        argv_tuple = tuple(argv)
        if not argv_tuple:
            raise ValueError("argv must not be empty")
        await self.listen_tcp()
        self._relaunch_if_gone()
        sandbox_path = self._new_sandbox() if sandbox is None else pathlib.Path(sandbox)
        env = self.executor_environment(sandbox_path, checkpoint=checkpoint)
        if extra_env:
            env.update(extra_env)
        self._executor_argv = argv_tuple
        process = await _open_executor_process(argv_tuple, env, sandbox_path)
        handle = ExecutorProcess(process, sandbox_path, argv_tuple, env)
        self._processes.append(handle)
        nursery.start_soon(self._watch_process, handle)
        try:
            yield handle
        finally:
            handle.kill_group()
            with trio.move_on_after(_REAP_TIMEOUT, shield=True):
                await process.wait()
            with contextlib.suppress(ValueError):
                self._processes.remove(handle)

    async def _watch_process(self, handle: ExecutorProcess) -> None:
        code = await handle.wait()
        logger.info("executor process %d exited with %d", handle.pid, code)
        current = bool(self._processes) and self._processes[-1] is handle
        if current and self._executor_state is not _ExecutorState.TERMINATED:
            self._terminate_executor(
                mesos_pb2.TASK_FAILED,
                mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED,
                "Executor terminated",
            )

    # -- authentication -------------------------------------------------------------------

    def make_token(
        self,
        *,
        framework_id: str | None = None,
        executor_id: str | None = None,
        container_id: str | None = None,
    ) -> str:
        """Issue an HS256 JWT this agent accepts, with claims ``fid``/``eid``/``cid``.

        Each claim defaults to this agent's value; give another to provoke a
        403 (``Authenticated principal ... does not contain ...``).
        """
        claims = {
            "cid": self.container_id if container_id is None else container_id,
            "eid": self.executor_id if executor_id is None else executor_id,
            "fid": self.framework_id if framework_id is None else framework_id,
        }
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64url(signature.digest())}"
        self._issued_tokens[token] = claims
        return token

    def _authenticate(self, request: Request) -> tuple[_Reply | None, dict[str, str] | None]:
        """Return (401 reply, None) or (None, claims of the principal)."""
        challenge = f'Bearer realm="{_REALM}"'
        value = request.header("Authorization")
        if value is None:
            return self._unauthorized(challenge), None
        parts = value.split(" ")
        if len(parts) != 2:
            return self._unauthorized_token(challenge, "Malformed 'Authorization' header"), None
        scheme, token = parts
        if scheme != "Bearer":
            return self._unauthorized_token(challenge, f"Scheme '{scheme}' unsupported"), None
        if token == self.token:
            return None, {
                "cid": self.container_id,
                "eid": self.executor_id,
                "fid": self.framework_id,
            }
        claims = self._verify_jwt(token)
        if isinstance(claims, str):
            return self._unauthorized_token(challenge, f"Invalid JWT: {claims}"), None
        if not claims:
            return self._unauthorized_token(challenge, "JWT claims missing"), None
        return None, claims

    def _verify_jwt(self, token: str) -> dict[str, str] | str:
        parts = token.split(".")
        if len(parts) != 3:
            return "Expected 3 parts in JWT"
        expected = hmac.new(self._jwt_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
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

    @staticmethod
    def _unauthorized(challenge: str) -> _Reply:
        body = default_error_body(401)
        return _Reply(401, body, (("WWW-Authenticate", challenge),))

    @staticmethod
    def _unauthorized_token(challenge: str, description: str) -> _Reply:
        body = default_error_body(401)
        value = f'{challenge},error="invalid_token",error_description="{description}"'
        return _Reply(401, body, (("WWW-Authenticate", value),))

    def _claims_error(self, claims: dict[str, str], call: executor_pb2.Call) -> str | None:
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
        if claims.get("cid") != self.container_id:
            return (
                f"Authenticated principal '{principal}' does not contain a 'cid' claim with "
                "the correct active ContainerID"
            )
        return None

    # -- request handling -----------------------------------------------------------------

    def _respond(self, connection: _Connection, request: Request) -> _Reply | _EventStream:
        """Decide the answer to one request (synchronous) and record it."""
        call: executor_pb2.Call | None = None
        outcome: _Reply | _EventStream
        try:
            outcome, call = self._decide(connection, request)
        except Exception:  # a bug here must not hang the client
            logger.exception("FakeAgent failed to answer %s %s", request.method, request.path)
            outcome = _Reply(500, default_error_body(500))
        if isinstance(outcome, _Reply):
            headers = list(outcome.headers)
            if outcome.status >= 400 or outcome.body:
                body = outcome.body or default_error_body(outcome.status)
                outcome = _Reply(
                    outcome.status,
                    body,
                    (*headers, ("Content-Type", PLAIN_TEXT), ("Content-Length", str(len(body)))),
                )
            else:
                outcome = _Reply(outcome.status, b"", (*headers, ("Content-Length", "0")))
        self._record(
            RecordedCall(
                time=trio.current_time(),
                method=request.method,
                path=request.path,
                headers=request.headers,
                content_type=request.header("Content-Type"),
                call=call,
                status_code=outcome.status if isinstance(outcome, _Reply) else 200,
                response_body=outcome.body if isinstance(outcome, _Reply) else b"",
                request_body=request.body,
                transport=connection.http.transport,
                connection=connection.http.serial,
            )
        )
        return outcome

    @staticmethod
    def _route(transport: str, path: str) -> str | None:
        """The endpoint (``/api/v1/executor`` or ``/api/v1``) a path reaches, or None."""
        if transport == "unix":
            for endpoint in (_EXECUTOR_ENDPOINT, _OPERATOR_ENDPOINT):
                if path == f"/{AGENT_PROCESS_ID}{endpoint}":
                    return endpoint
            return "forbidden"
        prefix = f"/{AGENT_PROCESS_ID}/"
        endpoint = "/" + path[len(prefix) :] if path.startswith(prefix) else path
        endpoint = endpoint.rstrip("/") or "/"
        if endpoint in (_EXECUTOR_ENDPOINT, _OPERATOR_ENDPOINT):
            return endpoint
        return None

    def _decide(
        self, connection: _Connection, request: Request
    ) -> tuple[_Reply | _EventStream, executor_pb2.Call | None]:
        endpoint = self._route(connection.http.transport, request.path)
        if endpoint == "forbidden":
            return _Reply(403), None
        if endpoint is None:
            return _Reply(404), None
        if endpoint == _OPERATOR_ENDPOINT:
            return self._operator_api(request), None

        claims: dict[str, str] | None = None
        if self.token is not None:
            unauthorized, claims = self._authenticate(request)
            if unauthorized is not None:
                return unauthorized, None

        # Row 1: containerizer recovery not finished (every call, every method).
        if self._agent_state is _AgentState.RECOVERING_CONTAINERS:
            return _Reply(503, _NOT_RECOVERED.encode()), None
        if request.method != "POST":
            body = (
                "405 Method Not Allowed. Expecting one of { 'POST' }, "
                f"but received '{request.method}'."
            )
            return _Reply(405, body.encode(), (("Allow", "POST"),)), None

        content_type = request.header("Content-Type")
        if content_type is None:
            return _Reply(400, b"Expecting 'Content-Type' to be present"), None
        try:
            if content_type == ContentType.PROTOBUF.value:
                call = parse_protobuf_call(request.body)
            elif content_type == ContentType.JSON.value:
                call = parse_json_call(request.body)
            else:
                body = "Expecting 'Content-Type' of application/json or application/x-protobuf"
                return _Reply(415, body.encode()), None
        except CallParseError as exc:
            return _Reply(400, str(exc).encode("utf-8", "surrogateescape")), None

        failed = self._take_fail_rule(call)
        if failed is not None:
            return failed, call

        problem = _validate(call)
        if problem is not None:
            body = "Failed to validate Executor::Call: " + problem
            return _Reply(400, body.encode("utf-8", "surrogateescape")), call

        accept_type = ContentType.JSON
        if call.type == Call.SUBSCRIBE:
            accept = request.header_values("Accept")
            if _accepts(accept, ContentType.JSON.value):
                accept_type = ContentType.JSON
            elif _accepts(accept, ContentType.PROTOBUF.value):
                accept_type = ContentType.PROTOBUF
            else:
                body = "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"
                return _Reply(406, body.encode()), call
        elif call.type == Call.HEARTBEAT:
            return _Reply(202), call
        elif self._agent_state is _AgentState.RECOVERING:
            return _Reply(503, _NOT_RECOVERED.encode()), call

        if not self._framework_known or call.framework_id.value != self.framework_id:
            return _Reply(400, b"Framework cannot be found"), call
        if call.executor_id.value != self.executor_id:
            return _Reply(400, b"Executor cannot be found"), call
        if claims is not None:
            error = self._claims_error(claims, call)
            if error is not None:
                return _Reply(403, error.encode()), call
        if self._executor_state is _ExecutorState.REGISTERING and call.type != Call.SUBSCRIBE:
            return _Reply(403, b"Executor is not subscribed"), call

        if call.type == Call.SUBSCRIBE:
            return self._subscribe(connection, call, accept_type), call
        if call.type == Call.UPDATE:
            status = mesos_pb2.TaskStatus()
            status.CopyFrom(call.update.status)
            if not status.HasField("agent_id"):
                status.agent_id.value = self.agent_id
            self._process_update(status)
            return _Reply(202), call
        if call.type == Call.MESSAGE:
            self.messages.append(call.message.data)
            self._notify()
            return _Reply(202), call
        # Call.UNKNOWN
        return _Reply(501), call

    def _operator_api(self, request: Request) -> _Reply:
        """``/api/v1`` (the operator API): not implemented beyond the real agent's
        answers to an executor Call sent there by mistake."""
        if request.method != "POST":
            body = (
                "405 Method Not Allowed. Expecting one of { 'POST' }, "
                f"but received '{request.method}'."
            )
            return _Reply(405, body.encode(), (("Allow", "POST"),))
        content_type = request.header("Content-Type")
        if content_type is None:
            return _Reply(400, b"Expecting 'Content-Type' to be present")
        if content_type == ContentType.PROTOBUF.value:
            return _Reply(400, b"Failed to parse body into a protobuf object")
        if content_type != ContentType.JSON.value:
            body = "Expecting 'Content-Type' of application/json or application/x-protobuf"
            return _Reply(415, body.encode())
        try:
            parse_json_call(request.body)
        except CallParseError as exc:
            text = str(exc)
            if text.startswith("Failed to parse body into JSON"):
                return _Reply(400, text.encode("utf-8", "surrogateescape"))
        return _Reply(400, b"Failed to validate agent::Call: Expecting 'type' to be present")

    def _take_fail_rule(self, call: executor_pb2.Call) -> _Reply | None:
        if call.HasField("type") and call.type == Call.SUBSCRIBE:
            return None
        rule = _take_rule(self._fail_rules, call)
        return None if rule is None else _Reply(rule.status, rule.body)

    # -- SUBSCRIBE -----------------------------------------------------------------------

    def _subscribe(
        self, connection: _Connection, call: executor_pb2.Call, content_type: ContentType
    ) -> _EventStream:
        stream = _EventStream(0, content_type, connection)
        self._streams.append(stream)
        if self._executor_state is _ExecutorState.TERMINATING:
            # slave.cpp: a terminating executor gets a stream with SHUTDOWN only.
            self._enqueue_event(stream, Event(type=Event.SHUTDOWN))
            self._end_stream(stream)
            return stream

        previous = self._stream
        if previous is not None:
            self._end_stream(previous)
        self._stream = stream
        self._executor_state = _ExecutorState.RUNNING
        self.subscriptions += 1
        stream.serial = self.subscriptions
        self.last_subscribe = call

        self._enqueue_event(stream, self._subscribed_event())
        for update in call.subscribe.unacknowledged_updates:
            status = mesos_pb2.TaskStatus()
            status.CopyFrom(update.status)
            self._process_update(status, from_subscribe=True)
        listed = {task.task_id.value for task in call.subscribe.unacknowledged_tasks}
        for task_id, task in self._tasks.items():
            if task.state == mesos_pb2.TASK_STAGING and task_id not in listed:
                status = self._agent_status(
                    task_id,
                    mesos_pb2.TASK_LOST,
                    mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED,
                    "Task launched during agent restart",
                )
                self._add_history(status)
                task.state = mesos_pb2.TASK_LOST
        if self.heartbeat_interval is not None:
            self._spawn_timer(lambda: self._heartbeats(stream))
        self._notify()
        return stream

    async def _heartbeats(self, stream: _EventStream) -> None:
        assert self.heartbeat_interval is not None
        while True:
            await trio.sleep(self.heartbeat_interval)
            if self._stream is not stream:
                return
            self._enqueue_event(stream, Event(type=Event.HEARTBEAT))

    def _subscribed_event(self) -> executor_pb2.Event:
        event = Event(type=Event.SUBSCRIBED)
        subscribed = event.subscribed
        subscribed.executor_info.CopyFrom(self._default_executor_info())
        subscribed.framework_info.CopyFrom(self._default_framework_info())
        agent_info = subscribed.agent_info
        agent_info.hostname = self.hostname
        if self._tcp_port is not None:
            agent_info.port = self._tcp_port
        for name, value in (("cpus", 8.0), ("mem", 8192.0), ("disk", 8192.0)):
            resource = agent_info.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
            resource.scalar.value = value
        ports = agent_info.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
        ports.ranges.range.add(begin=31000, end=31999)
        agent_info.id.value = self.agent_id
        # A 1.11 agent also sends field 7 (the v0 SlaveInfo.checkpoint, varint 1),
        # unknown to the v1 schema: protobuf decoders must skip it. JSON omits it.
        agent_info.MergeFromString(b"\x38\x01")
        subscribed.container_id.value = self.container_id
        return event

    def _default_executor_info(self) -> mesos_pb2.ExecutorInfo:
        if self._executor_info is not None:
            info = mesos_pb2.ExecutorInfo()
            info.CopyFrom(self._executor_info)
            return info
        info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM)
        info.executor_id.value = self.executor_id
        info.framework_id.value = self.framework_id
        argv = self._executor_argv or ("fake-executor",)
        info.command.shell = False
        info.command.value = argv[0]
        info.command.arguments.extend(argv)
        for name, value in (("cpus", 0.1), ("mem", 32.0)):
            resource = info.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
            resource.scalar.value = value
        info.name = f"FakeAgent executor {self.executor_id}"
        info.source = self.executor_id
        return info

    def _default_framework_info(self) -> mesos_pb2.FrameworkInfo:
        if self._framework_info is not None:
            info = mesos_pb2.FrameworkInfo()
            info.CopyFrom(self._framework_info)
            if not info.HasField("id"):
                info.id.value = self.framework_id
            return info
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "root"
        info = mesos_pb2.FrameworkInfo(user=user, name="fake-framework")
        info.id.value = self.framework_id
        info.checkpoint = self.checkpoint
        info.hostname = self.hostname
        return info

    # -- UPDATE ---------------------------------------------------------------------------

    def _add_history(self, status: mesos_pb2.TaskStatus) -> None:
        self._history.setdefault(status.task_id.value, []).append(status)
        self._all_updates.append(status)

    def _process_update(
        self, status: mesos_pb2.TaskStatus, *, from_subscribe: bool = False
    ) -> None:
        """The status update path (PROTOCOL.md §3.4 outcome table)."""
        task_id = status.task_id.value
        self._add_history(status)
        self._notify()
        if from_subscribe:
            if not status.HasField("uuid"):
                logger.warning("ignoring update without uuid for task %s", task_id)
                return
            if status.state == mesos_pb2.TASK_STAGING:
                logger.error("TASK_STAGING re-sent in SUBSCRIBE: shutting the executor down")
                if self._stream is not None:
                    self._enqueue_event(self._stream, Event(type=Event.SHUTDOWN))
                self._begin_termination()
                return
        if status.HasField("agent_id") and status.agent_id.value != self.agent_id:
            logger.warning("ignoring update for task %s addressed to another agent", task_id)
            return
        task = self._tasks.get(task_id)
        if task is None:
            logger.info("update for unknown task %s: forwarded, never acknowledged", task_id)
            return
        key = status.uuid
        if key in task.uuids:
            logger.info("duplicate update %s for task %s: acknowledged again", key.hex(), task_id)
        elif is_terminal(task.state):
            logger.info("update for terminated task %s dropped (but acknowledged)", task_id)
        else:
            task.uuids.add(key)
            task.state = status.state
        self._schedule_ack(task_id, key)

    def _ack_event(self, task_id: str, key: bytes) -> executor_pb2.Event:
        event = Event(type=Event.ACKNOWLEDGED)
        event.acknowledged.task_id.value = task_id
        event.acknowledged.uuid = key
        return event

    def _schedule_ack(self, task_id: str, key: bytes) -> None:
        policy = self.ack_policy
        if policy is AckPolicy.IMMEDIATE:
            self._enqueue_event(self._stream, self._ack_event(task_id, key))
            return
        self._pending_acks[key] = task_id
        if policy is AckPolicy.DELAYED:

            async def delayed() -> None:
                await trio.sleep(self.ack_delay)
                if self._pending_acks.get(key) == task_id:
                    del self._pending_acks[key]
                    self._enqueue_event(self._stream, self._ack_event(task_id, key))

            self._spawn_timer(delayed)
        self._notify()


def _initialization_errors(message: Any) -> list[str]:
    # FindInitializationErrors exists at run time but not in the type stubs.
    find: Callable[[], list[str]] = getattr(message, "FindInitializationErrors")  # noqa: B009
    return find()


def _validate(call: executor_pb2.Call) -> str | None:
    """``validateExecutorCall`` (src/common/validation.cpp): the first problem, or None."""
    if not call.IsInitialized():
        return "Not initialized: " + ", ".join(_initialization_errors(call))
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


async def _open_executor_process(
    argv: tuple[str, ...], env: Mapping[str, str], sandbox: pathlib.Path
) -> trio.Process:
    stdout, stderr = _open_output_files(sandbox)
    try:
        return await trio.lowlevel.open_process(
            list(argv),
            env=dict(env),
            cwd=os.fspath(sandbox),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    finally:
        stdout.close()
        stderr.close()


def _open_output_files(sandbox: pathlib.Path) -> tuple[Any, Any]:
    stdout = open(sandbox / "stdout", "ab")  # noqa: SIM115 - closed by the caller
    try:
        stderr = open(sandbox / "stderr", "ab")  # noqa: SIM115
    except BaseException:
        stdout.close()
        raise
    return stdout, stderr
