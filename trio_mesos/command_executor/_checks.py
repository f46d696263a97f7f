"""Checks and health checks: the probes (COMMAND, HTTP, TCP) and their schedule.

As ``CheckerProcess`` of ``src/checks/checker_process.cpp`` (Mesos 1.11) does
for a task of the command executor ("plain" runtime):

* The first probe ``delay_seconds`` after the checker starts; the next one
  ``interval_seconds`` after each result (``scheduleNext`` after
  ``processCheckResult``). ``timeout_seconds`` of 0 means no timeout.
* COMMAND (``commandCheck``): the ``CommandInfo`` (shell or argv as for
  tasks) with the *executor's* environment plus the check command's own
  ``environment``; stdin ``/dev/null``, stdout and stderr to the executor's
  stderr. The result is the exit code; a timeout (the process tree is
  SIGKILLed: "Command timed out after ...") or a death by signal is an error.
* HTTP (``httpCheck``): Mesos runs ``curl -s -S -L -k -w %{http_code}`` on
  ``<scheme>://127.0.0.1:<port><path>`` (``[::1]`` for IPv6; scheme ``http``
  unless the health check names one); here a GET made in-process that follows
  redirects and does not verify certificates, as those curl options do. The
  result is the final status code; a connection failure or timeout is an error.
* TCP (``tcpCheck``, ``mesos-tcp-connect``): the result is whether a TCP
  connection to ``127.0.0.1:<port>`` (``::1``) could be made.

A health check is a check (``toCheckInfo`` in ``src/checks/health_checker.cpp``)
whose results :class:`~._health.HealthCounter` judges.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin, urlsplit

import h11
import trio

from trio_mesos.v1 import mesos_pb2

from ._processes import ProcessKeeper, describe_exit, signal_group

if TYPE_CHECKING:
    import ssl

__all__ = ["Probe", "run_checks", "run_probe"]

log = logging.getLogger("trio_mesos.command_executor")

CheckInfo = mesos_pb2.CheckInfo
HealthCheck = mesos_pb2.HealthCheck

#: ``curl -L`` follows at most 50 redirects; so do we.
_MAX_REDIRECTS: Final = 50
_MAX_HEAD: Final = 64 * 1024

ProbeResult = mesos_pb2.CheckStatusInfo | str


@dataclasses.dataclass(frozen=True)
class Probe:
    """One check of a task: what to probe and when (the fields of ``CheckInfo``)."""

    check_type: int
    delay: float
    interval: float
    timeout: float
    command: mesos_pb2.CommandInfo | None = None
    port: int = 0
    path: str = ""
    scheme: str = "http"
    ipv6: bool = False

    @property
    def name(self) -> str:
        return CheckInfo.Type.Name(self.check_type)  # type: ignore[arg-type]

    @classmethod
    def from_check(cls, check: mesos_pb2.CheckInfo) -> Probe:
        """``checkInfoToCheck`` (``src/checks/checker_process.cpp``)."""
        return cls(
            check_type=check.type,
            delay=check.delay_seconds,
            interval=check.interval_seconds,
            timeout=check.timeout_seconds if check.timeout_seconds > 0 else math.inf,
            command=check.command.command if check.type == CheckInfo.COMMAND else None,
            port=check.http.port if check.type == CheckInfo.HTTP else check.tcp.port,
            path=check.http.path,
        )

    @classmethod
    def from_health_check(cls, health: mesos_pb2.HealthCheck) -> Probe:
        """``toCheckInfo`` plus the scheme and protocol (``src/checks/health_checker.cpp``)."""
        types = {
            HealthCheck.COMMAND: CheckInfo.COMMAND,
            HealthCheck.HTTP: CheckInfo.HTTP,
            HealthCheck.TCP: CheckInfo.TCP,
        }
        check_type = types.get(health.type, CheckInfo.UNKNOWN)
        ipv6 = mesos_pb2.NetworkInfo.IPv6
        return cls(
            check_type=check_type,
            delay=health.delay_seconds,
            interval=health.interval_seconds,
            timeout=health.timeout_seconds if health.timeout_seconds > 0 else math.inf,
            command=health.command if check_type == CheckInfo.COMMAND else None,
            port=health.http.port if check_type == CheckInfo.HTTP else health.tcp.port,
            path=health.http.path,
            scheme=health.http.scheme or "http",
            ipv6=(health.http.protocol if check_type == CheckInfo.HTTP else health.tcp.protocol)
            == ipv6,
        )

    def validate(self) -> str | None:
        """What makes this check unusable, or None (a subset of Mesos's validation)."""
        if self.check_type == CheckInfo.COMMAND:
            if self.command is None or not self.command.HasField("value"):
                return "the command check has no command value"
        elif self.check_type in (CheckInfo.HTTP, CheckInfo.TCP):
            if not 0 < self.port < 65536:
                return f"the {self.name} check has no valid port"
        else:
            return "the check has no known type"
        if min(self.delay, self.interval) < 0 or self.timeout < 0:
            return "the check has a negative duration"
        return None


async def run_checks(
    probe: Probe,
    environ: Mapping[str, str],
    keeper: ProcessKeeper,
    on_result: Callable[[ProbeResult], Awaitable[None]],
) -> None:
    """Probe forever on the schedule of ``CheckerProcess``; cancel to stop (pause)."""
    await trio.sleep(probe.delay)
    while True:
        result = await run_probe(probe, environ, keeper)
        if isinstance(result, str):
            log.warning("%s check failed: %s", probe.name, result)
        await on_result(result)
        await trio.sleep(probe.interval)


async def run_probe(probe: Probe, environ: Mapping[str, str], keeper: ProcessKeeper) -> ProbeResult:
    """One probe: a ``CheckStatusInfo`` with the result, or the error's text."""
    if probe.check_type == CheckInfo.COMMAND:
        assert probe.command is not None
        return await _command_probe(probe.command, probe.timeout, environ, keeper)
    host = "::1" if probe.ipv6 else "127.0.0.1"
    if probe.check_type == CheckInfo.HTTP:
        result = mesos_pb2.CheckStatusInfo(type=CheckInfo.HTTP)
        with trio.move_on_after(probe.timeout):
            try:
                code = await _http_get(probe.scheme, host, probe.port, probe.path)
                result.http.status_code = code
            except (OSError, h11.ProtocolError, ValueError, trio.BrokenResourceError) as exc:
                return f"HTTP GET failed: {exc}"
            return result
        return f"HTTP GET timed out after {probe.timeout:g} s"
    result = mesos_pb2.CheckStatusInfo(type=CheckInfo.TCP)
    with trio.move_on_after(probe.timeout):
        try:
            stream = await trio.open_tcp_stream(host, probe.port)
        except OSError:
            result.tcp.succeeded = False
        else:
            await stream.aclose()
            result.tcp.succeeded = True
        return result
    return f"TCP connection timed out after {probe.timeout:g} s"


async def _command_probe(
    command: mesos_pb2.CommandInfo,
    timeout: float,  # noqa: ASYNC109 - the check's own timeout, as Mesos counts it
    environ: Mapping[str, str],
    keeper: ProcessKeeper,
) -> ProbeResult:
    env = dict(environ)
    for variable in command.environment.variables:
        env[variable.name] = variable.value
    if command.shell:
        argv, executable = ["/bin/sh", "-c", command.value], "/bin/sh"
    else:
        argv, executable = list(command.arguments) or [command.value], command.value
    try:
        process = await keeper.spawn(
            argv,
            executable=executable,
            env=env,
            cwd=None,
            stdout=2,  # the executor's stderr, as Mesos's Subprocess::FD(STDERR_FILENO)
            stderr=2,
        )
    except OSError as exc:
        return f"Failed to create subprocess: {exc}"
    try:
        with trio.move_on_after(timeout) as scope:
            returncode = await process.wait()
        if scope.cancelled_caught:
            return f"Command timed out after {timeout:g} s"
        if returncode < 0:
            return describe_exit(returncode)
        result = mesos_pb2.CheckStatusInfo(type=CheckInfo.COMMAND)
        result.command.exit_code = returncode
        return result
    finally:
        # the check's own session: kill its whole tree (os::killtree in Mesos)
        signal_group(process.pid, signal.SIGKILL)
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            await process.wait()
        keeper.forget(process)


async def _http_get(scheme: str, host: str, port: int, path: str) -> int:
    """GET, following redirects; the final status code."""
    url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}{path}"
    for _ in range(_MAX_REDIRECTS + 1):
        status, location = await _http_get_once(url)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        return status
    raise ValueError(f"more than {_MAX_REDIRECTS} redirects")


async def _http_get_once(url: str) -> tuple[int, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    stream: trio.abc.Stream = await trio.open_tcp_stream(parts.hostname, port)
    try:
        if parts.scheme == "https":
            stream = trio.SSLStream(stream, _insecure_context(), server_hostname=parts.hostname)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        request = h11.Request(
            method="GET",
            target=target,
            headers=[
                ("Host", parts.netloc),
                ("User-Agent", "trio-mesos-executor"),
                ("Accept", "*/*"),
                ("Connection", "close"),
            ],
        )
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_MAX_HEAD)
                conn.receive_data(bytes(data))
                if not data and conn.their_state is h11.SEND_RESPONSE:
                    raise ValueError("the server closed the connection without a response")
                continue
            if isinstance(event, h11.Response):
                location = None
                for name, value in event.headers:
                    if name == b"location":
                        location = value.decode("latin-1")
                return event.status_code, location
            if isinstance(event, h11.ConnectionClosed):
                raise ValueError("the server closed the connection without a response")
    finally:
        await trio.aclose_forcefully(stream)


def _insecure_context() -> ssl.SSLContext:
    import ssl  # lazy: only https checks need it

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # curl -k, as Mesos runs it
    return context
