"""FakeAgent: the agent side of the v1 Executor HTTP API, scriptable, on trio.

Theory of operation
-------------------
A :class:`FakeAgent` is an ``async with`` object that owns one trio nursery.
Its parts, one concern each:

* ``_rules``: what the agent answers to which request in which phase
  (``Http::executor`` in ``src/slave/http.cpp``), pure;
* ``_auth``: executor authentication (JWT), pure;
* ``_tasks``: the task book and the update path, pure;
* ``_subscribed``: the SUBSCRIBED event, pure;
* ``_records``: the record of calls, events and updates, and the ``wait_*``
  methods (one ``trio.lowlevel.ParkingLot`` that every state change wakes);
* ``_server``: listeners, connections (h11, ``_http_server``) and event streams;
* ``_core``: the agent's state, its lifetime and what it does with accepted calls;
* ``_spawn``: the executor environment and executor processes;
* this module: the control methods a test scripts the agent with (events,
  faults, restart).

The control methods (:meth:`~FakeAgent.launch`, :meth:`~FakeAgent.kill`, ...)
queue an event and wait until it has been written, which happens at once
unless the executor stopped reading.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection

import trio

from .._config import format_duration
from ..v1 import executor_pb2, mesos_pb2
from ._core import Generation
from ._hostile import RawAnswer
from ._records import AckPolicy as AckPolicy
from ._records import FakeAgentError as FakeAgentError
from ._records import NotSubscribedError as NotSubscribedError
from ._records import RecordedCall as RecordedCall
from ._records import SentEvent as SentEvent
from ._rules import AgentState, ExecutorState, FailRule, initialization_errors
from ._server import Hijack, ItemKind, Listener, Outgoing
from ._spawn import DEFAULT_PATH as DEFAULT_PATH
from ._spawn import ExecutorProcess as ExecutorProcess
from ._spawn import SpawningAgent
from ._tasks import ack_event

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

logger = logging.getLogger("trio_mesos.testing.fake_agent")

Call = executor_pb2.Call
Event = executor_pb2.Event


class FakeAgent(SpawningAgent):
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

    def _task_info(self, task: mesos_pb2.TaskInfo) -> mesos_pb2.TaskInfo:
        if not isinstance(task, mesos_pb2.TaskInfo):
            raise TypeError(f"expected a mesos_pb2.TaskInfo, not {type(task).__name__}")
        copy = mesos_pb2.TaskInfo()
        copy.CopyFrom(task)
        if not copy.HasField("agent_id"):
            copy.agent_id.value = self.agent_id
        if not copy.IsInitialized():
            missing = ", ".join(initialization_errors(copy))
            raise ValueError(f"TaskInfo is missing required fields: {missing}")
        return copy

    def _remember_launched(self, task: mesos_pb2.TaskInfo) -> None:
        self._tasks.launched(task)
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
        return await self._emit(event, stream)

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
        return await self._emit(event, stream)

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
        return await self._emit(Event(type=Event.SHUTDOWN), stream)

    async def inject(self, raw: bytes) -> bool:
        """Write ``raw`` as one HTTP chunk on the stream, exactly as given.

        For malformed RecordIO, undecodable records or unknown event types
        (frame them yourself with ``trio_mesos._recordio.encode_record``).
        Blocking, return value and cancellation as :meth:`launch`.
        """
        stream = self._current_stream()
        item = self._server.enqueue(stream, Outgoing(ItemKind.CHUNK, bytes(raw), None))
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
        self._server.break_stream(stream)
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
        if key not in self._tasks.pending_acks:
            raise KeyError(f"no acknowledgement pending for uuid {key.hex()}")
        stream = self._current_stream()
        task_id = self._tasks.pending_acks.pop(key)
        return await self._emit(ack_event(task_id, key), stream)

    async def ack_all(self) -> int:
        """Send every pending ACKNOWLEDGED (see :meth:`ack`); return how many were written."""
        count = 0
        for _task_id, key in self.pending_acks:
            # While one is written, a DELAYED policy may send another itself.
            if key in self._tasks.pending_acks and await self.ack(key):
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
        self._fail_rules.append(FailRule(n, int(status), data, wanted))

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
        self._hijacks.append(Hijack(n, answer, wanted, process))

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
        self._generation = Generation()
        self._agent_state = AgentState.DOWN
        self._tasks.pending_acks.clear()
        self._fail_rules.clear()
        self._stream = None
        listeners, connections = self._server.close_all()
        if not self.checkpoint:
            self._framework_known = False
        elif self._executor_state is not ExecutorState.TERMINATED:
            self._executor_state = ExecutorState.REGISTERING
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
        listeners: list[Listener],
        down: float,
        recovering: float,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            task_status.started()
            await trio.sleep(down)
            self._agent_state = AgentState.RECOVERING_CONTAINERS
            await self._server.reopen_listeners(listeners)
            self._notify()
            await trio.sleep(recovering)
            if self._framework_known and self._executor_state is ExecutorState.REGISTERING:
                self._agent_state = AgentState.RECOVERING
                self._notify()
                with trio.move_on_after(self.reregistration_timeout):
                    await self._wait_until(
                        lambda: self._executor_state is not ExecutorState.REGISTERING
                    )
                if self._executor_state is ExecutorState.REGISTERING:
                    logger.info("executor did not re-subscribe in time; destroying it")
                    self._terminate_executor(
                        mesos_pb2.TASK_LOST,
                        mesos_pb2.TaskStatus.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                        "Executor did not reregister within "
                        + format_duration(self.reregistration_timeout),
                    )
            self._agent_state = AgentState.RUNNING
            self._notify()
        if self._restart_scope is scope:
            self._restart_scope = None
