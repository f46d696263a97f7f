"""The h11 floor: the CPU h11 alone spends per UPDATE call (no I/O, no trio).

``python h11_floor.py N``: N times, on one reused client ``h11.Connection``,
h11 writes one protobuf UPDATE request (head built per call, as a client
must: Host, Content-Type, Accept, Content-Length; the body encoded once
beforehand, the same bytes an executor sends) and parses its
``202 Accepted`` (the bench agent's exact bytes). Prints
``{"calls": N, "cpu": seconds}`` (``time.process_time()``, this process's
own user + system time).
"""

import json
import sys
import time

import h11

from h11_client import body

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


def main(n: int) -> None:
    data = body()
    headers = [
        ("Host", "127.0.0.1:5051"),
        ("Content-Type", "application/x-protobuf"),
        ("Accept", "application/x-protobuf"),
    ]
    conn = h11.Connection(h11.CLIENT)
    start = time.process_time()
    for _ in range(n):
        conn.send(
            h11.Request(
                method="POST",
                target="/api/v1/executor",
                headers=[*headers, ("Content-Length", str(len(data)))],
            )
        )
        conn.send(h11.Data(data=data))
        conn.send(h11.EndOfMessage())
        conn.receive_data(ANSWER)
        response = conn.next_event()
        assert isinstance(response, h11.Response) and response.status_code == 202
        assert isinstance(conn.next_event(), h11.EndOfMessage)
        conn.start_next_cycle()
    cpu = time.process_time() - start
    print(json.dumps({"calls": n, "cpu": cpu}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
