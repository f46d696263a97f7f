"""Opening streams to the agent: TCP, or the Unix socket of MESOS_DOMAIN_SOCKET."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from ._config import ExecutorConfig
from ._errors import ConfigError

__all__ = ["OpenStream", "default_open_stream", "host_header"]

#: An async callable returning a fresh stream to the agent (the driver's seam
#: for tests: ``FakeAgent.connect`` fits it).
OpenStream = Callable[[], Awaitable[trio.abc.Stream]]

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_SUN_PATH_MAX: Final = 107


def unix_socket_path(path: str) -> str:
    """A path to the socket that fits in ``sun_path``.

    As the C++ library does, a path that is too long is retried relative to the
    current working directory; if that is still too long, ConfigError.
    """
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    relative = os.path.relpath(path)
    if not relative.startswith((".", "/")):
        relative = "./" + relative
    if len(os.fsencode(relative)) <= _SUN_PATH_MAX:
        return relative
    raise ConfigError(
        [
            (
                "MESOS_DOMAIN_SOCKET",
                f"socket path is {len(os.fsencode(path))} bytes; a Unix socket path must be "
                f"at most {_SUN_PATH_MAX} bytes, also relative to the working directory",
            )
        ]
    )


def default_open_stream(config: ExecutorConfig) -> OpenStream:
    """The transport the configuration asks for.

    Raises:
        ConfigError: TLS is asked for (not supported yet), or no address is known.
    """
    if config.domain_socket is not None:
        socket_path = config.domain_socket

        async def open_unix() -> trio.abc.Stream:
            return await trio.open_unix_socket(unix_socket_path(socket_path))

        return open_unix
    if config.use_tls:
        raise ConfigError(
            [("LIBPROCESS_SSL_ENABLED", "TLS to the agent is not supported by this version")]
        )
    host, port = config.agent_host, config.agent_port
    if host is None or port is None:
        raise ConfigError([("MESOS_AGENT_ENDPOINT", "no agent address is configured")])
    tcp_host = host[1:-1] if host.startswith("[") else host

    async def open_tcp() -> trio.abc.Stream:
        return await trio.open_tcp_stream(tcp_host, port)

    return open_tcp


def host_header(config: ExecutorConfig) -> str:
    """The ``Host`` header for requests to the agent."""
    if config.domain_socket is not None or config.agent_host is None:
        return "localhost"
    host = config.agent_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if config.agent_port is None else f"{host}:{config.agent_port}"
