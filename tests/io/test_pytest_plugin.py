"""trio_mesos.testing.pytest_plugin, as a user enables it (a pytest run of its own)."""

from __future__ import annotations

import pathlib

import pytest

pytest_plugins = ["pytester"]

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
CONFTEST = pathlib.Path(__file__).resolve().parents[1] / "conftest.py"

USER_TESTS = """
import pytest
import trio
from trio_mesos.testing import FakeAgent

seen = []


async def test_a_running_agent_in_virtual_time(fake_agent, autojump_clock):
    assert isinstance(fake_agent, FakeAgent)
    seen.append(fake_agent)
    stream = await fake_agent.connect()  # serving at once
    await stream.aclose()
    await trio.sleep(3600)
    assert trio.current_time() >= 3600


@pytest.mark.fake_agent(executor_id="from-the-marker", shutdown_grace_period=7)
async def test_the_marker_gives_arguments(fake_agent):
    assert fake_agent.executor_id == "from-the-marker"
    options = fake_agent.driver_options(seed=3)
    assert options["config"].executor_id == "from-the-marker"
    assert options["config"].shutdown_grace_period == 7
    assert options["open_stream"] == fake_agent.connect
    assert options["rng"].random() == __import__("random").Random(3).random()


async def test_each_test_gets_its_own_agent_closed_after_it(fake_agent):
    assert fake_agent is not seen[0]
    with pytest.raises(RuntimeError, match="not running"):
        await seen[0].connect()
"""


def test_the_plugin_enabled_by_name(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makeconftest('pytest_plugins = ["trio_mesos.testing.pytest_plugin"]\n')
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_without_the_plugin_there_is_no_fixture(pytester: pytest.Pytester) -> None:
    # The check above can fail: the fixture comes from the plugin only.
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)


def test_the_docs_show_the_line_this_suite_uses() -> None:
    line = 'pytest_plugins = ["trio_mesos.testing.pytest_plugin"]'
    assert line in CONFTEST.read_text(encoding="utf-8")
    assert f"   {line}\n" in (DOCS / "testing.rst").read_text(encoding="utf-8")
