"""``trio-mesos demo`` (``make demo``) end to end, the ``trio-mesos`` command, and
the rule that the command executor and the demo use only public names."""

from __future__ import annotations

import ast
import io
import pathlib
import subprocess
import sys
import time

import pytest

import trio_mesos
from trio_mesos import _cli, demo
from trio_mesos.v1 import mesos_pb2

PACKAGE = pathlib.Path(trio_mesos.__file__).resolve().parent
ROOT = PACKAGE.parent

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="real subprocesses and process groups (Linux)"
)


def test_demo_runs_end_to_end_and_exits_0() -> None:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "trio_mesos", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 30
    out = result.stdout
    summary = out[out.index("Summary after") :]
    for task_id, state in [
        ("hello", "TASK_FINISHED"),
        ("fail", "TASK_FAILED"),
        ("stubborn", "TASK_KILLED"),
        ("group-fetch", "TASK_FINISHED"),
        ("group-build", "TASK_FINISHED"),
    ]:
        line = next(x for x in summary.splitlines() if x.split()[:1] == [task_id])
        assert line.split()[1:4] == [state, state, "ok"], line
    assert "STARTING -> RUNNING -> KILLING -> KILLED" in summary
    assert "hello.stdout output: hello, world" in summary
    assert "the executor exited with status 0 after SHUTDOWN" in summary
    assert "framework message from the executor: 'hello, executor'" in out
    assert out.rstrip().endswith("Every task ended as expected (5 tasks).")
    # not a terminal: one line per state change, no escape sequences
    assert "\x1b[" not in out
    assert "stubborn     TASK_KILLING" in out


async def test_demo_fails_when_a_task_does_not_end_as_expected() -> None:
    task = mesos_pb2.TaskInfo(name="surprise")
    task.task_id.value = "surprise"
    task.agent_id.value = "demo-agent"
    task.command.value = "true"
    out = io.StringIO()
    code = await demo.run_demo(
        out,
        live=True,
        items=[demo.Sample(task, "true", expected=mesos_pb2.TASK_FAILED)],
        time_limit=30,
    )
    text = out.getvalue()
    assert code == 1, text
    assert "\x1b[" in text  # the live table was redrawn in place
    assert "TASK_FAILED     TASK_FINISHED   FAIL" in text
    assert "FAILED: 1 task(s) did not end as expected" in text


async def test_demo_fails_when_the_executor_does_not_start() -> None:
    out = io.StringIO()
    argv = [sys.executable, "-c", "import sys; print('no executor here', file=sys.stderr); exit(3)"]
    code = await demo.run_demo(out, executor_argv=argv, time_limit=30)
    text = out.getvalue()
    assert code == 1, text
    assert "the executor exited with status 3" in text
    assert "no executor here" in text


def test_trio_mesos_command_dispatches(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main([]) == 2
    assert _cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"trio-mesos {trio_mesos.__version__}"
    with pytest.raises(SystemExit) as exc:
        _cli.main(["fake-agent", "--help"])
    assert exc.value.code == 0
    assert "python -m trio_mesos.testing" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        _cli.main(["demo", "--help"])
    assert exc.value.code == 0
    assert "trio-mesos demo" in capsys.readouterr().out


def test_console_scripts_point_at_main_functions() -> None:
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "trio-mesos-executor": "trio_mesos.command_executor:main",
        "trio-mesos": "trio_mesos._cli:main",
    }


# -- public names only ---------------------------------------------------------------------


def private_uses(source: str) -> list[str]:
    """Private names of trio_mesos that ``source`` imports, and ``x._name`` uses not on self."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                found.append(f"relative import from {module or '.'}")
            elif module.split(".")[0] == "trio_mesos":
                if any(part.startswith("_") for part in module.split(".")):
                    found.append(module)
                found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "trio_mesos" and any(p.startswith("_") for p in parts):
                    found.append(alias.name)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ):
            found.append(node.attr)
    return found


COMMAND_EXECUTOR_FILES = sorted(
    str(path.relative_to(PACKAGE)) for path in (PACKAGE / "command_executor").glob("*.py")
)


@pytest.mark.parametrize("name", [*COMMAND_EXECUTOR_FILES, "demo.py"])
def test_command_executor_and_demo_use_only_public_names(name: str) -> None:
    # The command executor's own modules (``._x``) are its business: only
    # trio_mesos's private names are forbidden.
    source = (PACKAGE / name).read_text()
    uses = [u for u in private_uses(source) if not u.startswith("relative import from _")]
    assert uses == []


def test_the_command_executor_has_several_modules() -> None:
    assert "command_executor/__init__.py" in COMMAND_EXECUTOR_FILES
    assert len(COMMAND_EXECUTOR_FILES) >= 5


def test_the_public_names_check_can_fail() -> None:
    assert private_uses("from trio_mesos._driver import ExecutorDriver") != []
    assert private_uses("from trio_mesos.testing._fake_agent import FakeAgent") != []
    assert private_uses("from . import _config") != []
    assert private_uses("import trio_mesos._http") != []
    assert private_uses("from trio_mesos import _session") != []
    assert private_uses("driver._ledger") != []
    assert private_uses("self._runs; from trio_mesos.testing import FakeAgent") == []
