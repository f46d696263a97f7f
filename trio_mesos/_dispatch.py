"""The dispatcher task: executor callbacks one at a time, waiters, task work.

Part of the driver's shell (see :mod:`._driver`). It knows nothing of the
agent: the driver puts callbacks in, in the order the agent sent the events,
and the dispatcher awaits them one at a time. Once the driver's end is
decided, :meth:`Dispatcher.close` drops what is queued: no callback starts
after that (the running one is cancelled with the driver's scope).

:class:`Waiters` holds the futures of the awaitable driver methods
(``update``, ``wait_acknowledged``, ``message``); :meth:`Waiters.fail_all`
fails them in one synchronous step when the end is decided or the agent is
lost for good, so a callback awaiting one returns instead of holding the
driver.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from ._exits import leaves
from ._http import TransportError

__all__ = ["Dispatcher", "Item", "Waiter", "Waiters"]

log: Final = logging.getLogger("trio_mesos.driver")

Item = Callable[[], Awaitable[None]]


class Dispatcher:
    """Callbacks in event order, awaited one at a time by :meth:`run`.

    Agent events never wait for a callback (:meth:`put`: past ``limit`` the
    reader yields, past ``hard_limit`` the stream is given up); the driver's
    own notifications are always queued (:meth:`put_nowait`).

    Args:
        limit: agent events queued before the reader yields to the dispatcher.
        on_failure: called synchronously with what a callback or task work
            raised (not ``trio.Cancelled``), before it propagates.
        on_idle: called after each callback and each piece of task work ends
            (the driver then checks whether it has drained).
        hard_limit: agent events queued at most.
    """

    def __init__(
        self,
        limit: int,
        on_failure: Callable[[BaseException], None],
        on_idle: Callable[[], None],
        hard_limit: int = 4096,
    ) -> None:
        self._items: deque[Item] = deque()
        self._limit = limit
        self._hard_limit = hard_limit
        self._not_empty = trio.lowlevel.ParkingLot()
        self._on_failure = on_failure
        self._on_idle = on_idle
        self._closed = False
        self.running = False
        #: The dispatcher's task, once :meth:`run` started.
        self.task: trio.lowlevel.Task | None = None
        #: Cancel scopes of task work, by task id.
        self.task_scopes: dict[str, set[trio.CancelScope]] = {}

    @property
    def busy(self) -> bool:
        """A callback runs or is queued, or task work runs."""
        return self.running or bool(self._items) or bool(self.task_scopes)

    def put_nowait(self, item: Item) -> None:
        if self._closed:
            return
        self._items.append(item)
        self._not_empty.unpark()

    async def put(self, item: Item) -> None:
        """Queue an agent event's callback; never waits for the callbacks.

        The stream must keep being read whatever a callback does (a SHUTDOWN
        or the end of the stream behind a stuck callback would otherwise go
        unseen, and no end would hold its bound). Past the soft limit the
        reader yields to the dispatcher; past the hard limit the stream is
        given up (memory stays bounded; the recovery rules follow).

        Raises:
            TransportError: ``hard_limit`` events already wait.
        """
        if len(self._items) >= self._hard_limit:
            raise TransportError(
                f"{len(self._items)} agent events wait for the executor's callbacks: "
                "the event stream is given up"
            )
        self.put_nowait(item)
        if len(self._items) >= self._limit:
            await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """The end is decided: queued callbacks never start. Synchronous."""
        self._closed = True
        self._items.clear()
        self._not_empty.unpark_all()

    async def run(self) -> None:
        self.task = trio.lowlevel.current_task()
        while True:
            while not self._items:
                if self._closed:
                    return
                await self._not_empty.park()
            item = self._items.popleft()
            self.running = True
            try:
                await item()
            except BaseException as exc:
                if not _cancellation(exc):
                    self._on_failure(exc)
                raise
            finally:
                self.running = False
            self._on_idle()

    # -- task work -----------------------------------------------------------

    def start_task(
        self,
        nursery: trio.Nursery,
        task_id: str,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        scope = trio.CancelScope()
        self.task_scopes.setdefault(task_id, set()).add(scope)
        nursery.start_soon(
            self._run_task_work, task_id, scope, async_fn, args, name=f"trio_mesos task {task_id}"
        )

    def cancel_task(self, task_id: str) -> bool:
        scopes = self.task_scopes.get(task_id)
        for scope in scopes or ():
            scope.cancel()
        return bool(scopes)

    def cancel_all_tasks(self) -> None:
        for task_id in list(self.task_scopes):
            self.cancel_task(task_id)

    async def _run_task_work(
        self,
        task_id: str,
        scope: trio.CancelScope,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await async_fn(*args)
        except BaseException as exc:
            if not _cancellation(exc):
                self._on_failure(exc)
            raise
        finally:
            scopes = self.task_scopes.get(task_id)
            if scopes is not None:
                scopes.discard(scope)
                if not scopes:
                    del self.task_scopes[task_id]
        self._on_idle()


def _cancellation(exc: BaseException) -> bool:
    """Only ``trio.Cancelled`` in ``exc`` (``run_process`` raises a group of them)."""
    return all(isinstance(leaf, trio.Cancelled) for leaf in leaves(exc))


class Waiter:
    """One awaitable outcome: set, or failed with an exception."""

    __slots__ = ("_event", "error")

    def __init__(self) -> None:
        self._event = trio.Event()
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()

    async def wait(self) -> None:
        """Wait for the outcome; raise the failure, if any. A checkpoint."""
        if self._event.is_set():
            await trio.lowlevel.checkpoint()
        else:
            await self._event.wait()
        if self.error is not None:
            raise self.error


class Waiters:
    """The outcomes awaited by ``update``, ``wait_acknowledged`` and ``message``."""

    def __init__(self) -> None:
        self._accepted: dict[bytes, Waiter] = {}
        self._acknowledged: dict[bytes, Waiter] = {}
        self._messages: set[Waiter] = set()
        #: Once set, new waiters fail at once with it.
        self.closed: BaseException | None = None

    def _new(self, table: dict[bytes, Waiter], uuid: bytes) -> Waiter:
        waiter = table.get(uuid)
        if waiter is None:
            waiter = table[uuid] = Waiter()
            if self.closed is not None:
                waiter.fail(self.closed)
        return waiter

    def accepted(self, uuid: bytes) -> Waiter:
        """The waiter for the agent's acceptance of update ``uuid``."""
        return self._new(self._accepted, uuid)

    def acknowledged(self, uuid: bytes) -> Waiter:
        """The waiter for the ACKNOWLEDGED of update ``uuid``."""
        return self._new(self._acknowledged, uuid)

    def message(self) -> Waiter:
        """A waiter for one framework message (removed when it is done)."""
        waiter = Waiter()
        if self.closed is not None:
            waiter.fail(self.closed)
        else:
            self._messages.add(waiter)
        return waiter

    def message_done(self, waiter: Waiter, error: BaseException | None = None) -> None:
        self._messages.discard(waiter)
        if error is None:
            waiter.set()
        else:
            waiter.fail(error)

    def update_accepted(self, uuid: bytes) -> None:
        waiter = self._accepted.pop(uuid, None)
        if waiter is not None:
            waiter.set()

    def update_acknowledged(self, uuid: bytes) -> None:
        self.update_accepted(uuid)
        waiter = self._acknowledged.pop(uuid, None)
        if waiter is not None:
            waiter.set()

    def update_failed(self, uuid: bytes, error: BaseException) -> None:
        for table in (self._accepted, self._acknowledged):
            waiter = table.pop(uuid, None)
            if waiter is not None:
                waiter.fail(error)

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiter, and every later one, with ``error``. Synchronous."""
        if self.closed is None:
            self.closed = error
        for waiter in [*self._accepted.values(), *self._acknowledged.values(), *self._messages]:
            waiter.fail(error)
        self._accepted.clear()
        self._acknowledged.clear()
        self._messages.clear()
