"""Tests of trio_mesos._answers: what an answer of the agent means (PROTOCOL.md §1.5, §4.5).

One table for every call: SUBSCRIBE (first, or again after an outage) and the
other calls (UPDATE, MESSAGE, HEARTBEAT). Example rows for every status class,
then a property over every status code HTTP allows, checked against the rules
written out independently below.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_mesos._answers import Verdict, classify

ACCEPTED, RETRY, REFUSED = Verdict.ACCEPTED, Verdict.RETRY, Verdict.REFUSED

#: The agent's body for a call from an executor it does not know as subscribed
#: (``Slave::executor``, PROTOCOL.md §1.5 row 13).
NOT_SUBSCRIBED = b"Executor is not subscribed"

#: (status code, body, first SUBSCRIBE, re-SUBSCRIBE, other calls)
ROWS: list[tuple[int, bytes, Verdict, Verdict, Verdict]] = [
    # 2xx: only 200 accepts SUBSCRIBE (a stream); calls expect 202, any 2xx will do.
    (200, b"", ACCEPTED, ACCEPTED, ACCEPTED),
    (202, b"", REFUSED, REFUSED, ACCEPTED),
    (201, b"", REFUSED, REFUSED, ACCEPTED),
    (204, b"", REFUSED, REFUSED, ACCEPTED),
    (299, b"", REFUSED, REFUSED, ACCEPTED),
    # The agent recovering (503) or its routes not installed yet (404): always retried.
    (503, b"Agent has not finished recovery", RETRY, RETRY, RETRY),
    (404, b"Not Found", RETRY, RETRY, RETRY),
    # Other 5xx, 1xx and 3xx are no agent's answer: retried unless the first SUBSCRIBE.
    (500, b"Internal Server Error", REFUSED, RETRY, RETRY),
    (502, b"Bad Gateway", REFUSED, RETRY, RETRY),
    (504, b"", REFUSED, RETRY, RETRY),
    (599, b"", REFUSED, RETRY, RETRY),
    (100, b"", REFUSED, RETRY, RETRY),
    (101, b"", REFUSED, RETRY, RETRY),
    (199, b"", REFUSED, RETRY, RETRY),
    (300, b"", REFUSED, RETRY, RETRY),
    (302, b"", REFUSED, RETRY, RETRY),
    (307, b"", REFUSED, RETRY, RETRY),
    (399, b"", REFUSED, RETRY, RETRY),
    # 403 "not subscribed": the agent restarted; a call waits for the re-SUBSCRIBE.
    (403, NOT_SUBSCRIBED, REFUSED, REFUSED, RETRY),
    (403, b"...: Executor is not subscribed", REFUSED, REFUSED, RETRY),
    # Every other 4xx is a refusal for good.
    (403, b"", REFUSED, REFUSED, REFUSED),
    (403, b"Forbidden", REFUSED, REFUSED, REFUSED),
    (403, b"Executor is NOT SUBSCRIBED", REFUSED, REFUSED, REFUSED),  # the agent's exact words
    (403, b"Executor is subscribed", REFUSED, REFUSED, REFUSED),
    (400, b"Failed to validate executor::Call", REFUSED, REFUSED, REFUSED),
    (400, NOT_SUBSCRIBED, REFUSED, REFUSED, REFUSED),  # only a 403 says it
    (401, b"", REFUSED, REFUSED, REFUSED),
    (405, b"", REFUSED, REFUSED, REFUSED),
    (406, b"", REFUSED, REFUSED, REFUSED),
    (409, b"", REFUSED, REFUSED, REFUSED),
    (415, b"", REFUSED, REFUSED, REFUSED),
    (499, b"", REFUSED, REFUSED, REFUSED),
]


@pytest.mark.parametrize(("code", "body", "first", "again", "call"), ROWS)
def test_the_table(code: int, body: bytes, first: Verdict, again: Verdict, call: Verdict) -> None:
    assert classify(code, body, subscribe=True, resubscribe=False) is first
    assert classify(code, body, subscribe=True, resubscribe=True) is again
    assert classify(code, body) is call
    assert classify(code, body, subscribe=False, resubscribe=False) is call


def test_the_table_has_a_row_for_every_status_class_and_verdict() -> None:
    assert {code // 100 for code, *_ in ROWS} == {1, 2, 3, 4, 5}
    for column in zip(*[(first, again, call) for _, _, first, again, call in ROWS], strict=True):
        assert set(column) == set(Verdict)


def test_the_body_is_read_only_for_a_call_refused_with_403() -> None:
    assert classify(403, NOT_SUBSCRIBED) is RETRY
    assert classify(403, b"") is REFUSED
    # Defaults: no body, a call that is not SUBSCRIBE.
    assert classify(403) is REFUSED
    assert classify(202) is ACCEPTED
    assert classify(503) is RETRY


# --- every status code ---------------------------------------------------------------

codes = st.integers(min_value=100, max_value=599)
bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", NOT_SUBSCRIBED, b"subscribed", b"Agent has not finished recovery"]),
    st.builds(lambda a, b: a + NOT_SUBSCRIBED + b, st.binary(max_size=8), st.binary(max_size=8)),
)


def is_2xx(code: int) -> bool:
    return 200 <= code <= 299


def not_from_an_agent(code: int) -> bool:
    """5xx, 1xx and 3xx: no answer the agent gives an executor it knows."""
    return code // 100 in (1, 3, 5)


@given(code=codes, body=bodies)
def test_a_call_is_accepted_iff_2xx(code: int, body: bytes) -> None:
    assert (classify(code, body) is ACCEPTED) == is_2xx(code)
    # resubscribe only concerns SUBSCRIBE
    assert classify(code, body, resubscribe=True) is classify(code, body)


@given(code=codes, body=bodies, resubscribe=st.booleans())
def test_subscribe_is_accepted_iff_200(code: int, body: bytes, resubscribe: bool) -> None:
    verdict = classify(code, body, subscribe=True, resubscribe=resubscribe)
    assert (verdict is ACCEPTED) == (code == 200)


@given(code=codes, body=bodies)
def test_a_first_subscribe_is_retried_only_for_503_and_404(code: int, body: bytes) -> None:
    verdict = classify(code, body, subscribe=True, resubscribe=False)
    assert (verdict is RETRY) == (code in (503, 404))


@given(code=codes, body=bodies)
def test_a_resubscribe_is_retried_for_503_404_and_answers_no_agent_gives(
    code: int, body: bytes
) -> None:
    verdict = classify(code, body, subscribe=True, resubscribe=True)
    assert (verdict is RETRY) == (code in (503, 404) or not_from_an_agent(code))


@given(code=codes, body=bodies)
def test_a_call_is_retried_for_what_a_resubscribe_retries_and_403_not_subscribed(
    code: int, body: bytes
) -> None:
    verdict = classify(code, body)
    resubscribe_retried = code in (503, 404) or not_from_an_agent(code)
    not_subscribed = code == 403 and b"not subscribed" in body
    assert (verdict is RETRY) == (resubscribe_retried or not_subscribed)


@given(code=codes, body=bodies, subscribe=st.booleans(), resubscribe=st.booleans())
def test_the_body_matters_only_for_a_call_refused_with_403(
    code: int, body: bytes, subscribe: bool, resubscribe: bool
) -> None:
    verdict = classify(code, body, subscribe=subscribe, resubscribe=resubscribe)
    without_body = classify(code, subscribe=subscribe, resubscribe=resubscribe)
    if subscribe or code != 403:
        assert verdict is without_body
    else:
        assert verdict is (RETRY if b"not subscribed" in body else REFUSED)


@given(code=codes, body=bodies)
def test_a_resubscribe_refuses_only_what_a_first_subscribe_refuses(code: int, body: bytes) -> None:
    # After an outage nothing may be dropped: retrying is never stricter than the first time.
    first = classify(code, body, subscribe=True, resubscribe=False)
    again = classify(code, body, subscribe=True, resubscribe=True)
    if again is REFUSED:
        assert first is REFUSED
    if first is not REFUSED:
        assert again is first
