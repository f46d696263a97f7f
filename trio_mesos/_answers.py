"""What an answer of the agent to a call means: one table for every call.

Pure (no I/O). The session uses it for SUBSCRIBE, the call task for UPDATE,
MESSAGE and HEARTBEAT, so a status code means the same thing wherever it is
read. The rules follow Mesos's C++ executor library
(``src/executor/executor.cpp``, ``Mesos::_send``; PROTOCOL.md §4.5) with one
difference on purpose: where the library only logs and drops a call, we keep
it and try again (an update must never be lost).

==========================  ====================  ====================
answer                      SUBSCRIBE             UPDATE, MESSAGE, HEARTBEAT
==========================  ====================  ====================
200 (SUBSCRIBE), 2xx        accepted              accepted (202 expected; others logged)
503, 404                    retry                 retry (agent recovering, routes not ready)
403 ``... not subscribed``  refused               retry (the agent restarted: re-SUBSCRIBE first)
other 5xx, 1xx, 3xx         retry on a            retry (not an answer an agent gives to
                            re-SUBSCRIBE;         an executor it knows; redirects are not
                            refused on the first  followed)
anything else (400, 401,    refused               refused
403, 405, 415, ...)
==========================  ====================  ====================
"""

from __future__ import annotations

import enum

__all__ = ["Verdict", "classify"]


class Verdict(enum.Enum):
    """What to do with a call after its answer."""

    ACCEPTED = "accepted"
    RETRY = "retry"
    REFUSED = "refused"


def _transient(code: int) -> bool:
    return code >= 500 or code < 200 or 300 <= code < 400


def classify(
    status_code: int, body: bytes = b"", *, subscribe: bool = False, resubscribe: bool = False
) -> Verdict:
    """The verdict on an answer (see the module's table).

    Args:
        status_code: the HTTP status of the answer.
        body: its body (only read for ``403 ... not subscribed``).
        subscribe: the call was SUBSCRIBE.
        resubscribe: SUBSCRIBE after the executor had subscribed once (an
            outage: nothing may be dropped, so transient answers are retried).
    """
    code = status_code
    if subscribe:
        if code == 200:
            return Verdict.ACCEPTED
        if code in (503, 404) or (resubscribe and _transient(code)):
            return Verdict.RETRY
        return Verdict.REFUSED
    if 200 <= code < 300:
        return Verdict.ACCEPTED
    if _transient(code) or code == 404 or (code == 403 and b"not subscribed" in body):
        return Verdict.RETRY
    return Verdict.REFUSED
