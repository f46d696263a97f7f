"""The driver over real sockets: TCP and the Unix socket (real time, wide bounds)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import ssl

import pytest
import trio
import trustme

import trio_mesos
from trio_mesos import ConfigError, ExecutorConfig
from trio_mesos._transport import host_header, unix_socket_path
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2

from .helpers import Recorder, make_task, status


async def test_the_driver_over_tcp() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        port = await agent.listen_tcp()
        config = agent.executor_config()
        assert (config.agent_host, config.agent_port) == ("127.0.0.1", port)
        with trio.fail_after(30):
            async with trio_mesos.open_executor_driver(executor, config=config) as driver:
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
                uuid = await driver.update(status("t1", mesos_pb2.TASK_FINISHED))
                await driver.wait_acknowledged(uuid)
    paths = {call.path for call in agent.calls}
    assert paths == {config.agent_path}


async def test_agent_connections_have_tcp_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from trio_mesos import _transport

    opened: list[trio.SocketStream] = []
    real_open = trio.open_tcp_stream

    async def recording_open(host: str, port: int) -> trio.SocketStream:
        stream = await real_open(host, port)
        opened.append(stream)
        return stream

    monkeypatch.setattr(_transport.trio, "open_tcp_stream", recording_open)
    async with FakeAgent() as agent:
        await agent.listen_tcp()
        with trio.fail_after(30):
            async with trio_mesos.open_executor_driver(Recorder(), config=agent.executor_config()):
                assert opened  # the SUBSCRIBE connection at least, still open here
                for stream in opened:
                    assert stream.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                    if hasattr(socket, "TCP_KEEPIDLE"):
                        idle = stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
                        assert idle == _transport.KEEPALIVE_IDLE


async def test_the_driver_over_the_unix_socket(tmp_path: pathlib.Path) -> None:
    executor = Recorder()
    socket_path = str(tmp_path / "agent.sock")
    async with FakeAgent() as agent:
        await agent.listen_unix(socket_path)
        config = agent.executor_config()
        assert config.domain_socket == socket_path
        assert config.agent_path.startswith("/slave(")  # the only form served on the socket
        with trio.fail_after(30):
            async with trio_mesos.open_executor_driver(executor, config=config) as driver:
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
                await driver.update(status("t1", mesos_pb2.TASK_RUNNING))
    assert {call.status_code for call in agent.calls} <= {200, 202}


async def test_a_long_unix_socket_path_is_used_relative_to_the_cwd(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    socket_path = str(deep / "agent.sock")
    assert len(os.fsencode(socket_path)) > 107
    monkeypatch.chdir(deep)
    assert unix_socket_path(socket_path) == "./agent.sock"
    executor = Recorder()
    async with FakeAgent() as agent:
        await agent.listen_unix("./agent.sock")
        config = dataclasses.replace(agent.executor_config(), domain_socket=socket_path)
        with trio.fail_after(30):
            async with trio_mesos.open_executor_driver(executor, config=config):
                await executor.wait_for("registered")


def test_a_socket_path_too_long_even_relative_is_a_config_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="MESOS_DOMAIN_SOCKET"):
        unix_socket_path("/" + "x" * 200 + "/agent.sock")


def test_host_header() -> None:
    base = ExecutorConfig(framework_id="f", executor_id="e")
    assert host_header(base) == "localhost"
    assert host_header(dataclasses.replace(base, agent_host="10.0.0.1", agent_port=5051)) == (
        "10.0.0.1:5051"
    )
    v6 = dataclasses.replace(base, agent_host="[::1]", agent_port=5051)
    assert host_header(v6) == "[::1]:5051"
    unix = dataclasses.replace(base, domain_socket="/run/agent.sock", agent_host="h", agent_port=1)
    assert host_header(unix) == "localhost"


async def test_tls_is_used_when_libprocess_ssl_enabled_is_true(tmp_path: pathlib.Path) -> None:
    # TLS is supported (issue 8; tests/io/test_tls.py has the rest): with
    # LIBPROCESS_SSL_ENABLED the TCP transport speaks TLS, here with
    # verification explicitly off, so an untrusted certificate is accepted.
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    executor = Recorder()
    async with FakeAgent() as agent:
        port = await agent.listen_tcp(ssl_context=server)
        config = ExecutorConfig.from_environ(
            {
                "MESOS_FRAMEWORK_ID": agent.framework_id,
                "MESOS_EXECUTOR_ID": agent.executor_id,
                "MESOS_AGENT_ENDPOINT": f"127.0.0.1:{port}",
                "LIBPROCESS_SSL_ENABLED": "true",
                "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "false",
            }
        )
        assert config.agent_url().startswith("https://")
        with trio.fail_after(30):
            async with trio_mesos.open_executor_driver(executor, config=config):
                await executor.wait_for("registered")
    assert {call.transport for call in agent.calls} == {"tls"}
