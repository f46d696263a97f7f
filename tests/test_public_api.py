"""The public surface: exports, module names, no side effects at import."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap

import pytest

import trio_mesos
from trio_mesos import (
    AgentUnavailableError,
    ConfigError,
    DriverClosedError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    Status,
    TrioMesosError,
    TrioMesosInternalError,
)


def test_all_names_exist_and_claim_the_package() -> None:
    for name in trio_mesos.__all__:
        obj = getattr(trio_mesos, name)
        module = getattr(obj, "__module__", None)
        if module is not None and isinstance(obj, type):
            assert module == "trio_mesos", name


def test_v1_is_the_public_proto_path() -> None:
    from trio_mesos.v1 import executor_pb2, mesos_pb2

    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING)
    status.task_id.value = "t"
    assert mesos_pb2.TaskStatus.FromString(status.SerializeToString()) == status
    assert executor_pb2.Call.DESCRIPTOR.full_name == "mesos.v1.executor.Call"


def test_status_values_are_the_legacy_numbers() -> None:
    assert [(s.name, s.value) for s in Status] == [
        ("DRIVER_NOT_STARTED", 1),
        ("DRIVER_RUNNING", 2),
        ("DRIVER_ABORTED", 3),
        ("DRIVER_STOPPED", 4),
    ]


EXCEPTIONS = [
    ConfigError([("MESOS_EXECUTOR_ID", "missing"), ("MESOS_CHECKPOINT", "bad")]),
    LocalProtocolError("TASK_STAGING is not allowed"),
    RemoteProtocolError("bad length prefix", offset=12),
    DriverClosedError("the driver has stopped"),
    AgentUnavailableError("gone", status_code=503),
    TrioMesosInternalError("bug"),
]


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_exceptions_survive_copy_and_pickle(exc: Exception) -> None:
    for clone in (copy.copy(exc), pickle.loads(pickle.dumps(exc))):
        assert type(clone) is type(exc)
        assert str(clone) == str(exc)
        assert clone.args == exc.args


def test_exception_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    for cls in (ConfigError, ProtocolError, DriverClosedError, AgentUnavailableError):
        assert issubclass(cls, TrioMesosError)
    assert not issubclass(TrioMesosInternalError, TrioMesosError)
    with pytest.raises(TypeError):
        ProtocolError("abstract")


def test_errors_say_what_and_where() -> None:
    assert str(RemoteProtocolError("bad prefix", offset=7)) == "bad prefix (at byte 7)"
    text = str(EXCEPTIONS[0])
    assert "MESOS_EXECUTOR_ID: missing" in text and "MESOS_CHECKPOINT: bad" in text
    assert EXCEPTIONS[0].variables == ("MESOS_EXECUTOR_ID", "MESOS_CHECKPOINT")  # type: ignore[attr-defined]


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_import_has_no_side_effects() -> None:
    # pymesos defect 7: its import replaced the SIGINT handler and added a
    # stderr log handler. Ours must do neither.
    out = run_python(
        """
        import logging, signal
        before_sig = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        before_handlers = list(logging.getLogger().handlers)
        import trio_mesos, trio_mesos.v1
        after_sig = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        assert before_sig == after_sig, (before_sig, after_sig)
        assert logging.getLogger().handlers == before_handlers
        for name, logger in logging.Logger.manager.loggerDict.items():
            if name.startswith("trio_mesos") and isinstance(logger, logging.Logger):
                assert logger.handlers == [], name
        print("ok")
        """
    )
    assert out == "ok"


def test_importable_off_the_main_thread() -> None:
    out = run_python(
        """
        import threading
        errors = []
        def work():
            try:
                import trio_mesos, trio_mesos.v1
            except BaseException as exc:
                errors.append(exc)
        t = threading.Thread(target=work); t.start(); t.join()
        print("ok" if not errors else repr(errors))
        """
    )
    assert out == "ok"
