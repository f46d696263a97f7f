"""The FakeAgent's state and what it does with accepted calls.

The agent-side state follows the real one (PROTOCOL.md §3): the executor is
``REGISTERING`` (launched, never subscribed), ``RUNNING`` (subscribed),
``TERMINATING`` (SHUTDOWN sent) or ``TERMINATED`` (its container is gone, and
with it the framework: calls then get ``400 Framework cannot be found``). The
agent itself is ``RUNNING``, ``DOWN`` (restarting: connections refused),
``RECOVERING_CONTAINERS`` (every request 503) or ``RECOVERING`` (waiting for
the executor to re-subscribe: SUBSCRIBE and HEARTBEAT work, UPDATE and
MESSAGE get 503).

:meth:`AgentCore._respond` asks the pure rules (``_rules.answer``) for the
answer to a request and carries out an accepted SUBSCRIBE, UPDATE or MESSAGE
(``Slave::subscribe`` and ``Slave::statusUpdate`` in ``src/slave/slave.cpp``).
Timers (heartbeats, delayed acknowledgements, the shutdown grace period) are
trio sleeps, so they run in virtual time under ``trio.testing.MockClock``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from .._messages import ContentType
from ..v1 import executor_pb2, mesos_pb2
from ._auth import Authenticator
from ._records import AckPolicy, NotSubscribedError, RecordedCall, Recorder
from ._request import Reply, Request
from ._rules import (
    Accepted,
    AgentState,
    AgentView,
    ExecutorState,
    FailRule,
    answer,
    decode_call,
    finish,
    take_rule,
)
from ._server import AgentServer, Connection, EventStream, Hijack
from ._subscribed import Identity, subscribed_event
from ._tasks import UpdateOutcome, ack_event

if TYPE_CHECKING:
    import pathlib

    from ._spawn import ExecutorProcess

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["AgentCore", "Generation"]

logger = logging.getLogger("trio_mesos.testing.fake_agent")

Event = executor_pb2.Event

#: ``DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL`` in ``src/slave/constants.hpp``.
DEFAULT_HEARTBEAT_INTERVAL: Final = 30 * 60.0
#: How long one event write may take before the agent gives the stream up.
DEFAULT_WRITE_TIMEOUT: Final = 10.0


_Agent = TypeVar("_Agent", bound="AgentCore")


class Generation:
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


class AgentCore(Recorder):
    """State, lifetime, transports and the handling of accepted calls (see FakeAgent)."""

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
        super().__init__(agent_id, executor_id)
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
        #: Requests answered by a :meth:`hijack_next` rule without processing.
        self.hijacked: list[Request] = []

        self._auth = Authenticator(os.urandom(32))
        self._agent_state = AgentState.RUNNING
        self._executor_state = ExecutorState.REGISTERING
        self._framework_known = True
        self._stream: EventStream | None = None
        self._fail_rules: list[FailRule] = []
        self._hijacks: list[Hijack] = []
        self._server = AgentServer(self)
        self._processes: list[ExecutorProcess] = []
        self._executor_argv: tuple[str, ...] | None = None
        self._tmpdir: pathlib.Path | None = None
        self._generation = Generation()
        self._restart_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._lifetime: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._entered = False
        self._closed = False

    # -- lifetime -------------------------------------------------------------------

    async def __aenter__(self: _Agent) -> _Agent:
        if self._entered:
            raise RuntimeError("a FakeAgent can be entered only once")
        self._entered = True
        lifetime = self._run()
        self._lifetime = lifetime
        return await lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._lifetime is not None
        return await self._lifetime.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _run(self: _Agent) -> AsyncIterator[_Agent]:
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
            if self._server.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._server.unix_path)
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None or self._closed:
            raise RuntimeError("the FakeAgent is not running (use 'async with FakeAgent()')")
        return self._nursery

    # -- state ------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """Whether the agent holds an event stream for the executor (it subscribed
        and the stream was not replaced, dropped, ended or lost to a restart)."""
        return self._stream is not None

    @property
    def stream_connected(self) -> bool:
        """Whether the current event stream's connection is still usable for writing."""
        stream = self._stream
        return stream is not None and stream.is_open

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

    async def wait_recovered(self) -> None:
        """Wait until a :meth:`restart` has run all its phases (at once if none runs)."""
        await self._wait_until(lambda: self._agent_state is AgentState.RUNNING)

    async def wait_state(self, state: str) -> None:
        """Wait until the agent's :attr:`state` equals ``state`` (e.g. ``"recovering"``)."""
        known = {s.value for s in AgentState}
        if state not in known:
            raise ValueError(f"unknown agent state {state!r}; one of {sorted(known)}")
        await self._wait_until(lambda: self._agent_state.value == state)

    async def wait_executor_state(self, state: str) -> None:
        """Wait until :attr:`executor_state` equals ``state`` (e.g. ``"terminated"``)."""
        known = {s.value for s in ExecutorState}
        if state not in known:
            raise ValueError(f"unknown executor state {state!r}; one of {sorted(known)}")
        await self._wait_until(lambda: self._executor_state.value == state)

    # -- transports ---------------------------------------------------------------------

    def _refuse_if_down(self) -> None:
        if self._agent_state is AgentState.DOWN:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "FakeAgent is down (restarting)")

    async def connect(self) -> trio.abc.Stream:
        """Open an in-memory connection to the agent; return the client's end.

        The agent serves the other end like a TCP connection (both endpoint
        paths work). Works under ``trio.testing.MockClock``.

        Raises:
            ConnectionRefusedError: the agent is down (during a :meth:`restart`).
        """
        return await self._server.connect()

    async def listen_tcp(self, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Serve on 127.0.0.1 at a free port; return the port (same port when called again).

        With ``ssl_context`` (a server-side ``ssl.SSLContext``) the port speaks
        TLS, as an agent with ``LIBPROCESS_SSL_ENABLED=true``; require client
        certificates with ``ssl_context.verify_mode = ssl.CERT_REQUIRED``. As
        on a real cluster the executor is not told: give it the
        ``LIBPROCESS_SSL_*`` settings yourself (``executor_config(tls=...)`` or
        ``spawn_executor(extra_env=...)``).

        Raises:
            RuntimeError: already listening on TCP with another ``ssl_context``.
        """
        return await self._server.listen_tcp(ssl_context=ssl_context)

    async def listen_unix(self, path: str | os.PathLike[str]) -> None:
        """Serve on a Unix socket at ``path`` (it must not exist; removed on exit).

        Over the socket only ``/slave(1)/api/v1/executor`` and
        ``/slave(1)/api/v1`` are served (anything else: 403), as on a real agent.
        """
        await self._server.listen_unix(path)

    @property
    def tls(self) -> bool:
        """Whether the TCP listener speaks TLS (``listen_tcp(ssl_context=...)``)."""
        return self._server.tcp_ssl_context is not None

    @property
    def port(self) -> int | None:
        """The TCP port, once :meth:`listen_tcp` was called."""
        return self._server.tcp_port

    @property
    def unix_path(self) -> str | None:
        """The Unix socket path, once :meth:`listen_unix` was called."""
        return self._server.unix_path

    # -- requests -----------------------------------------------------------------------

    def _take_hijack(self, request: Request) -> Hijack | None:
        if not self._hijacks:
            return None
        call = decode_call(request)
        return None if isinstance(call, Reply) else take_rule(self._hijacks, call)

    def _respond(self, connection: Connection, request: Request) -> Reply | EventStream:
        """Decide the answer to one request (synchronous), carry it out and record it."""
        view = AgentView(
            self._agent_state,
            self._executor_state,
            self._framework_known,
            self.framework_id,
            self.executor_id,
            self.container_id,
            connection.http.transport,
            self.token,
            self._auth,
        )
        call: executor_pb2.Call | None = None
        outcome: Reply | EventStream
        try:
            decided, call = answer(request, view, self._take_fail_rule)
            outcome = self._act(connection, decided) if isinstance(decided, Accepted) else decided
        except Exception:  # a bug here must not hang the client
            logger.exception("FakeAgent failed to answer %s %s", request.method, request.path)
            outcome = Reply(500)
        if isinstance(outcome, Reply):
            outcome = finish(outcome)
        self._record(
            RecordedCall(
                time=trio.current_time(),
                method=request.method,
                path=request.path,
                headers=request.headers,
                content_type=request.header("Content-Type"),
                call=call,
                status_code=outcome.status if isinstance(outcome, Reply) else 200,
                response_body=outcome.body if isinstance(outcome, Reply) else b"",
                request_body=request.body,
                transport=connection.http.transport,
                connection=connection.http.serial,
            )
        )
        return outcome

    def _take_fail_rule(self, call: executor_pb2.Call) -> Reply | None:
        rule = take_rule(self._fail_rules, call)
        return None if rule is None else Reply(rule.status, rule.body)

    def _act(self, connection: Connection, accepted: Accepted) -> Reply | EventStream:
        call = accepted.call
        if call.type == executor_pb2.Call.SUBSCRIBE:
            return self._subscribe(connection, call, accepted.accept)
        if call.type == executor_pb2.Call.UPDATE:
            status = mesos_pb2.TaskStatus()
            status.CopyFrom(call.update.status)
            if not status.HasField("agent_id"):
                status.agent_id.value = self.agent_id
            self._process_update(status)
        else:
            self.messages.append(call.message.data)
            self._notify()
        return Reply(202)

    def _subscribe(
        self, connection: Connection, call: executor_pb2.Call, content_type: ContentType
    ) -> EventStream:
        stream = self._server.new_stream(connection, content_type)
        if self._executor_state is ExecutorState.TERMINATING:
            # slave.cpp: a terminating executor gets a stream with SHUTDOWN only.
            self._server.enqueue_event(stream, Event(type=Event.SHUTDOWN))
            self._server.end_stream(stream)
            return stream

        previous = self._stream
        if previous is not None:
            self._server.end_stream(previous)
        self._stream = stream
        self._executor_state = ExecutorState.RUNNING
        self.subscriptions += 1
        stream.serial = self.subscriptions
        self.last_subscribe = call

        self._server.enqueue_event(stream, subscribed_event(self._identity()))
        for update in call.subscribe.unacknowledged_updates:
            status = mesos_pb2.TaskStatus()
            status.CopyFrom(update.status)
            self._process_update(status, from_subscribe=True)
        self._tasks.lose_unlisted_staging(call.subscribe, trio.current_time())
        if self.heartbeat_interval is not None:
            self._spawn_timer(lambda: self._heartbeats(stream))
        self._notify()
        return stream

    def _identity(self) -> Identity:
        return Identity(
            self.framework_id,
            self.executor_id,
            self.agent_id,
            self.hostname,
            self.checkpoint,
            self.container_id,
            self._executor_info,
            self._framework_info,
            self._server.tcp_port,
            self._executor_argv,
        )

    async def _heartbeats(self, stream: EventStream) -> None:
        assert self.heartbeat_interval is not None
        while True:
            await trio.sleep(self.heartbeat_interval)
            if self._stream is not stream:
                return
            self._server.enqueue_event(stream, Event(type=Event.HEARTBEAT))

    def _process_update(
        self, status: mesos_pb2.TaskStatus, *, from_subscribe: bool = False
    ) -> None:
        outcome = self._tasks.process_update(status, from_subscribe=from_subscribe)
        self._notify()
        if outcome is UpdateOutcome.SHUT_DOWN:
            if self._stream is not None:
                self._server.enqueue_event(self._stream, Event(type=Event.SHUTDOWN))
            self._begin_termination()
        elif outcome is UpdateOutcome.ACKNOWLEDGE:
            self._schedule_ack(status.task_id.value, status.uuid)

    def _schedule_ack(self, task_id: str, key: bytes) -> None:
        policy = self.ack_policy
        if policy is AckPolicy.IMMEDIATE:
            self._server.enqueue_event(self._stream, ack_event(task_id, key))
            return
        pending = self._tasks.pending_acks
        pending[key] = task_id
        if policy is AckPolicy.DELAYED:

            async def delayed() -> None:
                await trio.sleep(self.ack_delay)
                if pending.get(key) == task_id:
                    del pending[key]
                    self._server.enqueue_event(self._stream, ack_event(task_id, key))

            self._spawn_timer(delayed)
        self._notify()

    # -- events and the executor's end --------------------------------------------------

    def _current_stream(self) -> EventStream:
        self._require_nursery()
        if self._stream is None:
            raise NotSubscribedError(f"executor {self.executor_id!r} is not subscribed")
        return self._stream

    async def _emit(self, event: executor_pb2.Event, stream: EventStream | None = None) -> bool:
        item = self._server.enqueue_event(stream or self._current_stream(), event)
        await item.done.wait()
        return item.delivered

    def _begin_termination(self) -> None:
        if self._executor_state in (ExecutorState.REGISTERING, ExecutorState.RUNNING):
            self._executor_state = ExecutorState.TERMINATING
            self._spawn_timer(self._shutdown_timeout)
            self._notify()

    async def _shutdown_timeout(self) -> None:
        await trio.sleep(self.shutdown_grace_period)
        if self._executor_state is ExecutorState.TERMINATING:
            logger.info("executor did not exit within the shutdown grace period; destroying it")
            self._terminate_executor(
                mesos_pb2.TASK_FAILED,
                mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED,
                "Executor terminated",
            )

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
        self._tasks.fail_unfinished(state, reason, message, trio.current_time())
        stream = self._stream
        self._stream = None
        if stream is not None:
            self._server.end_stream(stream)
        self._executor_state = ExecutorState.TERMINATED
        self._framework_known = False
        self._tasks.pending_acks.clear()
        for process in self._processes:
            process.kill_group()
        self._notify()

    # -- authentication -----------------------------------------------------------------

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
        return self._auth.make_token(claims)
