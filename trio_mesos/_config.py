"""The executor's configuration, read from the environment the Mesos agent provides.

Theory of operation
===================

The agent starts every executor with an explicit environment (executors do not
inherit the agent's since Mesos 1.0.0; ``executorEnvironment()`` in
``src/slave/slave.cpp``). The variables and the rules we apply, from
PROTOCOL.md §3.9, §4.2 and §8:

* ``MESOS_FRAMEWORK_ID`` and ``MESOS_EXECUTOR_ID`` fill every Call; both are
  required. ``MESOS_SLAVE_ID``, ``MESOS_DIRECTORY`` and ``MESOS_SANDBOX`` are
  informational (``MESOS_SANDBOX`` defaults to ``MESOS_DIRECTORY``).
* Agent address: ``MESOS_AGENT_ENDPOINT`` is ``ip:port``; ``MESOS_SLAVE_PID`` is
  ``slave(1)@ip:port``. The C++ library "posts to
  ``/<agent-process-id>/api/v1/executor``, e.g. ``/slave(1)/api/v1/executor``,
  built from ``MESOS_SLAVE_PID``"; over the unix domain socket
  (``MESOS_DOMAIN_SOCKET``) "**only** the ``/slave(N)/api/v1/executor`` form is
  allowed (anything else → 403)".
* ``MESOS_CHECKPOINT``: "exactly ``"1"`` means true" (the agent writes ``1`` or
  ``0``; pymesos' ``bool("0")`` is true, PEERS.md §2.1 defect 1).
* ``MESOS_RECOVERY_TIMEOUT`` and ``MESOS_SUBSCRIPTION_BACKOFF_MAX`` are
  "yes if checkpoint" required durations; ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``
  is a duration (default ``5secs``).
* ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` is a secret sent as
  ``Authorization: Bearer``; it never appears in a repr or an error message.
  (Erasing it from the process environment is the I/O shell's job.)
* ``LIBPROCESS_SSL_*`` (deprecated prefix ``SSL_``; "the latter one takes
  precedence" in libprocess' words, i.e. ``LIBPROCESS_SSL_`` wins) select
  ``https``. "The unix domain socket is always plain HTTP."

Durations use stout's syntax (``3rdparty/stout/include/stout/duration.hpp``):
"a number made of digits and ``.`` followed immediately by one unit out of
``ns us ms secs mins hrs days weeks``; no space, no sign, no unit-less form;
out of int64-ns range is an error". Printing "chooses the largest unit below
which the value falls, but steps one unit down if that gives an integer;
printed with up to 15 significant digits".

Every problem is collected first and reported in one :class:`ConfigError`
(as mesos-go's ``config.FromEnv`` does, PEERS.md §2.2). This module never reads
``os.environ``: the caller passes the mapping.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Literal

from ._errors import ConfigError

__all__ = [
    "DEFAULT_AGENT_PROCESS_ID",
    "DEFAULT_RECOVERY_TIMEOUT",
    "DEFAULT_SHUTDOWN_GRACE_PERIOD",
    "DEFAULT_SUBSCRIPTION_BACKOFF_MAX",
    "EXECUTOR_API_PATH",
    "ExecutorConfig",
    "TLSConfig",
    "format_duration",
    "parse_duration",
]

#: The executor endpoint as the docs give it (valid over TCP only).
EXECUTOR_API_PATH = "/api/v1/executor"
#: The libprocess id of a standalone agent (``slave(1)``); used for the socket
#: path when ``MESOS_SLAVE_PID`` is missing.
DEFAULT_AGENT_PROCESS_ID = "slave(1)"
#: The agent's ``--recovery_timeout`` default (15mins), used when not checkpointing.
DEFAULT_RECOVERY_TIMEOUT = 900.0
#: The agent's ``--executor_reregistration_timeout`` default (2secs).
DEFAULT_SUBSCRIPTION_BACKOFF_MAX = 2.0
#: ``DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD`` in ``src/slave/constants.hpp`` (5secs).
DEFAULT_SHUTDOWN_GRACE_PERIOD = 5.0

_TOKEN_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
_REDACTED = "<redacted>"

# --------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------

_NANOS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "secs": 1_000_000_000,
    "mins": 60 * 1_000_000_000,
    "hrs": 3_600 * 1_000_000_000,
    "days": 86_400 * 1_000_000_000,
    "weeks": 604_800 * 1_000_000_000,
}
# Smallest first: the printing rule walks this list.
_UNITS_ASCENDING: tuple[tuple[str, int], ...] = tuple(_NANOS_PER_UNIT.items())
_UNIT_LIST = ", ".join(repr(unit) for unit in _NANOS_PER_UNIT)
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_NUMBER_CHARS = "0123456789."


def _duration_error(text: str, text_reason: str) -> ValueError:
    return ValueError(f"invalid duration {text!r}: {text_reason}")


def _parse_duration_ns(text: str) -> int:
    """Parse a stout duration into whole nanoseconds (truncated, as stout does)."""
    if not text:
        raise _duration_error(text, "empty; expected a number and a unit, e.g. '5secs'")
    split = len(text) - len(text.lstrip(_NUMBER_CHARS))
    number, unit = text[:split], text[split:]
    if not number:
        if text[0] in "+-":
            reason = "a sign is not allowed"
        elif text[0].isspace():
            reason = "whitespace is not allowed"
        else:
            reason = "missing number before the unit"
        raise _duration_error(text, reason)
    if number.count(".") > 1 or number == ".":
        raise _duration_error(text, f"malformed number {number!r}")
    if not unit:
        raise _duration_error(text, f"missing unit; expected one of {_UNIT_LIST}")
    unit_nanos = _NANOS_PER_UNIT.get(unit)
    if unit_nanos is None:
        if unit[0].isspace():
            reason = "whitespace between number and unit is not allowed"
        elif unit[0] in "eE":
            reason = "exponents are not allowed"
        else:
            reason = f"unknown unit {unit!r}; expected one of {_UNIT_LIST}"
        raise _duration_error(text, reason)
    # stout: static_cast<int64_t>(double(value) * unit), i.e. a double product
    # truncated towards zero. Anything at or beyond 2**63 does not fit.
    product = float(number) * unit_nanos
    if not product < 2.0**63:
        raise _duration_error(text, "out of range (more than 2**63-1 nanoseconds)")
    return int(product)


def parse_duration(text: str) -> float:
    """Parse a Mesos (stout) duration such as ``"5secs"``, ``"1.5secs"`` or ``"250ms"``.

    The grammar is stout's: digits with at most one ``.``, immediately followed
    by one of ``ns us ms secs mins hrs days weeks``. No whitespace, sign,
    exponent or unit-less form is accepted. The value is truncated to whole
    nanoseconds, as stout does.

    Args:
        text: the duration string.

    Returns:
        The duration in seconds.

    Raises:
        ValueError: the text is not a valid duration or does not fit in a
            signed 64-bit count of nanoseconds. The message quotes the text.
    """
    return _parse_duration_ns(text) / 1e9


def _format_duration_ns(nanos: int) -> str:
    sign = ""
    if nanos < 0:
        sign = "-"
        # stout prints Duration::min() as "-" + Duration::max().
        nanos = _INT64_MAX if nanos == _INT64_MIN else -nanos
    # The bucket: the largest unit not above the value (ns below 1us).
    index = 0
    for i, (_, unit_nanos) in enumerate(_UNITS_ASCENDING):
        if nanos >= unit_nanos:
            index = i
    unit, unit_nanos = _UNITS_ASCENDING[index]
    if index > 0:
        smaller, smaller_nanos = _UNITS_ASCENDING[index - 1]
        if nanos % unit_nanos != 0 and nanos % smaller_nanos == 0:
            unit, unit_nanos = smaller, smaller_nanos
    if unit_nanos == 1:
        return f"{sign}{nanos}ns"
    # C++ ostream with precision digits10 (15) and default float format == %.15g.
    return f"{sign}{float(nanos) / unit_nanos:.15g}{unit}"


def format_duration(seconds: float) -> str:
    """Print a duration the way Mesos (stout) does, e.g. ``5 -> "5secs"``, ``90 -> "90secs"``.

    The unit is the largest one under which the value falls, one unit smaller
    if that gives a whole number (``5400 -> "90mins"``); up to 15 significant
    digits. The value is first rounded to whole nanoseconds. Negative values
    get a ``-`` prefix, as in stout (:func:`parse_duration` rejects them).

    Args:
        seconds: the duration in seconds.

    Returns:
        The stout text.

    Raises:
        ValueError: ``seconds`` is not finite or does not fit in a signed
            64-bit count of nanoseconds.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format non-finite duration {seconds!r}")
    nanos = round(seconds * 1e9)
    if not _INT64_MIN <= nanos <= _INT64_MAX:
        raise ValueError(f"duration {seconds!r} seconds is out of range for Mesos")
    return _format_duration_ns(nanos)


# --------------------------------------------------------------------------------------
# The configuration objects
# --------------------------------------------------------------------------------------

HostnameValidationScheme = Literal["legacy", "openssl"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TLSConfig:
    """The libprocess TLS settings an executor needs as a client (PROTOCOL.md §8.2).

    Read from ``LIBPROCESS_SSL_<NAME>``, or the deprecated ``SSL_<NAME>`` when
    the former is absent. Nothing here touches the file system; the I/O shell
    builds the SSL context.

    Attributes:
        enabled: ``LIBPROCESS_SSL_ENABLED``; connect with ``https``.
        cert_file: ``LIBPROCESS_SSL_CERT_FILE``, client certificate (chain) path.
        key_file: ``LIBPROCESS_SSL_KEY_FILE``, client key path.
        ca_file: ``LIBPROCESS_SSL_CA_FILE``.
        ca_dir: ``LIBPROCESS_SSL_CA_DIR``.
        verify_server_cert: ``LIBPROCESS_SSL_VERIFY_SERVER_CERT`` or its legacy
            name ``VERIFY_CERT`` (either one true means true); also true when
            ``require_client_cert`` is, as libprocess does. None when none of
            these variables is set: the transport then verifies anyway, which
            is stricter than libprocess (see ``trio_mesos._transport``).
        require_client_cert: ``LIBPROCESS_SSL_REQUIRE_CLIENT_CERT`` or its
            legacy name ``REQUIRE_CERT``.
        verify_ipadd: ``LIBPROCESS_SSL_VERIFY_IPADD``.
        hostname_validation_scheme: ``LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME``,
            ``"legacy"`` (default) or ``"openssl"``.
        ciphers: ``LIBPROCESS_SSL_CIPHERS``, an OpenSSL cipher list for TLS 1.2,
            or None for the transport's default.
    """

    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    ca_dir: str | None = None
    verify_server_cert: bool | None = None
    require_client_cert: bool = False
    verify_ipadd: bool = False
    hostname_validation_scheme: HostnameValidationScheme = "legacy"
    ciphers: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorConfig:
    """Everything the agent told the executor through its environment.

    Build one with :meth:`from_environ`; tests may construct one directly
    (keyword arguments only; everything but the two ids has a default).
    Durations are in seconds.

    Attributes:
        framework_id: ``MESOS_FRAMEWORK_ID``.
        executor_id: ``MESOS_EXECUTOR_ID``.
        agent_id: ``MESOS_SLAVE_ID`` (the real agent always sets it).
        directory: ``MESOS_DIRECTORY``, the sandbox path on the host.
        sandbox: ``MESOS_SANDBOX``, the sandbox as the container sees it.
        agent_host: TCP host of the agent (IPv6 without brackets), from
            ``MESOS_AGENT_ENDPOINT`` or else ``MESOS_SLAVE_PID``.
        agent_port: TCP port of the agent.
        agent_path: request path, ``/<pid id>/api/v1/executor`` when
            ``MESOS_SLAVE_PID`` is known (as the C++ library builds it), else
            ``/api/v1/executor`` (``/slave(1)/api/v1/executor`` with a socket).
        agent_pid: ``MESOS_SLAVE_PID`` as given.
        domain_socket: ``MESOS_DOMAIN_SOCKET``; when set, connect there
            (always plain HTTP).
        checkpoint: ``MESOS_CHECKPOINT == "1"``; reconnect after an agent loss.
        recovery_timeout: ``MESOS_RECOVERY_TIMEOUT``.
        subscription_backoff_max: ``MESOS_SUBSCRIPTION_BACKOFF_MAX``.
        shutdown_grace_period: ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``.
        authentication_token: ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` (secret;
            excluded from ``repr``).
        http_command_executor: ``MESOS_HTTP_COMMAND_EXECUTOR == "1"``.
        local: ``MESOS_LOCAL`` is present (test mode: on SHUTDOWN do not kill
            the process group).
        tls: the ``LIBPROCESS_SSL_*`` settings; see :attr:`use_tls`.
    """

    framework_id: str
    executor_id: str
    agent_id: str | None = None
    directory: str | None = None
    sandbox: str | None = None
    agent_host: str | None = None
    agent_port: int | None = None
    agent_path: str = EXECUTOR_API_PATH
    agent_pid: str | None = None
    domain_socket: str | None = None
    checkpoint: bool = False
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    subscription_backoff_max: float = DEFAULT_SUBSCRIPTION_BACKOFF_MAX
    shutdown_grace_period: float = DEFAULT_SHUTDOWN_GRACE_PERIOD
    authentication_token: str | None = dataclasses.field(default=None, repr=False)
    http_command_executor: bool = False
    local: bool = False
    tls: TLSConfig = dataclasses.field(default_factory=TLSConfig)

    @property
    def use_tls(self) -> bool:
        """Whether to speak TLS to the agent: TLS enabled and no domain socket in use."""
        return self.tls.enabled and self.domain_socket is None

    def agent_url(self) -> str:
        """A URL naming the agent's executor endpoint, for display (no secrets).

        ``http://10.0.0.1:5051/slave(1)/api/v1/executor``, ``https://...`` when
        :attr:`use_tls`, or ``http+unix://<percent-encoded socket path><path>``
        when a domain socket is used.

        Raises:
            ValueError: there is neither a domain socket nor a host and port.
        """
        if self.domain_socket is not None:
            return f"http+unix://{_percent_encode(self.domain_socket)}{self.agent_path}"
        if self.agent_host is None or self.agent_port is None:
            raise ValueError("no agent address: neither a domain socket nor a host and port")
        host = self.agent_host
        if ":" in host:
            host = "[" + host.replace("%", "%25") + "]"
        scheme = "https" if self.use_tls else "http"
        return f"{scheme}://{host}:{self.agent_port}{self.agent_path}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExecutorConfig:
        """Read the configuration from an executor environment.

        Args:
            environ: the environment, e.g. ``os.environ`` (not modified).

        Returns:
            The configuration.

        Raises:
            ConfigError: one or more variables are missing or malformed. All
                problems are listed at once; the authentication token's value
                never appears in the message.
        """
        problems: list[tuple[str, str]] = []

        framework_id = _required_text(environ, "MESOS_FRAMEWORK_ID", problems)
        executor_id = _required_text(environ, "MESOS_EXECUTOR_ID", problems)
        agent_id = environ.get("MESOS_SLAVE_ID") or None
        directory = environ.get("MESOS_DIRECTORY") or None
        sandbox = environ.get("MESOS_SANDBOX") or directory

        token = environ.get(_TOKEN_VARIABLE) or None
        if token is not None and not _VISIBLE_ASCII.fullmatch(token):
            problems.append(
                (
                    _TOKEN_VARIABLE,
                    "contains whitespace, control or non-ASCII characters, so it cannot be"
                    " sent in an Authorization header (value not shown)",
                )
            )

        domain_socket = environ.get("MESOS_DOMAIN_SOCKET")
        if domain_socket is not None and (not domain_socket or "\x00" in domain_socket):
            problems.append(
                ("MESOS_DOMAIN_SOCKET", f"must be a socket path, got {domain_socket!r}")
            )

        endpoint = _address_variable(environ, "MESOS_AGENT_ENDPOINT", problems)
        pid = _pid_variable(environ, "MESOS_SLAVE_PID", problems)
        if (
            "MESOS_AGENT_ENDPOINT" not in environ
            and "MESOS_SLAVE_PID" not in environ
            and domain_socket is None
        ):
            problems.append(
                (
                    "MESOS_AGENT_ENDPOINT",
                    "not set, and neither is MESOS_SLAVE_PID; one of them (or"
                    " MESOS_DOMAIN_SOCKET) is needed to reach the agent",
                )
            )
        agent_host: str | None = None
        agent_port: int | None = None
        if endpoint is not None:
            agent_host, agent_port = endpoint
        elif pid is not None:
            _, agent_host, agent_port = pid
        if pid is not None:
            agent_path = f"/{pid[0]}{EXECUTOR_API_PATH}"
        elif domain_socket is not None:
            # The socket only serves /slave(N)/api/v1/executor; without
            # MESOS_SLAVE_PID we assume the id every standalone agent has.
            agent_path = f"/{DEFAULT_AGENT_PROCESS_ID}{EXECUTOR_API_PATH}"
        else:
            agent_path = EXECUTOR_API_PATH

        checkpoint = environ.get("MESOS_CHECKPOINT") == "1"
        recovery_timeout = _duration_variable(
            environ, "MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT, checkpoint, problems
        )
        subscription_backoff_max = _duration_variable(
            environ,
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
            checkpoint,
            problems,
        )
        shutdown_grace_period = _duration_variable(
            environ,
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            DEFAULT_SHUTDOWN_GRACE_PERIOD,
            False,
            problems,
        )
        tls = _tls_from_environ(environ, problems)

        if problems:
            raise ConfigError(_redact(problems, token))
        return cls(
            framework_id=framework_id,
            executor_id=executor_id,
            agent_id=agent_id,
            directory=directory,
            sandbox=sandbox,
            agent_host=agent_host,
            agent_port=agent_port,
            agent_path=agent_path,
            agent_pid=environ.get("MESOS_SLAVE_PID"),
            domain_socket=domain_socket,
            checkpoint=checkpoint,
            recovery_timeout=recovery_timeout,
            subscription_backoff_max=subscription_backoff_max,
            shutdown_grace_period=shutdown_grace_period,
            authentication_token=token,
            http_command_executor=environ.get("MESOS_HTTP_COMMAND_EXECUTOR") == "1",
            local="MESOS_LOCAL" in environ,
            tls=tls,
        )


# --------------------------------------------------------------------------------------
# Helpers for from_environ: each appends (VARIABLE, explanation) to `problems`.
# --------------------------------------------------------------------------------------

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"[A-Za-z0-9._-]+")
# A libprocess process id must be usable as one URL path segment.
_PROCESS_ID = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:]+")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent_encode(text: str) -> str:
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8")
    )


def _redact(problems: list[tuple[str, str]], token: str | None) -> list[tuple[str, str]]:
    """Remove the token's value from every explanation (defence in depth)."""
    if not token:
        return problems
    return [(name, why.replace(token, _REDACTED)) for name, why in problems]


def _required_text(environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]) -> str:
    value = environ.get(name)
    if value is None:
        problems.append((name, "required but not set"))
        return ""
    if not value:
        problems.append((name, "required but empty"))
    return value


def _is_ipv6(text: str) -> bool:
    """An IPv6 address, optionally with a ``%zone`` (no brackets)."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _check_host(host: str) -> None:
    """A host name or a strict dotted-quad IPv4 address; raise ValueError with the reason.

    A host whose last label starts with a digit is no DNS name (top-level domains
    are alphabetic): ``getaddrinfo`` would read it as an IPv4 address with
    ``inet_aton``'s rules, where ``010.0.0.1`` is octal for 8.0.0.1 and ``10.1``
    is 10.0.0.1. Such a host must be four decimal numbers 0-255 without leading
    zeros (``ipaddress.IPv4Address``), so it means what it says.
    """
    if not _HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or IPv4 address")
    if host.rstrip(".").rpartition(".")[2][:1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"{host!r} is not an IPv4 address (four decimal numbers 0-255,"
                " without leading zeros) nor a host name"
            ) from None


def _parse_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[ipv6]:port``; raise ValueError with the reason."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError("expected [IPV6]:PORT")
        if not _is_ipv6(host):
            raise ValueError(f"{host!r} is not an IPv6 address")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError("expected HOST:PORT (IPv6 as [ADDRESS]:PORT)")
        if ":" in host:
            raise ValueError("an IPv6 address must be in brackets, as [ADDRESS]:PORT")
        _check_host(host)
    if not _PORT.fullmatch(port_text):
        raise ValueError(f"port {port_text!r} is not a decimal number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


def _address_variable(
    environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]
) -> tuple[str, int] | None:
    value = environ.get(name)
    if value is None:
        return None
    try:
        return _parse_host_port(value)
    except ValueError as exc:
        problems.append((name, f"{exc}, got {value!r}"))
        return None


def _pid_variable(
    environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]
) -> tuple[str, str, int] | None:
    value = environ.get(name)
    if value is None:
        return None
    process_id, at, address = value.partition("@")
    try:
        if not at:
            raise ValueError("missing '@'; expected ID@HOST:PORT such as slave(1)@10.0.0.1:5051")
        if not _PROCESS_ID.fullmatch(process_id):
            raise ValueError(
                f"process id {process_id!r} before '@' is empty or not usable in a URL path"
            )
        host, port = _parse_host_port(address)
    except ValueError as exc:
        problems.append((name, f"{exc}, got {value!r}"))
        return None
    return process_id, host, port


def _duration_variable(
    environ: Mapping[str, str],
    name: str,
    default: float,
    required: bool,
    problems: list[tuple[str, str]],
) -> float:
    value = environ.get(name)
    if value is None:
        if required:
            problems.append((name, "required when MESOS_CHECKPOINT=1 but not set"))
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        problems.append((name, str(exc)))
        return default


# --------------------------------------------------------------------------------------
# TLS (libprocess' openssl.cpp flags)
# --------------------------------------------------------------------------------------

_TRUE_WORDS = frozenset({"true", "1"})
_FALSE_WORDS = frozenset({"false", "0"})
_SCHEMES: dict[str, HostnameValidationScheme] = {"legacy": "legacy", "openssl": "openssl"}


def _ssl_variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """Return (variable, value) for flag ``name``: LIBPROCESS_SSL_ wins over SSL_."""
    for prefix in ("LIBPROCESS_SSL_", "SSL_"):
        variable = prefix + name
        value = environ.get(variable)
        if value is not None:
            return variable, value
    return None


def _ssl_bool(
    environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]
) -> bool | None:
    found = _ssl_variable(environ, name)
    if found is None:
        return None
    variable, value = found
    word = value.lower()
    # stout's flag loader turns an empty value of a boolean flag into "true".
    if word == "" or word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    problems.append((variable, f"expected true, false, 1 or 0, got {value!r}"))
    return None


def _ssl_path(environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]) -> str | None:
    found = _ssl_variable(environ, name)
    if found is None:
        return None
    variable, value = found
    if not value or "\x00" in value:
        problems.append((variable, f"must be a path, got {value!r}"))
        return None
    return value


def _tls_from_environ(environ: Mapping[str, str], problems: list[tuple[str, str]]) -> TLSConfig:
    enabled = _ssl_bool(environ, "ENABLED", problems)
    cert_file = _ssl_path(environ, "CERT_FILE", problems)
    key_file = _ssl_path(environ, "KEY_FILE", problems)
    ca_file = _ssl_path(environ, "CA_FILE", problems)
    ca_dir = _ssl_path(environ, "CA_DIR", problems)
    verify_server = _ssl_bool(environ, "VERIFY_SERVER_CERT", problems)
    verify_legacy = _ssl_bool(environ, "VERIFY_CERT", problems)
    require_client = _ssl_bool(environ, "REQUIRE_CLIENT_CERT", problems)
    require_legacy = _ssl_bool(environ, "REQUIRE_CERT", problems)
    verify_ipadd = _ssl_bool(environ, "VERIFY_IPADD", problems)
    ciphers: str | None = None
    found_ciphers = _ssl_variable(environ, "CIPHERS")
    if found_ciphers is not None:
        variable, value = found_ciphers
        if not value.strip() or "\x00" in value:
            problems.append((variable, f"must be an OpenSSL cipher list, got {value!r}"))
        else:
            ciphers = value

    scheme: HostnameValidationScheme = "legacy"
    found = _ssl_variable(environ, "HOSTNAME_VALIDATION_SCHEME")
    if found is not None:
        variable, value = found
        known = _SCHEMES.get(value)
        if known is None:
            problems.append((variable, f"expected 'legacy' or 'openssl', got {value!r}"))
        else:
            scheme = known

    # libprocess: the legacy names are separate flags OR-ed into the new ones,
    # and require_client_cert implies verify_server_cert.
    require_client_cert = bool(require_client) or bool(require_legacy)
    verify_server_cert: bool | None
    if verify_server is None and verify_legacy is None and not require_client_cert:
        verify_server_cert = None
    else:
        verify_server_cert = bool(verify_server) or bool(verify_legacy) or require_client_cert

    return TLSConfig(
        enabled=bool(enabled),
        cert_file=cert_file,
        key_file=key_file,
        ca_file=ca_file,
        ca_dir=ca_dir,
        verify_server_cert=verify_server_cert,
        require_client_cert=require_client_cert,
        verify_ipadd=bool(verify_ipadd),
        hostname_validation_scheme=scheme,
        ciphers=ciphers,
    )
