"""The acknowledgement ledger: what the agent still has to acknowledge.

Theory of operation
-------------------
An executor must never lose a status update. The agent acknowledges each
update (``ACKNOWLEDGED``, matched by task id and uuid) once its status-update
manager has accepted and, for checkpointing frameworks, checkpointed it
(PROTOCOL.md §3.4). Until then the update is the executor's responsibility:
Mesos's docs and its own executors (PROTOCOL.md §4.8, §7) require that every
SUBSCRIBE lists

* ``unacknowledged_tasks``: every task received (LAUNCH, LAUNCH_GROUP) for
  which no update has been acknowledged yet -- a task leaves this list at the
  first ACK of *any* of its updates;
* ``unacknowledged_updates``: every update not acknowledged yet, in the order
  they were made, including those made while disconnected.

An entry leaves only on its matching ACKNOWLEDGED; duplicate and unknown
acknowledgements are harmless and counted. Nothing else removes an entry,
except an agent answering an UPDATE with a 4xx (it will never accept that
update; the driver reports it through the ``error`` callback).

Delivery is tracked beside acknowledgement. Each entry is

    QUEUED ──update_sending──► SENDING ──update_accepted (202)──► ACCEPTED
       ▲                          │
       └── update_failed / disconnected (5xx, 503, connection error)

and ``subscribed()`` moves every entry that travelled inside a successful
SUBSCRIBE to ACCEPTED. An update is therefore re-sent only until it gets its
202, and inside every SUBSCRIBE -- never because an ACK is slow (PROTOCOL.md
§4.4, §5.3), so withholding ACKs never floods the agent. Per task, only the
oldest not-yet-accepted update may be sent (:meth:`AckLedger.sendable`), and
only one at a time: the agent drops an update that arrives after the task's
terminal one, so a task's updates must reach it in order.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Final

from ._errors import LocalProtocolError
from ._proto import mesos_pb2
from ._record import record

__all__ = [
    "AckLedger",
    "AckResult",
    "Delivery",
    "PendingUpdate",
    "SubscribeLists",
]

#: How many acknowledged uuids are remembered to tell a duplicate ACK from an
#: unknown one. Only the statistics depend on it; correctness does not.
REMEMBERED_ACKS: Final = 4096


class Delivery(enum.Enum):
    """Where an unacknowledged update stands with respect to the agent."""

    #: Must go out in an UPDATE call (never sent, or the last send failed).
    QUEUED = "queued"
    #: An UPDATE call for it is in flight, waiting for the 202.
    SENDING = "sending"
    #: The agent has it (202, or it travelled in a successful SUBSCRIBE); only
    #: the ACK is missing. Not sent again except inside the next SUBSCRIBE.
    ACCEPTED = "accepted"


class AckResult(enum.Enum):
    """What an ACKNOWLEDGED event did to the ledger."""

    #: It matched a pending update, which left the ledger.
    ACKNOWLEDGED = "acknowledged"
    #: It matched an update acknowledged before (the agent re-acks duplicates).
    DUPLICATE = "duplicate"
    #: It matched nothing we know (or the task id did not match the uuid's).
    UNKNOWN = "unknown"


class PendingUpdate:
    """One update the agent has not acknowledged yet.

    The ledger may hold many of these for a long time (every update until its
    ACK), so the status is kept in its encoded form: a few dozen bytes, where a
    live protobuf message costs a C arena of its own (about 2 KB of RSS each;
    see the "Performance, round 2" issue).

    Attributes:
        seq: position in send order (increasing, never reused).
        uuid: the update's ``TaskStatus.uuid``.
        task_id: the update's task.
        data: the prepared status, exactly as sent, serialized (protobuf).
        delivery: see :class:`Delivery`.
    """

    __slots__ = ("data", "delivery", "seq", "task_id", "uuid")

    def __init__(
        self,
        seq: int,
        uuid: bytes,
        task_id: str,
        data: bytes,
        delivery: Delivery = Delivery.QUEUED,
    ) -> None:
        self.seq = seq
        self.uuid = uuid
        self.task_id = task_id
        self.data = data
        self.delivery = delivery

    @property
    def status(self) -> mesos_pb2.TaskStatus:
        """The prepared status, decoded (a new message on every call)."""
        return mesos_pb2.TaskStatus.FromString(self.data)

    def __repr__(self) -> str:
        return (
            f"PendingUpdate(seq={self.seq}, uuid={self.uuid!r}, task_id={self.task_id!r}, "
            f"delivery={self.delivery})"
        )


@record
class SubscribeLists:
    """The two lists for one SUBSCRIBE, and the ledger position they cover."""

    tasks: tuple[mesos_pb2.TaskInfo, ...]
    updates: tuple[mesos_pb2.TaskStatus, ...]
    #: Highest ``seq`` included; updates made after the snapshot are not in it.
    watermark: int


class _Counters:
    __slots__ = ("acknowledged", "duplicate", "unknown")

    def __init__(self) -> None:
        self.acknowledged = 0
        self.duplicate = 0
        self.unknown = 0


class AckLedger:
    """Tasks received and updates made, until the agent acknowledges them."""

    def __init__(self) -> None:
        # uuid -> entry, in send order.
        self._updates: OrderedDict[bytes, PendingUpdate] = OrderedDict()
        # task id -> its entries not yet ACCEPTED, in send order.
        self._unaccepted: dict[str, deque[PendingUpdate]] = {}
        # task id -> TaskInfo, for tasks with no acknowledged update yet.
        self._unacked_tasks: dict[str, mesos_pb2.TaskInfo] = {}
        # task id -> the same string: updates share it instead of a copy each.
        self._known_tasks: dict[str, str] = {}
        self._acked: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._seq = 0
        self._counters = _Counters()

    # -- tasks -------------------------------------------------------------

    def task_received(self, task: mesos_pb2.TaskInfo) -> None:
        """Record a task from LAUNCH or LAUNCH_GROUP (each task of the group)."""
        task_id = task.task_id.value
        if task_id not in self._known_tasks:
            self._known_tasks[task_id] = task_id
            kept = mesos_pb2.TaskInfo()
            kept.CopyFrom(task)
            self._unacked_tasks[task_id] = kept

    def knows_task(self, task_id: str) -> bool:
        """Whether the agent ever gave us this task."""
        return task_id in self._known_tasks

    # -- updates -----------------------------------------------------------

    def update_queued(self, status: mesos_pb2.TaskStatus) -> PendingUpdate:
        """Record a prepared update (it has its uuid) as made and waiting to go out.

        Raises:
            LocalProtocolError: the status has no uuid, its uuid is already
                pending, or its task was never received (the agent would
                abort on a non-terminal update for a task it still queues).
        """
        uuid = status.uuid
        task_id = status.task_id.value
        if not uuid:
            raise LocalProtocolError("update has no uuid (prepare it first)")
        if uuid in self._updates:
            raise LocalProtocolError(f"update {uuid.hex()} is already pending")
        known_id = self._known_tasks.get(task_id)
        if known_id is None:
            raise LocalProtocolError(f"task {task_id!r} was never received by this executor")
        self._seq += 1
        entry = PendingUpdate(self._seq, uuid, known_id, status.SerializePartialToString())
        self._updates[uuid] = entry
        self._unaccepted.setdefault(task_id, deque()).append(entry)
        return entry

    def sendable(self) -> list[PendingUpdate]:
        """Updates that may go out now, oldest first.

        For each task, its oldest not-yet-accepted update, if it is QUEUED
        (none while one of the task's updates is SENDING).
        """
        ready = [q[0] for q in self._unaccepted.values() if q[0].delivery is Delivery.QUEUED]
        ready.sort(key=lambda e: e.seq)
        return ready

    def update_sending(self, uuid: bytes) -> PendingUpdate:
        """An UPDATE call for ``uuid`` is going out (QUEUED -> SENDING).

        Raises:
            LocalProtocolError: the update is not the task's next sendable one.
        """
        entry = self._updates.get(uuid)
        if entry is None or entry.delivery is not Delivery.QUEUED:
            raise LocalProtocolError(f"update {uuid.hex()} is not queued")
        if self._unaccepted[entry.task_id][0] is not entry:
            raise LocalProtocolError(f"update {uuid.hex()} would overtake an earlier one")
        entry.delivery = Delivery.SENDING
        return entry

    def update_accepted(self, uuid: bytes) -> None:
        """The agent answered 202 (SENDING -> ACCEPTED). No-op if already ACKed."""
        entry = self._updates.get(uuid)
        if entry is not None and entry.delivery is Delivery.SENDING:
            self._mark_accepted(entry)

    def update_failed(self, uuid: bytes) -> None:
        """The send failed in a retryable way (SENDING -> QUEUED)."""
        entry = self._updates.get(uuid)
        if entry is not None and entry.delivery is Delivery.SENDING:
            entry.delivery = Delivery.QUEUED

    def update_rejected(self, uuid: bytes) -> PendingUpdate | None:
        """The agent refused the update for good (4xx): it leaves the ledger.

        Returns the removed entry, or None when it was not pending.
        """
        entry = self._updates.pop(uuid, None)
        if entry is not None:
            self._forget_unaccepted(entry)
        return entry

    def acknowledged(self, task_id: str, uuid: bytes) -> AckResult:
        """Apply an ACKNOWLEDGED event."""
        entry = self._updates.get(uuid)
        if entry is None or entry.task_id != task_id:
            if (task_id, uuid) in self._acked:
                self._counters.duplicate += 1
                return AckResult.DUPLICATE
            self._counters.unknown += 1
            return AckResult.UNKNOWN
        del self._updates[uuid]
        self._forget_unaccepted(entry)
        self._unacked_tasks.pop(task_id, None)
        self._acked[(task_id, uuid)] = None
        if len(self._acked) > REMEMBERED_ACKS:
            self._acked.popitem(last=False)
        self._counters.acknowledged += 1
        return AckResult.ACKNOWLEDGED

    # -- connection --------------------------------------------------------

    def disconnected(self) -> None:
        """The connection is gone: UPDATE calls in flight did not (knowingly) arrive."""
        for queue in self._unaccepted.values():
            for entry in queue:
                if entry.delivery is Delivery.SENDING:
                    entry.delivery = Delivery.QUEUED

    def subscribe_lists(self) -> SubscribeLists:
        """The ``unacknowledged_tasks`` and ``unacknowledged_updates`` for a SUBSCRIBE."""
        return SubscribeLists(
            tasks=tuple(self._unacked_tasks.values()),
            updates=tuple(
                mesos_pb2.TaskStatus.FromString(e.data) for e in self._updates.values()
            ),
            watermark=self._seq,
        )

    def subscribed(self, lists: SubscribeLists) -> None:
        """A SUBSCRIBE carrying ``lists`` succeeded: its updates reached the agent."""
        for task_id in list(self._unaccepted):
            queue = self._unaccepted[task_id]
            while queue and queue[0].seq <= lists.watermark:
                queue[0].delivery = Delivery.ACCEPTED
                queue.popleft()
            if not queue:
                del self._unaccepted[task_id]

    # -- queries -----------------------------------------------------------

    def __len__(self) -> int:
        """Number of unacknowledged updates."""
        return len(self._updates)

    def __iter__(self) -> Iterator[PendingUpdate]:
        """Unacknowledged updates in send order."""
        return iter(list(self._updates.values()))

    def get(self, uuid: bytes) -> PendingUpdate | None:
        """The pending update with this uuid, if any."""
        return self._updates.get(uuid)

    def unacknowledged_tasks(self) -> list[mesos_pb2.TaskInfo]:
        """Tasks received with no acknowledged update yet, in the order received."""
        return list(self._unacked_tasks.values())

    def has_unacknowledged(self, task_id: str) -> bool:
        """Whether some update of this task is still waiting for its ACK."""
        return any(e.task_id == task_id for e in self._updates.values())

    @property
    def acknowledged_count(self) -> int:
        """ACKs that matched a pending update."""
        return self._counters.acknowledged

    @property
    def duplicate_acks(self) -> int:
        """ACKs for updates acknowledged before."""
        return self._counters.duplicate

    @property
    def unknown_acks(self) -> int:
        """ACKs that matched nothing known."""
        return self._counters.unknown

    # -- internals ---------------------------------------------------------

    def _mark_accepted(self, entry: PendingUpdate) -> None:
        entry.delivery = Delivery.ACCEPTED
        self._forget_unaccepted(entry)

    def _forget_unaccepted(self, entry: PendingUpdate) -> None:
        queue = self._unaccepted.get(entry.task_id)
        if queue is None:
            return
        try:
            queue.remove(entry)
        except ValueError:
            return
        if not queue:
            del self._unaccepted[entry.task_id]
