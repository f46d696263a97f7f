"""The FakeAgent's answer rules, authentication and task book, without I/O.

``trio_mesos.testing._rules.answer`` decides what the agent answers to a
request in a given state; these cases pin down the order of the checks of
``Http::executor`` (src/slave/http.cpp) as PROTOCOL.md §1.5 lists them. The
byte-exact texts are checked against the real agent's captures in
tests/io/test_fake_agent_fidelity.py; here the point is which rule wins.
"""

from __future__ import annotations

import uuid

import pytest

from trio_mesos._messages import ContentType, encode_message
from trio_mesos.testing._auth import Authenticator, claims_error
from trio_mesos.testing._request import Reply, Request
from trio_mesos.testing._rules import (
    Accepted,
    AgentState,
    AgentView,
    ExecutorState,
    FailRule,
    accepts,
    answer,
    finish,
    route,
    take_rule,
)
from trio_mesos.testing._tasks import TaskBook, UpdateOutcome
from trio_mesos.v1 import executor_pb2, mesos_pb2

Call = executor_pb2.Call
FID, EID, CID = "fw-1", "ex-1", "c-1"
PATH = "/slave(1)/api/v1/executor"
KEY = b"k" * 32


def view(**changes: object) -> AgentView:
    values: dict[str, object] = {
        "agent_state": AgentState.RUNNING,
        "executor_state": ExecutorState.RUNNING,
        "framework_known": True,
        "framework_id": FID,
        "executor_id": EID,
        "container_id": CID,
    }
    values.update(changes)
    return AgentView(**values)  # type: ignore[arg-type]


def call(kind: int, **ids: str) -> executor_pb2.Call:
    made = Call(type=kind)  # type: ignore[arg-type]
    made.framework_id.value = ids.get("framework_id", FID)
    made.executor_id.value = ids.get("executor_id", EID)
    if kind == Call.SUBSCRIBE:
        made.subscribe.SetInParent()
    elif kind == Call.MESSAGE:
        made.message.data = b"hi"
    elif kind == Call.UPDATE:
        status = made.update.status
        status.task_id.value = "t"
        status.state = mesos_pb2.TASK_RUNNING
        status.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        status.uuid = uuid.uuid4().bytes
    return made


def request(
    body: executor_pb2.Call | bytes,
    *,
    method: str = "POST",
    path: str = PATH,
    content_type: str | None = ContentType.PROTOBUF.value,
    headers: tuple[tuple[str, str], ...] = (),
) -> Request:
    data = body if isinstance(body, bytes) else encode_message(body, ContentType.PROTOBUF)
    head = headers if content_type is None else (("Content-Type", content_type), *headers)
    return Request(method, path, path, head, data)


def status_of(outcome: Reply | Accepted) -> int:
    return 200 if isinstance(outcome, Accepted) else outcome.status


@pytest.mark.parametrize(
    ("transport", "path", "expected"),
    [
        ("tcp", "/slave(1)/api/v1/executor", "/api/v1/executor"),
        ("tcp", "/api/v1/executor/", "/api/v1/executor"),
        ("tcp", "/slave(1)/api/v1", "/api/v1"),
        ("tcp", "/slave(2)/api/v1/executor", None),
        ("unix", "/slave(1)/api/v1/executor", "/api/v1/executor"),
        ("unix", "/api/v1/executor", "forbidden"),
    ],
)
def test_route(transport: str, path: str, expected: str | None) -> None:
    assert route(transport, path) == expected


def test_accepts_follows_q_values() -> None:
    assert accepts([], "application/json")
    assert accepts(["application/*"], "application/json")
    assert not accepts(["application/json;q=0"], "application/json")
    assert not accepts(["text/plain"], "application/x-protobuf")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (AgentState.RECOVERING_CONTAINERS, 503),  # before the method is looked at
        (AgentState.RUNNING, 405),
    ],
)
def test_recovering_containers_wins_over_the_method(state: AgentState, expected: int) -> None:
    outcome, decoded = answer(request(b"", method="GET"), view(agent_state=state))
    assert (status_of(outcome), decoded) == (expected, None)


def test_content_type_rules() -> None:
    missing, _ = answer(request(call(Call.MESSAGE), content_type=None), view())
    unsupported, _ = answer(request(call(Call.MESSAGE), content_type="text/plain"), view())
    garbage, _ = answer(request(b"\xff\xff"), view())
    assert [status_of(o) for o in (missing, unsupported, garbage)] == [400, 415, 400]


def test_heartbeat_is_accepted_while_recovering_but_update_is_not() -> None:
    recovering = view(agent_state=AgentState.RECOVERING)
    heartbeat, _ = answer(request(call(Call.HEARTBEAT)), recovering)
    update, _ = answer(request(call(Call.UPDATE)), recovering)
    subscribe, _ = answer(request(call(Call.SUBSCRIBE)), recovering)
    assert (status_of(heartbeat), status_of(update)) == (202, 503)
    assert isinstance(subscribe, Accepted)


def test_lookups_then_registration() -> None:
    unknown, _ = answer(request(call(Call.MESSAGE, framework_id="other")), view())
    forgotten, _ = answer(request(call(Call.MESSAGE)), view(framework_known=False))
    wrong_executor, _ = answer(request(call(Call.MESSAGE, executor_id="other")), view())
    registering = view(executor_state=ExecutorState.REGISTERING)
    early, _ = answer(request(call(Call.UPDATE)), registering)
    first, _ = answer(request(call(Call.SUBSCRIBE)), registering)
    assert isinstance(unknown, Reply) and unknown.body == b"Framework cannot be found"
    assert isinstance(forgotten, Reply) and forgotten.body == b"Framework cannot be found"
    assert isinstance(wrong_executor, Reply) and wrong_executor.body == b"Executor cannot be found"
    assert isinstance(early, Reply) and (early.status, early.body) == (
        403,
        b"Executor is not subscribed",
    )
    assert isinstance(first, Accepted)


def test_subscribe_picks_the_stream_type_from_accept() -> None:
    def accept(value: str) -> Reply | Accepted:
        outcome, _ = answer(request(call(Call.SUBSCRIBE), headers=(("Accept", value),)), view())
        return outcome

    protobuf = accept("application/x-protobuf")
    assert isinstance(protobuf, Accepted) and protobuf.accept is ContentType.PROTOBUF
    both = accept("application/x-protobuf, application/json")
    assert isinstance(both, Accepted) and both.accept is ContentType.JSON
    assert status_of(accept("text/html")) == 406


def test_validation_comes_before_the_lookups() -> None:
    bad = call(Call.UPDATE, framework_id="other")
    bad.update.status.state = mesos_pb2.TASK_STAGING
    outcome, decoded = answer(request(bad), view())
    assert isinstance(outcome, Reply) and outcome.status == 400
    assert b"TASK_STAGING" in outcome.body
    assert decoded == bad


def test_a_fail_rule_applies_after_decoding_and_never_to_subscribe() -> None:
    rules = [FailRule(1, 503, b"busy", None)]

    def fail(made: executor_pb2.Call) -> Reply | None:
        rule = take_rule(rules, made)
        return None if rule is None else Reply(rule.status, rule.body)

    subscribe, _ = answer(request(call(Call.SUBSCRIBE)), view(), fail)
    update, _ = answer(request(call(Call.UPDATE)), view(), fail)
    again, _ = answer(request(call(Call.UPDATE)), view(), fail)
    assert isinstance(subscribe, Accepted)
    assert status_of(update) == 503 and isinstance(again, Accepted)
    assert rules == []


def test_take_rule_respects_call_types_and_counts_down() -> None:
    rules = [FailRule(2, 500, b"", frozenset({Call.MESSAGE}))]
    assert take_rule(rules, call(Call.UPDATE)) is None
    assert take_rule(rules, call(Call.MESSAGE)) is not None
    assert rules[0].remaining == 1
    assert take_rule(rules, call(Call.MESSAGE)) is not None
    assert rules == []


def test_authentication() -> None:
    auth = Authenticator(KEY)
    secured = view(token="static", auth=auth)
    bearer = (("Authorization", "Bearer static"),)
    missing, _ = answer(request(call(Call.MESSAGE)), secured)
    accepted, _ = answer(request(call(Call.MESSAGE), headers=bearer), secured)
    wrong_claims = auth.make_token({"cid": CID, "eid": "other", "fid": FID})
    other = (("Authorization", f"Bearer {wrong_claims}"),)
    forbidden, _ = answer(request(call(Call.MESSAGE), headers=other), secured)
    forged = Authenticator(b"x" * 32).make_token({"cid": CID, "eid": EID, "fid": FID})
    bad_signature, _ = answer(
        request(call(Call.MESSAGE), headers=(("Authorization", f"Bearer {forged}"),)), secured
    )
    assert isinstance(missing, Reply) and missing.status == 401
    assert missing.headers == (("WWW-Authenticate", 'Bearer realm="mesos-agent-executor"'),)
    assert isinstance(accepted, Accepted)
    assert isinstance(forbidden, Reply) and forbidden.status == 403
    assert b"'eid' claim" in forbidden.body
    assert isinstance(bad_signature, Reply) and bad_signature.status == 401
    assert "Token signature does not match" in bad_signature.headers[0][1]


def test_claims_error_checks_the_container() -> None:
    made = call(Call.MESSAGE)
    assert claims_error({"cid": CID, "eid": EID, "fid": FID}, made, CID) is None
    text = claims_error({"cid": "old", "eid": EID, "fid": FID}, made, CID)
    assert text is not None and "'cid' claim" in text


def test_finish_adds_the_libprocess_headers() -> None:
    assert finish(Reply(404)).body == b"404 Not Found."
    assert finish(Reply(404)).headers[-2:] == (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "14"),
    )
    assert finish(Reply(202)).headers == (("Content-Length", "0"),)


def status(task_id: str, state: int, key: bytes | None = None) -> mesos_pb2.TaskStatus:
    made = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
    made.task_id.value = task_id
    made.uuid = key or uuid.uuid4().bytes
    return made


def test_task_book_update_path() -> None:
    book = TaskBook("agent", EID)
    info = mesos_pb2.TaskInfo(name="t")
    info.task_id.value = "t"
    book.launched(info)
    assert book.state("t") == mesos_pb2.TASK_STAGING
    finished = status("t", mesos_pb2.TASK_FINISHED)
    assert book.process_update(finished) is UpdateOutcome.ACKNOWLEDGE
    # After a terminal state: dropped, but acknowledged; the state stays.
    assert book.process_update(status("t", mesos_pb2.TASK_RUNNING)) is UpdateOutcome.ACKNOWLEDGE
    assert book.state("t") == mesos_pb2.TASK_FINISHED
    assert book.process_update(status("nobody", mesos_pb2.TASK_RUNNING)) is UpdateOutcome.IGNORED
    resent = status("t", mesos_pb2.TASK_STAGING)
    assert book.process_update(resent, from_subscribe=True) is UpdateOutcome.SHUT_DOWN
    assert len(book.history("t")) == 3 and len(book.all_updates) == 4


def test_task_book_loses_unlisted_staging_tasks() -> None:
    book = TaskBook("agent", EID)
    for name in ("listed", "unlisted"):
        info = mesos_pb2.TaskInfo(name=name)
        info.task_id.value = name
        book.launched(info)
    subscribe = Call.Subscribe()
    subscribe.unacknowledged_tasks.add().task_id.value = "listed"
    book.lose_unlisted_staging(subscribe, now=12.5)
    assert book.state("listed") == mesos_pb2.TASK_STAGING
    assert book.state("unlisted") == mesos_pb2.TASK_LOST
    (lost,) = book.history("unlisted")
    assert lost.source == mesos_pb2.TaskStatus.SOURCE_AGENT
    assert lost.reason == mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED
    assert lost.timestamp == 12.5
