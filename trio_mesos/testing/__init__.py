"""Test helpers for executors: a faithful, scriptable fake Mesos agent.

:class:`FakeAgent` serves the v1 executor HTTP API the way a Mesos 1.11
agent does (status codes, error texts, headers, RecordIO framing, the
acknowledgement rules, restart and recovery), over in-memory streams (for
tests under ``trio.testing.MockClock``), TCP on 127.0.0.1 or a Unix socket.
It can also start an executor program with the exact environment a real agent
gives (:meth:`FakeAgent.spawn_executor`), and ``python -m trio_mesos.testing``
runs one from the command line and prints the conversation::

    from trio_mesos.testing import FakeAgent

    async with FakeAgent() as agent:
        stream = await agent.connect()
        ...
        await agent.wait_subscribed()
        await agent.launch(task)
        status = await agent.wait_for_update("task-1", mesos_pb2.TASK_FINISHED)

Importing this package has no side effects.
"""

from ._fake_agent import DEFAULT_PATH as DEFAULT_PATH
from ._fake_agent import AckPolicy as AckPolicy
from ._fake_agent import ExecutorProcess as ExecutorProcess
from ._fake_agent import FakeAgent as FakeAgent
from ._fake_agent import FakeAgentError as FakeAgentError
from ._fake_agent import NotSubscribedError as NotSubscribedError
from ._fake_agent import RecordedCall as RecordedCall
from ._fake_agent import SentEvent as SentEvent

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

# Public names say they live here, not in a private module (trio's convention).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trio_mesos.testing._"):
        _obj.__module__ = "trio_mesos.testing"
del _name, _obj
