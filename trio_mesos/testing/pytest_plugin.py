"""A pytest plugin with a ready ``fake_agent`` fixture.

Enable it by name in your top-level ``conftest.py``::

    pytest_plugins = ["trio_mesos.testing.pytest_plugin"]

(or ``pytest -p trio_mesos.testing.pytest_plugin``). It needs `pytest-trio
<https://pytest-trio.readthedocs.io/>`_: the fixture is an async fixture, so
the tests that use it run in trio (``trio_mode = true``, or
``@pytest.mark.trio``), also with ``autojump_clock``.

``fake_agent`` yields a running :class:`~trio_mesos.testing.FakeAgent` (it
serves in-memory connections at once; it is closed after the test), and
``agent.driver_options()`` gives what :func:`~trio_mesos.open_executor_driver`
needs to connect to it. The agent's arguments come from a
``@pytest.mark.fake_agent(...)`` marker on the test, class or module::

    @pytest.mark.fake_agent(checkpoint=True, ack_policy=AckPolicy.MANUAL)
    async def test_restart(fake_agent, autojump_clock):
        async with trio_mesos.open_executor_driver(MyExecutor(), **fake_agent.driver_options()):
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._fake_agent import FakeAgent

__all__ = ["fake_agent"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fake_agent(**kwargs): keyword arguments of the fake_agent fixture's FakeAgent"
    )


@pytest.fixture
async def fake_agent(request: pytest.FixtureRequest) -> AsyncIterator[FakeAgent]:
    """A running :class:`~trio_mesos.testing.FakeAgent`; arguments from the
    closest ``@pytest.mark.fake_agent(...)`` marker."""
    marker = request.node.get_closest_marker("fake_agent")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    async with FakeAgent(**kwargs) as agent:
        yield agent
