"""Example tests of every AckLedger transition (h11 ``test_state.py`` style).

The rules under test are the module docstring's (PROTOCOL.md §3.4, §4.4, §4.8,
§5.3): an update leaves the ledger only on its matching ACKNOWLEDGED or a 4xx
rejection; a task leaves ``unacknowledged_tasks`` at the first ACK of any of
its updates; an update is re-sent only until its 202 and inside every
SUBSCRIBE, never because an ACK is slow; per task, updates go out one at a
time and in order.
"""

from __future__ import annotations

import uuid

import pytest

from trio_mesos._acks import REMEMBERED_ACKS, AckLedger, AckResult, Delivery
from trio_mesos._errors import LocalProtocolError
from trio_mesos._messages import prepare_status
from trio_mesos._proto import mesos_pb2

EXECUTOR_ID = "executor-1"
AGENT_ID = "agent-1"


def task(task_id: str) -> mesos_pb2.TaskInfo:
    return mesos_pb2.TaskInfo(
        name=f"task {task_id}",
        task_id=mesos_pb2.TaskID(value=task_id),
        agent_id=mesos_pb2.AgentID(value=AGENT_ID),
    )


def status(
    task_id: str, state: mesos_pb2.TaskState.ValueType = mesos_pb2.TASK_RUNNING
) -> mesos_pb2.TaskStatus:
    """A prepared status with a fresh uuid, as the driver queues it."""
    raw = mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value=task_id), state=state)
    return prepare_status(
        raw, executor_id=EXECUTOR_ID, agent_id=AGENT_ID, uuid=uuid.uuid4().bytes, now=1234.5
    )


def ledger_with(*task_ids: str) -> AckLedger:
    ledger = AckLedger()
    for task_id in task_ids:
        ledger.task_received(task(task_id))
    return ledger


def queue(
    ledger: AckLedger, task_id: str, state: mesos_pb2.TaskState.ValueType = mesos_pb2.TASK_RUNNING
) -> bytes:
    """Queue a fresh update for ``task_id`` and return its uuid."""
    prepared = status(task_id, state)
    entry = ledger.update_queued(prepared)
    assert entry.uuid == prepared.uuid
    assert entry.delivery is Delivery.QUEUED
    return prepared.uuid


def deliver(ledger: AckLedger, uuid_: bytes) -> None:
    """Send an update and get its 202."""
    ledger.update_sending(uuid_)
    ledger.update_accepted(uuid_)


def task_ids(ledger: AckLedger) -> list[str]:
    return [t.task_id.value for t in ledger.unacknowledged_tasks()]


def pending(ledger: AckLedger) -> list[bytes]:
    return [e.uuid for e in ledger]


def offered(ledger: AckLedger) -> list[bytes]:
    return [e.uuid for e in ledger.sendable()]


def delivery(ledger: AckLedger, uuid_: bytes) -> Delivery:
    entry = ledger.get(uuid_)
    assert entry is not None
    return entry.delivery


def counters(ledger: AckLedger) -> tuple[int, int, int]:
    return (ledger.acknowledged_count, ledger.duplicate_acks, ledger.unknown_acks)


# --- tasks ----------------------------------------------------------------------------


def test_received_tasks_are_unacknowledged_in_order_received() -> None:
    ledger = AckLedger()
    assert task_ids(ledger) == []
    assert not ledger.knows_task("a")
    ledger.task_received(task("b"))
    ledger.task_received(task("a"))
    assert task_ids(ledger) == ["b", "a"]
    assert ledger.knows_task("a")
    assert ledger.knows_task("b")
    assert not ledger.knows_task("c")
    assert ledger.subscribe_lists().tasks == tuple(ledger.unacknowledged_tasks())


def test_receiving_a_task_twice_lists_it_once() -> None:
    ledger = ledger_with("a", "b")
    ledger.task_received(task("a"))
    assert task_ids(ledger) == ["a", "b"]


def test_first_ack_of_any_update_of_a_task_removes_the_task() -> None:
    ledger = ledger_with("a", "b")
    running = queue(ledger, "a", mesos_pb2.TASK_RUNNING)
    finished = queue(ledger, "a", mesos_pb2.TASK_FINISHED)
    queue(ledger, "b")
    # The later update is acknowledged first (ACKs may come out of order).
    assert ledger.acknowledged("a", finished) is AckResult.ACKNOWLEDGED
    assert task_ids(ledger) == ["b"]
    assert ledger.has_unacknowledged("a")  # the RUNNING update still waits
    assert running in pending(ledger)
    assert [t.task_id.value for t in ledger.subscribe_lists().tasks] == ["b"]
    # A later ACK of the task's other update does not bring it back or fail.
    assert ledger.acknowledged("a", running) is AckResult.ACKNOWLEDGED
    assert task_ids(ledger) == ["b"]
    assert not ledger.has_unacknowledged("a")
    assert ledger.knows_task("a")  # still known: later updates for it are allowed
    queue(ledger, "a", mesos_pb2.TASK_FINISHED)


def test_a_task_acknowledged_and_received_again_is_not_listed_again() -> None:
    ledger = ledger_with("a")
    ledger.acknowledged("a", queue(ledger, "a"))
    ledger.task_received(task("a"))
    assert task_ids(ledger) == []


# --- acknowledgements -----------------------------------------------------------------


def test_ack_must_match_both_task_id_and_uuid() -> None:
    ledger = ledger_with("a", "b")
    u = queue(ledger, "a")
    queue(ledger, "b")
    assert ledger.acknowledged("b", u) is AckResult.UNKNOWN
    assert u in pending(ledger)
    assert task_ids(ledger) == ["a", "b"]  # neither task counts as acknowledged
    assert counters(ledger) == (0, 0, 1)
    assert ledger.acknowledged("a", u) is AckResult.ACKNOWLEDGED
    assert u not in pending(ledger)
    assert task_ids(ledger) == ["b"]
    assert counters(ledger) == (1, 0, 1)


def test_duplicate_ack_is_harmless_and_counted() -> None:
    ledger = ledger_with("a")
    u = queue(ledger, "a")
    other = queue(ledger, "a")
    assert ledger.acknowledged("a", u) is AckResult.ACKNOWLEDGED
    assert ledger.acknowledged("a", u) is AckResult.DUPLICATE
    assert ledger.acknowledged("a", u) is AckResult.DUPLICATE
    assert counters(ledger) == (1, 2, 0)
    assert pending(ledger) == [other]
    assert len(ledger) == 1


def test_unknown_ack_is_harmless_and_counted() -> None:
    ledger = ledger_with("a")
    u = queue(ledger, "a")
    before = pending(ledger)
    assert ledger.acknowledged("a", uuid.uuid4().bytes) is AckResult.UNKNOWN
    assert ledger.acknowledged("never-received", uuid.uuid4().bytes) is AckResult.UNKNOWN
    assert counters(ledger) == (0, 0, 2)
    assert pending(ledger) == before == [u]
    assert task_ids(ledger) == ["a"]
    assert delivery(ledger, u) is Delivery.QUEUED


def test_only_the_most_recent_acknowledged_uuids_are_remembered() -> None:
    # Statistics only: beyond REMEMBERED_ACKS the oldest duplicate reads as unknown.
    ledger = ledger_with("a")
    uuids = [queue(ledger, "a") for _ in range(REMEMBERED_ACKS + 1)]
    for u in uuids:
        assert ledger.acknowledged("a", u) is AckResult.ACKNOWLEDGED
    assert ledger.acknowledged("a", uuids[0]) is AckResult.UNKNOWN
    assert ledger.acknowledged("a", uuids[1]) is AckResult.DUPLICATE
    assert ledger.acknowledged("a", uuids[-1]) is AckResult.DUPLICATE
    assert counters(ledger) == (REMEMBERED_ACKS + 1, 2, 1)
    assert len(ledger) == 0


# --- queueing -------------------------------------------------------------------------


def test_update_for_a_task_never_received_is_refused() -> None:
    ledger = ledger_with("a")
    with pytest.raises(LocalProtocolError, match="never received"):
        ledger.update_queued(status("b"))
    assert len(ledger) == 0
    assert offered(ledger) == []
    assert ledger.subscribe_lists().updates == ()
    assert not ledger.knows_task("b")


def test_update_without_uuid_or_with_a_pending_uuid_is_refused() -> None:
    ledger = ledger_with("a")
    unprepared = mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value="a"), state=mesos_pb2.TASK_RUNNING
    )
    with pytest.raises(LocalProtocolError, match="uuid"):
        ledger.update_queued(unprepared)
    prepared = status("a")
    ledger.update_queued(prepared)
    with pytest.raises(LocalProtocolError, match="already pending"):
        ledger.update_queued(prepared)
    assert pending(ledger) == [prepared.uuid]


def test_queued_update_is_kept_exactly_as_given() -> None:
    ledger = ledger_with("a")
    prepared = status("a", mesos_pb2.TASK_FINISHED)
    entry = ledger.update_queued(prepared)
    assert entry.task_id == "a"
    assert entry.status == prepared
    assert ledger.get(prepared.uuid) is entry
    assert ledger.get(uuid.uuid4().bytes) is None
    assert ledger.subscribe_lists().updates == (prepared,)


def test_sequence_numbers_increase_and_are_never_reused() -> None:
    ledger = ledger_with("a")
    first = ledger.update_queued(status("a"))
    ledger.acknowledged("a", first.uuid)
    second = ledger.update_queued(status("a"))
    assert second.seq > first.seq


# --- sending, per-task order ----------------------------------------------------------


def test_sendable_offers_only_the_oldest_unaccepted_update_of_each_task() -> None:
    ledger = ledger_with("a", "b")
    a1 = queue(ledger, "a")
    a2 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    a3 = queue(ledger, "a")
    assert offered(ledger) == [a1, b1]
    with pytest.raises(LocalProtocolError, match="overtake"):
        ledger.update_sending(a2)
    assert delivery(ledger, a2) is Delivery.QUEUED

    ledger.update_sending(a1)
    assert delivery(ledger, a1) is Delivery.SENDING
    assert offered(ledger) == [b1]  # nothing more for "a" while a1 is in flight
    with pytest.raises(LocalProtocolError):
        ledger.update_sending(a2)

    ledger.update_accepted(a1)
    assert delivery(ledger, a1) is Delivery.ACCEPTED
    assert offered(ledger) == [a2, b1]  # oldest first across tasks
    deliver(ledger, a2)
    assert offered(ledger) == [b1, a3]
    assert pending(ledger) == [a1, a2, b1, a3]  # nothing left the ledger without an ACK


def test_update_sending_refuses_what_is_not_queued() -> None:
    ledger = ledger_with("a")
    u = queue(ledger, "a")
    ledger.update_sending(u)
    with pytest.raises(LocalProtocolError, match="not queued"):
        ledger.update_sending(u)
    ledger.update_accepted(u)
    with pytest.raises(LocalProtocolError, match="not queued"):
        ledger.update_sending(u)
    with pytest.raises(LocalProtocolError, match="not queued"):
        ledger.update_sending(uuid.uuid4().bytes)
    assert delivery(ledger, u) is Delivery.ACCEPTED


def test_failed_send_puts_the_update_back_first_in_line() -> None:
    ledger = ledger_with("a")
    a1 = queue(ledger, "a")
    a2 = queue(ledger, "a")
    ledger.update_sending(a1)
    ledger.update_failed(a1)
    assert delivery(ledger, a1) is Delivery.QUEUED
    assert offered(ledger) == [a1]  # a2 still waits behind it
    ledger.update_sending(a1)
    ledger.update_accepted(a1)
    assert offered(ledger) == [a2]


def test_failure_or_202_for_an_update_not_in_flight_is_ignored() -> None:
    ledger = ledger_with("a")
    u = queue(ledger, "a")
    ledger.update_accepted(u)  # a 202 for something never sent
    assert delivery(ledger, u) is Delivery.QUEUED
    deliver(ledger, u)
    ledger.update_failed(u)  # a late failure after the 202
    assert delivery(ledger, u) is Delivery.ACCEPTED
    assert offered(ledger) == []
    ledger.update_failed(uuid.uuid4().bytes)
    ledger.update_accepted(uuid.uuid4().bytes)
    assert pending(ledger) == [u]


def test_late_202_after_the_ack_is_a_no_op() -> None:
    ledger = ledger_with("a")
    u = queue(ledger, "a")
    ledger.update_sending(u)
    assert ledger.acknowledged("a", u) is AckResult.ACKNOWLEDGED
    ledger.update_accepted(u)
    ledger.update_failed(u)
    assert len(ledger) == 0
    assert offered(ledger) == []


def test_disconnected_puts_updates_in_flight_back_and_keeps_accepted_ones() -> None:
    ledger = ledger_with("a", "b", "c")
    a1 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    c1 = queue(ledger, "c")
    ledger.update_sending(a1)
    deliver(ledger, b1)
    ledger.disconnected()
    assert delivery(ledger, a1) is Delivery.QUEUED
    assert delivery(ledger, b1) is Delivery.ACCEPTED
    assert delivery(ledger, c1) is Delivery.QUEUED
    assert offered(ledger) == [a1, c1]
    assert pending(ledger) == [a1, b1, c1]


def test_rejected_update_leaves_the_ledger_and_unblocks_its_task() -> None:
    ledger = ledger_with("a")
    a1 = queue(ledger, "a")
    a2 = queue(ledger, "a")
    ledger.update_sending(a1)
    removed = ledger.update_rejected(a1)
    assert removed is not None
    assert removed.uuid == a1
    assert pending(ledger) == [a2]
    assert offered(ledger) == [a2]
    assert ledger.subscribe_lists().updates[0].uuid == a2
    assert task_ids(ledger) == ["a"]  # a rejection is not an acknowledgement
    assert ledger.update_rejected(a1) is None
    assert ledger.update_rejected(uuid.uuid4().bytes) is None
    # An ACK for it afterwards (should the agent send one) matches nothing pending.
    assert ledger.acknowledged("a", a1) is AckResult.UNKNOWN
    assert pending(ledger) == [a2]


# --- SUBSCRIBE lists ------------------------------------------------------------------


def test_subscribe_lists_hold_every_unacknowledged_update_in_send_order() -> None:
    ledger = ledger_with("a", "b")
    a1 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    deliver(ledger, a1)  # accepted: only the ACK is missing, still listed
    ledger.update_sending(b1)
    ledger.disconnected()
    # Updates made while disconnected are listed too, after the others.
    a2 = queue(ledger, "a", mesos_pb2.TASK_FINISHED)
    b2 = queue(ledger, "b", mesos_pb2.TASK_FAILED)
    lists = ledger.subscribe_lists()
    assert [s.uuid for s in lists.updates] == [a1, b1, a2, b2]
    assert [s.task_id.value for s in lists.updates] == ["a", "b", "a", "b"]
    assert [t.task_id.value for t in lists.tasks] == ["a", "b"]
    last = ledger.get(b2)
    assert last is not None
    assert lists.watermark == last.seq


def test_subscribe_lists_after_acks() -> None:
    ledger = ledger_with("a", "b", "c")
    a1 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    ledger.acknowledged("a", a1)
    lists = ledger.subscribe_lists()
    assert [s.uuid for s in lists.updates] == [b1]
    assert [t.task_id.value for t in lists.tasks] == ["b", "c"]


def test_subscribed_accepts_only_updates_up_to_the_watermark() -> None:
    ledger = ledger_with("a", "b")
    a1 = queue(ledger, "a")
    a2 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    ledger.update_sending(a1)
    ledger.disconnected()
    lists = ledger.subscribe_lists()
    # Made after the snapshot, while the SUBSCRIBE is in flight: not in it.
    a3 = queue(ledger, "a")
    b2 = queue(ledger, "b")
    assert a3 not in [s.uuid for s in lists.updates]
    ledger.subscribed(lists)
    for u in (a1, a2, b1):
        assert delivery(ledger, u) is Delivery.ACCEPTED
    assert delivery(ledger, a3) is Delivery.QUEUED
    assert delivery(ledger, b2) is Delivery.QUEUED
    # ... so they still go out as UPDATE calls, in order.
    assert offered(ledger) == [a3, b2]
    # Nothing was acknowledged by the SUBSCRIBE itself.
    assert pending(ledger) == [a1, a2, b1, a3, b2]
    assert task_ids(ledger) == ["a", "b"]


def test_subscribed_with_an_older_snapshot_leaves_newer_updates_alone() -> None:
    ledger = ledger_with("a")
    a1 = queue(ledger, "a")
    old = ledger.subscribe_lists()
    a2 = queue(ledger, "a")
    ledger.subscribed(old)
    ledger.update_sending(a2)
    ledger.subscribed(old)  # applying it again changes nothing
    assert delivery(ledger, a1) is Delivery.ACCEPTED
    assert delivery(ledger, a2) is Delivery.SENDING
    ledger.update_failed(a2)
    assert offered(ledger) == [a2]


def test_update_in_flight_during_a_successful_subscribe_is_accepted() -> None:
    ledger = ledger_with("a")
    a1 = queue(ledger, "a")
    lists = ledger.subscribe_lists()
    ledger.update_sending(a1)
    ledger.subscribed(lists)
    assert delivery(ledger, a1) is Delivery.ACCEPTED
    ledger.update_failed(a1)  # the in-flight UPDATE then fails: the agent has it anyway
    assert delivery(ledger, a1) is Delivery.ACCEPTED
    assert offered(ledger) == []


# --- regressions ----------------------------------------------------------------------


def test_withheld_acks_never_cause_resends() -> None:
    """An update is not offered again after its 202, however long the ACK takes.

    Regression for "never re-sent on an ACK timeout" (PROTOCOL.md §4.4, §5.3):
    re-sending unacknowledged updates on a timer floods an agent that is
    merely slow to checkpoint.
    """
    ledger = ledger_with("a", "b")
    uuids = [queue(ledger, "a"), queue(ledger, "b"), queue(ledger, "a")]
    sent: list[bytes] = []
    for _ in range(10):  # the shell polls sendable() over and over
        for entry in ledger.sendable():
            ledger.update_sending(entry.uuid)
            ledger.update_accepted(entry.uuid)
            sent.append(entry.uuid)
    assert sorted(sent) == sorted(uuids)  # each exactly once
    assert len(sent) == len(set(sent))
    assert offered(ledger) == []
    # A reconnection does not make them sendable again either ...
    ledger.disconnected()
    assert offered(ledger) == []
    # ... they travel inside the SUBSCRIBE instead, and only there.
    lists = ledger.subscribe_lists()
    assert [s.uuid for s in lists.updates] == uuids
    ledger.subscribed(lists)
    assert offered(ledger) == []
    assert pending(ledger) == uuids


def test_unacknowledged_terminal_update_is_replayed_in_the_next_subscribe() -> None:
    """pymesos defect 3: an un-ACKed TASK_FINISHED was missing from the resubscribe."""
    ledger = ledger_with("t")
    running = status("t", mesos_pb2.TASK_RUNNING)
    finished = status("t", mesos_pb2.TASK_FINISHED)
    ledger.update_queued(running)
    deliver(ledger, running.uuid)
    assert ledger.acknowledged("t", running.uuid) is AckResult.ACKNOWLEDGED
    ledger.update_queued(finished)
    deliver(ledger, finished.uuid)
    # The stream drops before the ACK of TASK_FINISHED arrives.
    ledger.disconnected()
    lists = ledger.subscribe_lists()
    assert list(lists.updates) == [finished]
    assert lists.updates[0].state == mesos_pb2.TASK_FINISHED
    # The task itself was acknowledged (its RUNNING was), so it is not listed.
    assert lists.tasks == ()
    ledger.subscribed(lists)
    # Still pending until the ACK, and listed in every later SUBSCRIBE.
    ledger.disconnected()
    assert list(ledger.subscribe_lists().updates) == [finished]
    assert ledger.acknowledged("t", finished.uuid) is AckResult.ACKNOWLEDGED
    assert ledger.subscribe_lists().updates == ()


def test_task_with_no_acknowledged_update_is_replayed_with_its_updates() -> None:
    ledger = ledger_with("t")
    u = queue(ledger, "t", mesos_pb2.TASK_FINISHED)
    ledger.update_sending(u)
    ledger.disconnected()
    lists = ledger.subscribe_lists()
    assert [t.task_id.value for t in lists.tasks] == ["t"]
    assert [s.uuid for s in lists.updates] == [u]


def test_queries() -> None:
    ledger = ledger_with("a", "b")
    assert len(ledger) == 0
    assert list(ledger) == []
    a1 = queue(ledger, "a")
    b1 = queue(ledger, "b")
    assert len(ledger) == 2
    assert [e.uuid for e in ledger] == [a1, b1]
    assert ledger.has_unacknowledged("a")
    assert not ledger.has_unacknowledged("c")
    # Iterating over a snapshot: acknowledging while iterating is safe.
    for entry in ledger:
        ledger.acknowledged(entry.task_id, entry.uuid)
    assert len(ledger) == 0
    assert not ledger.has_unacknowledged("a")


def test_an_ack_repeated_with_another_task_id_is_unknown_not_duplicate() -> None:
    ledger = ledger_with("a")
    uuid_ = queue(ledger, "a")
    assert ledger.acknowledged("a", uuid_) is AckResult.ACKNOWLEDGED
    assert ledger.acknowledged("b", uuid_) is AckResult.UNKNOWN
    assert ledger.acknowledged("a", uuid_) is AckResult.DUPLICATE
    assert (ledger.unknown_acks, ledger.duplicate_acks) == (1, 1)


def test_the_ledger_keeps_its_own_copy_of_each_task() -> None:
    ledger = AckLedger()
    info = task("a")
    ledger.task_received(info)
    info.name = "changed by the caller"
    assert ledger.subscribe_lists().tasks[0].name != "changed by the caller"
