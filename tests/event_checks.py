"""One check shared by the event-parsing tests: a parsed event matches its wire record."""

from __future__ import annotations

from trio_mesos._messages import (
    Acknowledged,
    AgentEvent,
    ContentType,
    Error,
    Heartbeat,
    Kill,
    Launch,
    LaunchGroup,
    Message,
    Shutdown,
    Subscribed,
    UnknownEvent,
    decode_message,
)
from trio_mesos.v1 import executor_pb2

Event = executor_pb2.Event

#: The typed event ``parse_event`` must give for each wire ``Event.type``.
CLASS_BY_TYPE: dict[int, type] = {
    Event.SUBSCRIBED: Subscribed,
    Event.LAUNCH: Launch,
    Event.LAUNCH_GROUP: LaunchGroup,
    Event.KILL: Kill,
    Event.ACKNOWLEDGED: Acknowledged,
    Event.MESSAGE: Message,
    Event.ERROR: Error,
    Event.SHUTDOWN: Shutdown,
    Event.HEARTBEAT: Heartbeat,
}


def check_parsed_event(parsed: AgentEvent, record: bytes, content_type: ContentType) -> None:
    """Assert that ``parsed`` (what ``parse_event(record)`` returned) is the event the
    record carries: the class its ``type`` names (UnknownEvent for any other) and its payload."""
    event = decode_message(record, content_type, Event)
    expected = CLASS_BY_TYPE.get(event.type, UnknownEvent)
    assert type(parsed) is expected, (type(parsed).__name__, event)
    if isinstance(parsed, UnknownEvent):
        assert parsed.raw == event
    elif isinstance(parsed, Subscribed):
        assert parsed.executor_info == event.subscribed.executor_info
        assert parsed.agent_info == event.subscribed.agent_info
    elif isinstance(parsed, Launch):
        assert parsed.task == event.launch.task
    elif isinstance(parsed, LaunchGroup):
        assert parsed.task_group == event.launch_group.task_group
    elif isinstance(parsed, Kill):
        assert parsed.task_id == event.kill.task_id
    elif isinstance(parsed, Acknowledged):
        assert (parsed.task_id, parsed.uuid) == (
            event.acknowledged.task_id.value,
            event.acknowledged.uuid,
        )
    elif isinstance(parsed, Message):
        assert parsed.data == event.message.data
    elif isinstance(parsed, Error):
        assert parsed.message == event.error.message
