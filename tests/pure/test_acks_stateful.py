"""AckLedger against a plain-dict model, driven by a Hypothesis state machine.

Raiden-style (STYLE.md §1.7, §3.7): the ``pending`` bundle holds updates the
agent has not acknowledged; the ACK rule ``consumes()`` one (an ACK is
delivered once), the duplicate-ACK rule draws from ``acked`` without consuming.
Every rule that touches the ledger also updates the model, and the invariants
compare the two after every step.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from trio_mesos._acks import AckLedger, AckResult, Delivery, SubscribeLists
from trio_mesos._errors import LocalProtocolError
from trio_mesos._messages import prepare_status
from trio_mesos._proto import mesos_pb2

CI = bool(os.environ.get("CI"))

EXECUTOR_ID = "executor-1"
AGENT_ID = "agent-1"
TASK_IDS = ("t0", "t1", "t2", "t3")
#: Task ids the agent never gives us.
STRANGERS = ("x0", "x1")
STATES = (
    mesos_pb2.TASK_STARTING,
    mesos_pb2.TASK_RUNNING,
    mesos_pb2.TASK_KILLING,
    mesos_pb2.TASK_FINISHED,
    mesos_pb2.TASK_FAILED,
    mesos_pb2.TASK_KILLED,
)

QUEUED, SENDING, ACCEPTED = Delivery.QUEUED, Delivery.SENDING, Delivery.ACCEPTED


@dataclass
class Model:
    """What the ledger should hold about one unacknowledged update."""

    uuid: bytes
    task_id: str
    seq: int
    status: mesos_pb2.TaskStatus
    delivery: Delivery = QUEUED


class LedgerMachine(RuleBasedStateMachine):
    pending = Bundle("pending")  # (task_id, uuid) of updates made, not yet ACKed by a rule
    acked = Bundle("acked")  # (task_id, uuid) of updates an ACK rule delivered
    snapshots = Bundle("snapshots")  # SubscribeLists taken for a SUBSCRIBE

    def __init__(self) -> None:
        super().__init__()
        self.ledger = AckLedger()
        # The model: plain lists, dicts and sets.
        self.known: list[str] = []
        self.unacked_tasks: list[str] = []
        self.updates: dict[bytes, Model] = {}  # insertion order = send order
        self.made: list[bytes] = []
        self.removed_by_ack: set[bytes] = set()
        self.removed_by_rejection: set[bytes] = set()
        self.seq = 0
        self.counts = {AckResult.ACKNOWLEDGED: 0, AckResult.DUPLICATE: 0, AckResult.UNKNOWN: 0}
        # Deterministic, never-repeating, valid version-4 uuids.
        self.uuids = (uuid.UUID(int=n, version=4).bytes for n in itertools.count(1))

    # -- model helpers ---------------------------------------------------------------

    def model_sendable(self) -> list[bytes]:
        """Per task, its oldest unaccepted update if QUEUED; oldest first."""
        heads: dict[str, Model] = {}
        for m in self.updates.values():
            if m.delivery is not ACCEPTED and m.task_id not in heads:
                heads[m.task_id] = m
        ready = [m for m in heads.values() if m.delivery is QUEUED]
        return [m.uuid for m in sorted(ready, key=lambda m: m.seq)]

    def in_state(self, delivery: Delivery) -> list[bytes]:
        return [u for u, m in self.updates.items() if m.delivery is delivery]

    def expected_ack(self, task_id: str, uuid_: bytes) -> AckResult:
        m = self.updates.get(uuid_)
        if m is not None and m.task_id == task_id:
            return AckResult.ACKNOWLEDGED
        if uuid_ in self.removed_by_ack:
            return AckResult.DUPLICATE
        return AckResult.UNKNOWN

    def apply_ack(self, task_id: str, uuid_: bytes) -> None:
        expected = self.expected_ack(task_id, uuid_)
        assert self.ledger.acknowledged(task_id, uuid_) is expected
        self.counts[expected] += 1
        if expected is AckResult.ACKNOWLEDGED:
            del self.updates[uuid_]
            self.removed_by_ack.add(uuid_)
            if task_id in self.unacked_tasks:
                self.unacked_tasks.remove(task_id)

    # -- tasks and updates -----------------------------------------------------------

    def make_update(self, task_id: str, state: mesos_pb2.TaskState.ValueType) -> tuple[str, bytes]:
        raw = mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value=task_id), state=state)
        prepared = prepare_status(
            raw, executor_id=EXECUTOR_ID, agent_id=AGENT_ID, uuid=next(self.uuids), now=100.0
        )
        entry = self.ledger.update_queued(prepared)
        self.seq += 1
        assert entry.seq == self.seq
        assert entry.delivery is QUEUED
        assert entry.status == prepared
        self.updates[prepared.uuid] = Model(prepared.uuid, task_id, self.seq, prepared)
        self.made.append(prepared.uuid)
        return (task_id, prepared.uuid)

    # -- tasks and updates -----------------------------------------------------------

    @initialize(
        target=pending, tasks=st.lists(st.sampled_from(TASK_IDS), max_size=4), data=st.data()
    )
    def launch(self, tasks: list[str], data: st.DataObject) -> object:
        """Start with a few tasks (LAUNCH_GROUP) and maybe some updates for them."""
        for task_id in tasks:
            self.receive_task(task_id)
        if not self.known:
            return multiple()
        made = data.draw(
            st.lists(st.tuples(st.sampled_from(self.known), st.sampled_from(STATES)), max_size=5),
            label="updates",
        )
        return multiple(*(self.make_update(task_id, state) for task_id, state in made))

    @rule(task_id=st.sampled_from(TASK_IDS))
    def receive_task(self, task_id: str) -> None:
        info = mesos_pb2.TaskInfo(
            name=task_id,
            task_id=mesos_pb2.TaskID(value=task_id),
            agent_id=mesos_pb2.AgentID(value=AGENT_ID),
        )
        self.ledger.task_received(info)
        if task_id not in self.known:
            self.known.append(task_id)
            self.unacked_tasks.append(task_id)

    @precondition(lambda self: self.known)
    @rule(target=pending, data=st.data(), count=st.integers(min_value=1, max_value=3))
    def queue_updates(self, data: st.DataObject, count: int) -> object:
        """The executor reports one to three updates (fresh uuids, via prepare_status)."""
        made = data.draw(
            st.lists(
                st.tuples(st.sampled_from(self.known), st.sampled_from(STATES)),
                min_size=count,
                max_size=count,
            ),
            label="updates",
        )
        return multiple(*(self.make_update(task_id, state) for task_id, state in made))

    @rule(task_id=st.sampled_from(STRANGERS))
    def queue_update_for_unknown_task(self, task_id: str) -> None:
        raw = mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id), state=mesos_pb2.TASK_RUNNING
        )
        prepared = prepare_status(
            raw, executor_id=EXECUTOR_ID, agent_id=AGENT_ID, uuid=next(self.uuids), now=100.0
        )
        with pytest.raises(LocalProtocolError):
            self.ledger.update_queued(prepared)

    # -- delivery --------------------------------------------------------------------

    @precondition(lambda self: self.model_sendable())
    @rule(data=st.data())
    def send_next(self, data: st.DataObject) -> None:
        offered = self.model_sendable()
        assert [e.uuid for e in self.ledger.sendable()] == offered
        uuid_ = data.draw(st.sampled_from(offered), label="uuid")
        entry = self.ledger.update_sending(uuid_)
        assert entry.uuid == uuid_
        assert entry.delivery is SENDING
        self.updates[uuid_].delivery = SENDING

    @precondition(lambda self: len(self.model_sendable()) < len(self.updates))
    @rule(data=st.data())
    def send_out_of_turn(self, data: st.DataObject) -> None:
        """Sending anything but a task's next sendable update is refused, harmlessly."""
        offered = set(self.model_sendable())
        uuid_ = data.draw(st.sampled_from([u for u in self.updates if u not in offered]))
        with pytest.raises(LocalProtocolError):
            self.ledger.update_sending(uuid_)

    @precondition(lambda self: self.in_state(SENDING))
    @rule(data=st.data())
    def accepted_202(self, data: st.DataObject) -> None:
        uuid_ = data.draw(st.sampled_from(self.in_state(SENDING)), label="uuid")
        self.ledger.update_accepted(uuid_)
        self.updates[uuid_].delivery = ACCEPTED

    @precondition(lambda self: self.in_state(SENDING))
    @rule(data=st.data())
    def send_failed(self, data: st.DataObject) -> None:
        uuid_ = data.draw(st.sampled_from(self.in_state(SENDING)), label="uuid")
        self.ledger.update_failed(uuid_)
        self.updates[uuid_].delivery = QUEUED

    @precondition(lambda self: self.in_state(SENDING))
    @rule(data=st.data())
    def rejected_4xx(self, data: st.DataObject) -> None:
        uuid_ = data.draw(st.sampled_from(self.in_state(SENDING)), label="uuid")
        removed = self.ledger.update_rejected(uuid_)
        assert removed is not None
        assert removed.uuid == uuid_
        del self.updates[uuid_]
        self.removed_by_rejection.add(uuid_)

    @rule(data=st.data())
    def stale_reports(self, data: st.DataObject) -> None:
        """A 202, failure or rejection for something not in flight changes nothing."""
        candidates = [u for u in self.made if u not in self.in_state(SENDING)]
        uuid_ = data.draw(st.sampled_from([*candidates, b"\x00" * 16]), label="uuid")
        self.ledger.update_accepted(uuid_)
        self.ledger.update_failed(uuid_)
        if uuid_ not in self.updates:
            assert self.ledger.update_rejected(uuid_) is None

    # -- acknowledgements ------------------------------------------------------------

    @rule(target=acked, item=consumes(pending))
    def ack(self, item: tuple[str, bytes]) -> tuple[str, bytes]:
        self.apply_ack(*item)
        return item

    @precondition(lambda self: self.updates)
    @rule(target=acked)
    def ack_oldest(self) -> tuple[str, bytes]:
        """The agent acknowledges in the order it received (the usual case)."""
        m = next(iter(self.updates.values()))
        self.apply_ack(m.task_id, m.uuid)
        return (m.task_id, m.uuid)

    @rule(item=acked)
    def duplicate_ack(self, item: tuple[str, bytes]) -> None:
        assert self.expected_ack(*item) is not AckResult.ACKNOWLEDGED
        self.apply_ack(*item)

    @precondition(lambda self: self.updates)
    @rule(data=st.data(), other=st.sampled_from(TASK_IDS + STRANGERS))
    def ack_with_wrong_task(self, data: st.DataObject, other: str) -> None:
        """An ACK must match the task id as well as the uuid."""
        m = data.draw(st.sampled_from(list(self.updates.values())), label="update")
        if other == m.task_id:
            other = f"not-{m.task_id}"
        assert self.expected_ack(other, m.uuid) is AckResult.UNKNOWN
        self.apply_ack(other, m.uuid)

    @rule(task_id=st.sampled_from(TASK_IDS + STRANGERS))
    def unknown_ack(self, task_id: str) -> None:
        self.apply_ack(task_id, next(self.uuids))

    # -- connection ------------------------------------------------------------------

    @rule()
    def disconnect(self) -> None:
        self.ledger.disconnected()
        for m in self.updates.values():
            if m.delivery is SENDING:
                m.delivery = QUEUED

    @rule(target=snapshots)
    def take_subscribe_lists(self) -> tuple[SubscribeLists, int]:
        lists = self.ledger.subscribe_lists()
        assert [t.task_id.value for t in lists.tasks] == self.unacked_tasks
        assert [s.uuid for s in lists.updates] == list(self.updates)
        assert list(lists.updates) == [m.status for m in self.updates.values()]
        assert lists.watermark == self.seq
        return (lists, self.seq)

    @rule(snapshot=snapshots)
    def subscribed(self, snapshot: tuple[SubscribeLists, int]) -> None:
        lists, watermark = snapshot
        self.ledger.subscribed(lists)
        for m in self.updates.values():
            if m.seq <= watermark:
                m.delivery = ACCEPTED

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def updates_agree_in_send_order(self) -> None:
        entries = list(self.ledger)
        assert [e.uuid for e in entries] == list(self.updates)
        assert [e.delivery for e in entries] == [m.delivery for m in self.updates.values()]
        assert [e.task_id for e in entries] == [m.task_id for m in self.updates.values()]
        assert [e.seq for e in entries] == [m.seq for m in self.updates.values()]
        assert len(self.ledger) == len(self.updates)
        for task_id in TASK_IDS:
            expected = any(m.task_id == task_id for m in self.updates.values())
            assert self.ledger.has_unacknowledged(task_id) == expected

    @invariant()
    def tasks_agree(self) -> None:
        assert [t.task_id.value for t in self.ledger.unacknowledged_tasks()] == self.unacked_tasks
        for task_id in TASK_IDS + STRANGERS:
            assert self.ledger.knows_task(task_id) == (task_id in self.known)

    @invariant()
    def nothing_dropped_but_by_ack_or_rejection(self) -> None:
        kept = set(self.made) - self.removed_by_ack - self.removed_by_rejection
        assert {e.uuid for e in self.ledger} == kept
        for u in kept:
            assert self.ledger.get(u) is not None

    @invariant()
    def per_task_order_is_kept(self) -> None:
        offered = self.ledger.sendable()
        assert [e.uuid for e in offered] == self.model_sendable()
        assert [e.seq for e in offered] == sorted(e.seq for e in offered)
        assert len({e.task_id for e in offered}) == len(offered)
        sending: dict[str, int] = {}
        for m in self.updates.values():
            if m.delivery is SENDING:
                sending[m.task_id] = sending.get(m.task_id, 0) + 1
        assert all(n == 1 for n in sending.values())
        for e in offered:
            assert e.delivery is QUEUED
            assert e.task_id not in sending
            older = [
                m
                for m in self.updates.values()
                if m.task_id == e.task_id and m.seq < e.seq and m.delivery is not ACCEPTED
            ]
            assert older == []

    @invariant()
    def counters_agree(self) -> None:
        assert self.ledger.acknowledged_count == self.counts[AckResult.ACKNOWLEDGED]
        assert self.ledger.duplicate_acks == self.counts[AckResult.DUPLICATE]
        assert self.ledger.unknown_acks == self.counts[AckResult.UNKNOWN]


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(max_examples=300 if CI else 200, stateful_step_count=50)


def test_ledger_machine_runs_enough_examples() -> None:
    assert TestLedger.settings.max_examples >= 200
    if CI:
        assert TestLedger.settings.max_examples >= 300
