"""The SUBSCRIBED event a Mesos 1.11 agent sends, with the infos it carries (pure).

The shape follows the real agent's captures (``tests/data/vectors``): the
``AgentInfo`` with the agent's default resources and its v0-only field 7.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass

from ..v1 import executor_pb2, mesos_pb2

__all__ = ["Identity", "subscribed_event"]


@dataclass(frozen=True)
class Identity:
    """Who the agent, its framework and its executor are."""

    framework_id: str
    executor_id: str
    agent_id: str
    hostname: str
    checkpoint: bool
    container_id: str
    executor_info: mesos_pb2.ExecutorInfo | None = None
    framework_info: mesos_pb2.FrameworkInfo | None = None
    port: int | None = None
    argv: Sequence[str] | None = None


def subscribed_event(who: Identity) -> executor_pb2.Event:
    """SUBSCRIBED for the executor of ``who``."""
    event = executor_pb2.Event(type=executor_pb2.Event.SUBSCRIBED)
    subscribed = event.subscribed
    subscribed.executor_info.CopyFrom(executor_info(who))
    subscribed.framework_info.CopyFrom(framework_info(who))
    agent_info = subscribed.agent_info
    agent_info.hostname = who.hostname
    if who.port is not None:
        agent_info.port = who.port
    for name, value in (("cpus", 8.0), ("mem", 8192.0), ("disk", 8192.0)):
        resource = agent_info.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    ports = agent_info.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=31999)
    agent_info.id.value = who.agent_id
    # A 1.11 agent also sends field 7 (the v0 SlaveInfo.checkpoint, varint 1),
    # unknown to the v1 schema: protobuf decoders must skip it. JSON omits it.
    agent_info.MergeFromString(b"\x38\x01")
    subscribed.container_id.value = who.container_id
    return event


def executor_info(who: Identity) -> mesos_pb2.ExecutorInfo:
    """The given ``ExecutorInfo``, or a custom executor with the agent's ids."""
    if who.executor_info is not None:
        info = mesos_pb2.ExecutorInfo()
        info.CopyFrom(who.executor_info)
        return info
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM)
    info.executor_id.value = who.executor_id
    info.framework_id.value = who.framework_id
    argv = who.argv or ("fake-executor",)
    info.command.shell = False
    info.command.value = argv[0]
    info.command.arguments.extend(argv)
    for name, value in (("cpus", 0.1), ("mem", 32.0)):
        resource = info.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    info.name = f"FakeAgent executor {who.executor_id}"
    info.source = who.executor_id
    return info


def framework_info(who: Identity) -> mesos_pb2.FrameworkInfo:
    """The given ``FrameworkInfo`` (its ``id`` filled in), or one built from ``who``."""
    if who.framework_info is not None:
        info = mesos_pb2.FrameworkInfo()
        info.CopyFrom(who.framework_info)
        if not info.HasField("id"):
            info.id.value = who.framework_id
        return info
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "root"
    info = mesos_pb2.FrameworkInfo(user=user, name="fake-framework")
    info.id.value = who.framework_id
    info.checkpoint = who.checkpoint
    info.hostname = who.hostname
    return info
