"""``python -m trio_mesos.testing`` end to end, with a real executor process.

The executor is written here with the standard library only (http.client +
json), since the real driver is not this test's subject. When the reference
executor ../shared/realmesos/peers/stdlib_executor.py exists, it is run too.
Real subprocesses and real time; every run has its own ``--timeout`` and the
subprocess a wider one.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "realmesos" / "peers" / "stdlib_executor.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

#: A minimal executor: JSON over http.client, one task at a time per thread,
#: TASK_RUNNING then TASK_FINISHED/TASK_FAILED, KILL -> TASK_KILLED, echoes
#: messages, exits on SHUTDOWN.
EXECUTOR = textwrap.dedent(
    """
    import base64, http.client, json, os, subprocess, sys, threading, uuid

    HOST, PORT = os.environ["MESOS_AGENT_ENDPOINT"].split(":")
    PATH = "/" + os.environ["MESOS_SLAVE_PID"].split("@")[0] + "/api/v1/executor"
    IDS = {"framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
           "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}}
    HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
    procs = {}

    def post(kind, **fields):
        conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
        conn.request("POST", PATH, json.dumps(dict(IDS, type=kind, **fields)), HEADERS)
        status = conn.getresponse().status
        conn.close()
        assert status == 202, status

    def update(task_id, state):
        post("UPDATE", update={"status": {
            "task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}})

    def run(task):
        task_id = task["task_id"]["value"]
        proc = procs[task_id] = subprocess.Popen(["/bin/sh", "-c", task["command"]["value"]])
        update(task_id, "TASK_RUNNING")
        code = proc.wait()
        update(task_id, "TASK_KILLED" if code < 0 else
               "TASK_FINISHED" if code == 0 else "TASK_FAILED")

    conn = http.client.HTTPConnection(HOST, int(PORT))
    conn.request("POST", PATH, json.dumps(dict(IDS, type="SUBSCRIBE", subscribe={})), HEADERS)
    stream = conn.getresponse()
    assert stream.status == 200
    while True:
        event = json.loads(stream.read(int(stream.readline())))
        kind = event["type"]
        if kind == "LAUNCH":
            threading.Thread(target=run, args=(event["launch"]["task"],)).start()
        elif kind == "LAUNCH_GROUP":
            for task in event["launch_group"]["task_group"]["tasks"]:
                threading.Thread(target=run, args=(task,)).start()
        elif kind == "KILL":
            procs[event["kill"]["task_id"]["value"]].terminate()
        elif kind == "MESSAGE":
            post("MESSAGE", message={"data": event["message"]["data"]})
        elif kind == "SHUTDOWN":
            print("shutting down", file=sys.stderr, flush=True)
            os._exit(0)
    """
)


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_mesos.testing", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def executor(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "executor.py"
    path.write_text(EXECUTOR)
    return str(path)


def test_tasks_run_to_completion(executor: str) -> None:
    result = run_cli(
        "--timeout",
        "20",
        "--task",
        "ok=echo hi",
        "--task",
        "bad=exit 3",
        "--task",
        "slow=sleep 30",
        "--kill",
        "slow",
        "--message",
        "ping",
        "--",
        sys.executable,
        executor,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[0].startswith("# fake agent on 127.0.0.1:")
    assert "-> SUBSCRIBE (0 unacknowledged tasks, 0 updates) 200" in lines
    assert "<- SUBSCRIBED" in lines
    for expected in (
        "<- LAUNCH ok",
        "<- LAUNCH bad",
        "<- LAUNCH slow",
        '<- MESSAGE "ping"',
        '-> MESSAGE "ping" 202',
        "-> UPDATE ok TASK_RUNNING 202",
        "-> UPDATE ok TASK_FINISHED 202",
        "-> UPDATE bad TASK_FAILED 202",
        "<- KILL slow",
        "-> UPDATE slow TASK_KILLED 202",
        "<- SHUTDOWN",
        "# executor exited with status 0",
        "# task ok: TASK_FINISHED",
        "# task bad: TASK_FAILED",
        "# task slow: TASK_KILLED",
    ):
        assert expected in lines, expected
    acks = [line for line in lines if line.startswith("<- ACKNOWLEDGED ")]
    assert len(acks) == 6
    # Order: subscription first, SHUTDOWN after the last terminal update.
    assert lines.index("<- SUBSCRIBED") < lines.index("<- LAUNCH ok")
    last_update = max(i for i, line in enumerate(lines) if line.startswith("-> UPDATE"))
    assert lines.index("<- SHUTDOWN") > last_update


def test_group_and_json_output(executor: str) -> None:
    result = run_cli(
        "--json",
        "--checkpoint",
        "--group",
        "--timeout",
        "20",
        "--task",
        "a=true",
        "--task",
        "b=false",
        "--",
        sys.executable,
        executor,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    launches = [r for r in records if r.get("type") == "LAUNCH_GROUP"]
    assert [r["task_ids"] for r in launches] == [["a", "b"]]
    updates = {(r["task_id"], r["state"]) for r in records if r.get("type") == "UPDATE"}
    assert {("a", "TASK_FINISHED"), ("b", "TASK_FAILED")} <= updates
    assert all(r["status"] == 202 for r in records if r.get("type") == "UPDATE")


def test_shutdown_after_and_unfinished_tasks(executor: str) -> None:
    result = run_cli(
        "--timeout",
        "20",
        "--shutdown-after",
        "0.5",
        "--task",
        "forever=sleep 30",
        "--",
        sys.executable,
        executor,
    )
    # The executor exits on SHUTDOWN without a terminal update: a failure.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "<- SHUTDOWN" in result.stdout
    assert "# no terminal update from the executor for: forever" in result.stdout
    assert "# executor stderr: shutting down" in result.stdout


def test_never_hangs(tmp_path: pathlib.Path) -> None:
    # An executor that never subscribes: the overall timeout ends the run.
    result = run_cli("--timeout", "1", "--task", "t=true", "--", "sleep", "30")
    assert result.returncode == 3
    assert "# timeout after 1.0s: executor killed" in result.stdout
    # An executor that dies at once.
    result = run_cli("--task", "t=true", "--", "sh", "-c", "echo boom >&2; exit 4")
    assert result.returncode == 1
    assert "# executor exited before subscribing" in result.stdout
    assert "# executor stderr: boom" in result.stdout


def test_usage_errors() -> None:
    assert run_cli("--task", "noequals", "--", "true").returncode == 2
    assert run_cli("--kill", "x", "--task", "t=true", "--", "true").returncode == 2
    assert run_cli("--timeout", "0", "--", "true").returncode == 2


@pytest.mark.skipif(not REFERENCE.is_file(), reason="reference executor not present")
def test_reference_executor() -> None:
    result = run_cli(
        "--timeout",
        "20",
        "--task",
        "a=echo a",
        "--task",
        "b=sleep 30",
        "--kill",
        "b",
        "--",
        "python3",
        str(REFERENCE),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# task a: TASK_FINISHED" in result.stdout
    assert "# task b: TASK_KILLED" in result.stdout


# -----------------------------------------------------------------------------
# The command line a newcomer meets
# -----------------------------------------------------------------------------

QUICKSTART = REPO / "docs" / "quickstart.rst"
README = REPO / "README.md"


def shown_commands() -> list[tuple[str, str, list[str]]]:
    """``(where, command, output shown)`` for every ``$ python`` command of the
    quickstart's console blocks and every trio_mesos.testing line of the README.

    (The quickstart's ``python -m pip install .`` is the one command not run:
    this suite already runs from an installed checkout.)
    """
    found = []
    lines = QUICKSTART.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith("$ python") and "pip install" not in text:
            output = []
            for after in lines[i + 1 :]:
                if not after.startswith("   ") or after.strip().startswith("$"):
                    break
                output.append(after.strip())
            found.append(("quickstart.rst", text[2:], output))
    for line in README.read_text(encoding="utf-8").splitlines():
        if "-m trio_mesos.testing " in line and line.strip().startswith(".venv/bin/python"):
            found.append(("README.md", line.strip(), []))
    return found


def checkout(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory that looks like the checkout after ``make test``: examples/ and a
    .venv whose python is the one running these tests (with trio_mesos installed)."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "examples").symlink_to(REPO / "examples")
    (root / ".venv").symlink_to(sys.prefix)
    assert (root / ".venv" / "bin" / "python").exists()
    return root


def test_the_newcomer_commands_are_found() -> None:
    where = [(place, command.split(" --")[0]) for place, command, _ in shown_commands()]
    assert ("quickstart.rst", "python examples/quickstart.py") in where
    assert ("quickstart.rst", "python -m trio_mesos.testing") in where
    assert ("README.md", ".venv/bin/python -m trio_mesos.testing") in where


@pytest.mark.parametrize(
    ("where", "command", "shown"),
    shown_commands(),
    ids=[f"{where}: {command.split(' --')[0]}" for where, command, _ in shown_commands()],
)
def test_the_newcomer_commands_work_verbatim(
    tmp_path: pathlib.Path, where: str, command: str, shown: list[str]
) -> None:
    # As typed in a shell with the virtual environment activated ("python" is
    # found in PATH), from the top of the checkout.
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(
        command,
        shell=True,
        cwd=checkout(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{where}: {command}\n{result.stdout}{result.stderr}"
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    if shown:
        # The page's output, abridged: its last line is what the run ends with.
        assert shown[-1].split() == lines[-1].split(), (shown, lines)
    if "trio_mesos.testing" in command:
        assert "# task nap: TASK_FINISHED" in lines


def test_the_program_and_its_files_are_the_callers(tmp_path: pathlib.Path, executor: str) -> None:
    # A relative program path and a relative script argument, from the caller's
    # directory; the executor itself starts in its sandbox.
    work = tmp_path / "work"
    work.mkdir()
    (work / "bin").mkdir()
    (work / "bin" / "py").symlink_to(sys.executable)
    (work / "executor.py").write_text(EXECUTOR)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_mesos.testing",
            "--task",
            "t=pwd",
            "--",
            "bin/py",
            "executor.py",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=work,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# task t: TASK_FINISHED" in result.stdout.splitlines()


def test_resolve_command() -> None:
    from trio_mesos.testing.__main__ import CommandNotFound, resolve_command

    here = str(REPO)
    resolved = resolve_command(
        ["sh", "examples/quickstart.py", "-c", "no/such/file"], path="/bin:/usr/bin", cwd=here
    )
    assert resolved[0] in ("/bin/sh", "/usr/bin/sh")
    assert resolved[1:] == [f"{here}/examples/quickstart.py", "-c", "no/such/file"]
    with pytest.raises(CommandNotFound, match=r"'sh': not found in PATH=/nowhere"):
        resolve_command(["sh"], path="/nowhere", cwd=here)
    with pytest.raises(CommandNotFound, match="no executable file"):
        resolve_command(["examples/quickstart.py"], path="/bin", cwd=here)  # not executable


def test_a_command_not_found_is_one_line(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "trio_mesos.testing", "--", "no-such-executor"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 127
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"python -m trio_mesos.testing: cannot run 'no-such-executor': not found in PATH={tmp_path}"
    ]


def test_ctrl_c_kills_the_executor_and_exits_130(tmp_path: pathlib.Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_mesos.testing", "--", "sleep", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[1].startswith("# executor pid "), lines
        pid = int(lines[1].split()[3].rstrip(","))
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert errors == ""
    assert rest.splitlines() == ["# interrupted: executor killed"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
