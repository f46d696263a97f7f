"""trio_mesos's messages beside another package's copy of the Mesos protos.

The decision (docs/installation.rst, "Other copies of the Mesos protos"): the
generated modules build their descriptors in a pool of trio_mesos's own
(``trio_mesos._protobuf_compat.POOL``), never in protobuf's process-wide default pool,
where a second registration of ``mesos/v1/mesos.proto`` or of the same message
names with other contents makes the later import fail. Each case runs in a
fresh interpreter, since the default pool lives as long as the process.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import subprocess
import sys
import textwrap

import pytest
from google.protobuf import descriptor_pool

from trio_mesos._protobuf_compat import POOL
from trio_mesos.v1 import executor_pb2, mesos_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The "other package": its own mesos.v1.AgentID and TaskStatus, with other field
# types than trio_mesos's (value is an int64 here, a string there), registered in
# protobuf's default pool under the given file name, as any generated _pb2 does.
OTHER_PACKAGE = """
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

def register_other_copy(file_name):
    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package="mesos.v1")
    for name in ("AgentID", "TaskStatus"):
        message = fdp.message_type.add(name=name)
        message.field.add(name="value", number=1, type=3, label=1)  # optional int64
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mesos.v1.AgentID"))
"""

USE_BOTH = """
import trio_mesos
from google.protobuf import descriptor_pool, json_format
from trio_mesos.v1 import executor_pb2, mesos_pb2

theirs = OtherAgentID(value=7)
assert OtherAgentID.FromString(theirs.SerializeToString()).value == 7
ours = mesos_pb2.AgentID(value="agent-1")
assert mesos_pb2.AgentID.FromString(ours.SerializeToString()).value == "agent-1"
call = executor_pb2.Call(type=executor_pb2.Call.UPDATE)
call.update.status.task_id.value = "t"
call.update.status.state = mesos_pb2.TASK_RUNNING
document = json_format.MessageToDict(call, preserving_proto_field_name=True)
assert document["update"]["status"]["task_id"] == {"value": "t"}
default = descriptor_pool.Default().FindMessageTypeByName("mesos.v1.AgentID")
assert default.fields_by_name["value"].type == default.fields_by_name["value"].TYPE_INT64
print("both work")
"""


@pytest.mark.parametrize("implementation", ["default", "python"])
@pytest.mark.parametrize("file_name", ["mesos/v1/mesos.proto", "vendored/mesos.proto"])
@pytest.mark.parametrize("other_first", [True, False], ids=["other-first", "trio_mesos-first"])
def test_another_copy_of_the_mesos_protos_in_the_default_pool(
    file_name: str, other_first: bool, implementation: str
) -> None:
    register = f"OtherAgentID = register_other_copy({file_name!r})\n"
    imports = "import trio_mesos.v1\n"
    steps = register + imports if other_first else imports + register
    code = textwrap.dedent(OTHER_PACKAGE) + steps + textwrap.dedent(USE_BOTH)
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    if implementation == "python":  # protobuf's pure-Python runtime (e.g. on PyPy)
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
        code += "from google.protobuf.internal import api_implementation\n"
        code += "assert api_implementation.Type() == 'python'\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "both work\n"), result.stderr


def test_the_generated_modules_use_their_own_pool() -> None:
    pool = POOL
    assert pool is not descriptor_pool.Default()
    assert mesos_pb2.DESCRIPTOR.pool is pool
    assert executor_pb2.DESCRIPTOR.pool is pool
    assert pool.FindMessageTypeByName("mesos.v1.TaskStatus") is mesos_pb2.TaskStatus.DESCRIPTOR
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindFileByName("mesos/v1/executor/executor.proto")


def test_messages_pickle_by_their_real_module() -> None:
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING)
    status.task_id.value = "t-1"
    assert mesos_pb2.TaskStatus.__module__ == "trio_mesos._proto.mesos_pb2"
    assert pickle.loads(pickle.dumps(status)) == status
