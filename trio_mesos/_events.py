"""The driver's side of the event stream: what each agent event does.

A mixin of :class:`~trio_mesos.ExecutorDriver` (it never imports the driver):
the connection task (:mod:`._subscription`) reports to these methods
(:class:`._subscription.SubscriptionHost`), and :attr:`AgentEvents._EVENTS` maps
each typed event to its handler: what the ledger must know at once (tasks
received, acknowledgements), the session inputs (SUBSCRIBED, SHUTDOWN), and the
callbacks queued in event order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final

import trio

from . import _session as s
from ._acks import AckLedger, AckResult, SubscribeLists
from ._calls import CallSender
from ._config import ExecutorConfig
from ._dispatch import Dispatcher, Item, Waiters
from ._executor import Executor
from ._http import Response
from ._messages import (
    Acknowledged,
    AgentEvent,
    ContentType,
    Error,
    Heartbeat,
    Kill,
    Launch,
    LaunchGroup,
    Message,
    Shutdown,
    Subscribed,
    UnknownEvent,
    encode_message,
    subscribe_call,
)
from ._proto import mesos_pb2

__all__ = ["SHUTDOWN_MARGIN", "AgentEvents"]

#: ACKs handled without a callback between two checkpoints of the stream task
#: (the driver's EVENT_QUEUE_SIZE: the pace the callback queue used to set).
QUIET_ACKS_PER_YIELD: Final = 16
#: ``Executor.acknowledged`` as the base class defines it (does nothing).
_BASE_ACKNOWLEDGED: Final = Executor.acknowledged

log: Final = logging.getLogger("trio_mesos.driver")

#: The driver ends this long before the SHUTDOWN grace period runs out, so the
#: agent never has to kill it (Mesos's command executor keeps a similar margin).
SHUTDOWN_MARGIN: Final = 1.0


class AgentEvents:
    """Event handling of the driver (a mixin; the driver provides the attributes)."""

    config: ExecutorConfig
    executor_info: mesos_pb2.ExecutorInfo | None
    framework_info: mesos_pb2.FrameworkInfo | None
    agent_info: mesos_pb2.AgentInfo | None
    container_id: mesos_pb2.ContainerID | None
    _executor: Executor
    _ledger: AckLedger
    _waiters: Waiters
    _dispatcher: Dispatcher
    #: ACKNOWLEDGED events that queued no callback (see _on_acknowledged).
    _quiet_acks: int = 0
    _calls: CallSender
    _session: s.Session
    _content_type: ContentType
    _established: trio.Event
    _agent_id: str | None
    _stream_up: bool
    _subscribed_once: bool
    _subscriptions: int
    _last_event_time: float | None

    def _feed(self, event: s.Input) -> None:
        raise NotImplementedError

    def _settle(self) -> None:
        raise NotImplementedError

    def _redact(self, text: str) -> str:
        raise NotImplementedError

    def cancel_task(self, task_id: str) -> bool:
        raise NotImplementedError

    def _callback(self, callback: Callable[..., Awaitable[None]], *args: Any) -> Item:
        """``callback(driver, *args)``, ready for the dispatcher."""
        raise NotImplementedError

    def connected(self) -> bool:
        self._feed(s.Connected())
        return self._session.state is s.State.SUBSCRIBING

    def subscribe_request(self) -> tuple[bytes, SubscribeLists]:
        lists = self._ledger.subscribe_lists()
        call = subscribe_call(
            self.config.framework_id, self.config.executor_id, lists.tasks, lists.updates
        )
        return encode_message(call, self._content_type), lists

    def connect_failed(self, reason: str) -> None:
        self._feed(s.ConnectFailed(reason))

    def refused(self, response: Response) -> None:
        body = self._redact(response.body.decode("utf-8", "replace"))
        self._feed(s.SubscribeRefused(response.status_code,
                                      f"'{response.status_line}' ({body[:500]})"))

    def lost(self, reason: str) -> None:
        self._stream_up = False
        self._feed(s.StreamLost(reason))
        self._settle()

    async def event(self, event: AgentEvent, lists: SubscribeLists) -> None:
        self._last_event_time = trio.current_time()
        log.debug("event from the agent: %s", type(event).__name__)
        await self._EVENTS[type(event)](self, event, lists)

    # -- events ------------------------------------------------------------

    async def _on_subscribed(self, event: Subscribed, lists: SubscribeLists) -> None:
        self._ledger.subscribed(lists)
        for update in lists.updates:  # delivered by this SUBSCRIBE: as good as a 202
            self._waiters.update_accepted(update.uuid)
        self._subscriptions += 1
        self.executor_info = event.executor_info
        self.framework_info = event.framework_info
        self.agent_info = event.agent_info
        self.container_id = event.container_id
        if self._agent_id is None and event.agent_info.HasField("id"):
            self._agent_id = event.agent_info.id.value
        grace = None
        if event.executor_info.HasField("shutdown_grace_period"):
            grace = event.executor_info.shutdown_grace_period.nanoseconds / 1e9 - SHUTDOWN_MARGIN
        self._subscribed_once = True
        self._stream_up = True
        self._calls.go_live(trio.current_time())
        self._feed(s.SubscribedEvent(grace))
        self._established.set()

    async def _on_shutdown(self, event: Shutdown, lists: SubscribeLists) -> None:
        log.info("SHUTDOWN from the agent")
        self._subscribed_once = True
        self._feed(s.ShutdownEvent())
        self._established.set()

    async def _on_launch(self, event: Launch, lists: SubscribeLists) -> None:
        self._ledger.task_received(event.task)
        await self._dispatcher.put(
            self._callback(self._executor.launch_task, event.task))

    async def _on_launch_group(self, event: LaunchGroup, lists: SubscribeLists) -> None:
        for task in event.task_group.tasks:
            self._ledger.task_received(task)
        await self._dispatcher.put(
            self._callback(self._executor.launch_task_group, event.task_group))

    async def _on_kill(self, event: Kill, lists: SubscribeLists) -> None:
        async def kill() -> None:
            # The callback first, so it can note the KILL's policy before the
            # task's work sees its cancellation and starts killing.
            try:
                await self._callback(self._executor.kill_task, event.task_id, event.kill_policy)()
            finally:
                self.cancel_task(event.task_id.value)

        await self._dispatcher.put(kill)

    async def _on_acknowledged(self, event: Acknowledged, lists: SubscribeLists) -> None:
        result = self._ledger.acknowledged(event.task_id, event.uuid)
        if result is not AckResult.ACKNOWLEDGED:
            log.debug("%s ACKNOWLEDGED for %s", result.value, event.uuid.hex())
            return
        self._waiters.update_acknowledged(event.uuid)
        self._settle()
        acknowledged = self._executor.acknowledged
        if getattr(acknowledged, "__func__", None) is _BASE_ACKNOWLEDGED:
            # Executor's own no-op: no callback to queue. The queue used to
            # pace this task (it parked whenever a queue's worth of callbacks
            # waited); so does this: a checkpoint every QUIET_ACKS_PER_YIELD
            # ACKs. Without it the stream task parsed a whole read of ACKs
            # before the call task could write (JSON throughput fell by a
            # fifth); with one per ACK, LAUNCHes behind ACKs waited ten times
            # longer.
            self._quiet_acks += 1
            if self._quiet_acks % QUIET_ACKS_PER_YIELD == 0:
                await trio.lowlevel.checkpoint()
            return
        await self._dispatcher.put(self._callback(acknowledged, event.task_id, event.uuid))

    async def _on_message(self, event: Message, lists: SubscribeLists) -> None:
        await self._dispatcher.put(
            self._callback(self._executor.framework_message, event.data))

    async def _on_error(self, event: Error, lists: SubscribeLists) -> None:
        await self._dispatcher.put(self._callback(self._executor.error, event.message))

    async def _on_heartbeat(self, event: Heartbeat, lists: SubscribeLists) -> None:
        pass

    async def _on_unknown(self, event: UnknownEvent, lists: SubscribeLists) -> None:
        log.warning("skipping an event of unknown type %d from the agent", event.type)

    _EVENTS: ClassVar[dict[type, Callable[[Any, Any, SubscribeLists], Awaitable[None]]]] = {
        Subscribed: _on_subscribed,
        Shutdown: _on_shutdown,
        Launch: _on_launch,
        LaunchGroup: _on_launch_group,
        Kill: _on_kill,
        Acknowledged: _on_acknowledged,
        Message: _on_message,
        Error: _on_error,
        Heartbeat: _on_heartbeat,
        UnknownEvent: _on_unknown,
    }


