"""The raw ceiling: a bare h11 + trio client doing sequential keep-alive POST -> 202.

``python h11_client.py PORT N``: POSTs N protobuf UPDATE calls (a fresh uuid
each, like a real executor) one after the other on one connection, each after
the previous 202, and prints ``{"calls": N, "elapsed": seconds}``.
"""

import json
import sys
import time
import uuid

import h11
import trio

from trio_mesos._proto import executor_pb2, mesos_pb2


def body() -> bytes:
    call = executor_pb2.Call(type=executor_pb2.Call.UPDATE)
    call.framework_id.value = "bench-framework"
    call.executor_id.value = "bench-executor"
    st = call.update.status
    st.task_id.value = "raw"
    st.state = mesos_pb2.TASK_RUNNING
    st.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
    st.uuid = uuid.uuid4().bytes
    st.timestamp = time.time()
    return call.SerializeToString()


async def main(port: int, n: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", f"127.0.0.1:{port}"),
        ("Content-Type", "application/x-protobuf"),
        ("Accept", "application/x-protobuf"),
    ]
    start = time.monotonic()
    for _ in range(n):
        data = body()
        await stream.send_all(
            conn.send(
                h11.Request(
                    method="POST",
                    target="/api/v1/executor",
                    headers=[*headers, ("Content-Length", str(len(data)))],
                )
            )
            + conn.send(h11.Data(data=data))
            + conn.send(h11.EndOfMessage())
        )
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                assert event.status_code == 202, event
            if isinstance(event, h11.EndOfMessage):
                break
        conn.start_next_cycle()
    elapsed = time.monotonic() - start
    await stream.aclose()
    print(json.dumps({"calls": n, "elapsed": elapsed}))


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
