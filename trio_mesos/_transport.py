"""Opening streams to the agent: TCP, TLS over TCP, or the Unix socket of MESOS_DOMAIN_SOCKET.

Theory of operation
===================
:func:`default_open_stream` turns an :class:`~trio_mesos.ExecutorConfig` into
an async callable that opens one fresh stream per call (the driver opens one
for the event stream and one for its calls, and new ones after every loss).
Opening is bounded by :data:`CONNECT_TIMEOUT` (TCP connect plus TLS
handshake), so an agent that accepts and then says nothing cannot stall a
reconnect; a timeout is a :class:`~trio_mesos._http.TransportError`, which the
driver handles like any connection failure (PROTOCOL.md §3.8 recovery rules).

* ``MESOS_DOMAIN_SOCKET`` set: the Unix socket, always plain HTTP, even when
  ``LIBPROCESS_SSL_ENABLED`` is true (PROTOCOL.md §8.2: "The unix domain
  socket is always plain HTTP").
* ``LIBPROCESS_SSL_ENABLED=true`` (or the deprecated ``SSL_ENABLED``): TLS
  over TCP with :class:`trio.SSLStream`, as below.
* Otherwise plain TCP.

TLS
===
The SSL context is built once, synchronously, by :func:`tls_context` when
:func:`default_open_stream` is called (before the driver's nursery starts):
unreadable certificate or key files are a :class:`~trio_mesos.ConfigError`
naming the variable, not a connection failure at some later reconnect.

Server-certificate verification -- stricter than libprocess
    libprocess does **not** verify the agent's certificate unless
    ``LIBPROCESS_SSL_VERIFY_SERVER_CERT`` (or the legacy ``VERIFY_CERT``, or
    ``REQUIRE_CLIENT_CERT``) is true. We verify it unless the variables
    explicitly turn it off: ``LIBPROCESS_SSL_VERIFY_SERVER_CERT=false`` (or
    ``VERIFY_CERT=false``) with no ``REQUIRE_CLIENT_CERT``. An executor that
    sends its authentication token to whoever answers on the agent's port
    would give the token away to any man in the middle; the price is that a
    cluster with self-signed agent certificates must either give executors
    the CA (``LIBPROCESS_SSL_CA_FILE`` / ``LIBPROCESS_SSL_CA_DIR``) or set the
    variable to false. Every verification failure says so: its message names
    ``LIBPROCESS_SSL_VERIFY_SERVER_CERT``. With neither CA variable set, the
    system's default trust store is used (as libprocess does).

Hostname validation (``LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME``)
    ``openssl``: OpenSSL's own check (``X509_check_host``, or
    ``X509_check_ip`` when the host is an IP address; Python's
    ``check_hostname``) against the agent host as configured
    (``MESOS_AGENT_ENDPOINT`` / ``MESOS_SLAVE_PID``, usually an IP address, so
    the certificate needs that IP as a subjectAltName). This is the
    recommended scheme.

    ``legacy`` (libprocess's default): libprocess looks the peer's IP address
    up in reverse DNS and accepts the certificate if a DNS subjectAltName, or
    failing that the subject's common name, equals that name; with
    ``LIBPROCESS_SSL_VERIFY_IPADD=true`` an IP-address subjectAltName equal
    to the peer's address is accepted too. We do the same, after the chain
    has been verified: reverse lookup of the connected peer's address
    (``getnameinfo`` with ``NI_NAMEREQD``), then exact (case-insensitive)
    comparison, no wildcards. If reverse DNS has no name and
    ``VERIFY_IPADD`` is off, the connection is refused. Note that this
    scheme trusts whoever controls the reverse zone of the agent's address;
    prefer ``openssl``.

    Neither check runs when verification is off.

Client certificate
    ``LIBPROCESS_SSL_CERT_FILE`` (certificate chain, PEM) and
    ``LIBPROCESS_SSL_KEY_FILE`` (PEM key; may be omitted if the certificate
    file holds the key) are presented when the agent asks for one (agents
    with ``REQUIRE_CLIENT_CERT``). Encrypted keys are refused (no password
    prompt can be answered by an executor).

Protocol versions and ciphers
    TLS 1.2 and 1.3 (Python's defaults; the older versions that libprocess
    can enable with ``ENABLE_SSL_V3``/``ENABLE_TLS_V1_0``/``ENABLE_TLS_V1_1``
    are refused). ``LIBPROCESS_SSL_CIPHERS``, when set, is the TLS 1.2 cipher
    list. Unset, we offer modern forward-secret suites first and then the
    AES-CBC suites of libprocess's own default list (``AES128-SHA``,
    ``AES256-SHA``, ``DHE-RSA-AES*-SHA``): an agent left at libprocess's
    defaults speaks TLS 1.2 with only those, and Python's default list
    (``!SHA1``) would share none of them. ``RC4-SHA`` and the DSS suites of
    that list are not offered. ``VERIFICATION_DEPTH``, ``ECDH_CURVES`` and
    ``SUPPORT_DOWNGRADE`` (a server-side setting) are not used: Python's
    ``ssl`` has no depth setting and picks curves itself.

Errors
    A failed handshake or certificate check is a
    :class:`~trio_mesos._http.TransportError` whose message says what failed
    and which variable changes it; on the first connection the driver raises
    it as :class:`~trio_mesos.AgentUnavailableError` from
    ``open_executor_driver``. TLS 1.3 servers reject a missing client
    certificate only after the client's handshake completed: that failure
    arrives on the first read, as ``trio.BrokenResourceError`` whose message
    explains it (the stream returned here rewrites the bare errors trio
    raises).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from ._config import ExecutorConfig, TLSConfig
from ._errors import ConfigError
from ._http import TransportError

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_CIPHERS",
    "OpenStream",
    "default_open_stream",
    "host_header",
    "tls_context",
]

log = logging.getLogger("trio_mesos.connection")

#: An async callable returning a fresh stream to the agent (the driver's seam
#: for tests: ``FakeAgent.connect`` fits it).
OpenStream = Callable[[], Awaitable[trio.abc.Stream]]

#: Seconds to open one connection: TCP connect, and with TLS the handshake and
#: the hostname check. The agent accepts and handshakes at once; this bounds a
#: black-holed address or a peer that never finishes the handshake.
CONNECT_TIMEOUT: Final = 30.0

#: The TLS 1.2 cipher list offered when ``LIBPROCESS_SSL_CIPHERS`` is unset:
#: forward-secret AEAD suites first, then the AES-CBC suites of libprocess's
#: default list, so that an agent at libprocess's defaults is reachable.
DEFAULT_CIPHERS: Final = (
    "ECDH+AESGCM:ECDH+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDH+AES:DHE+AES:"
    "AES128-SHA:AES256-SHA:!aNULL:!eNULL:!aDSS:!MD5:!RC4:!3DES:!AESCCM"
)

_VERIFY_VARIABLE: Final = "LIBPROCESS_SSL_VERIFY_SERVER_CERT"
_TURN_OFF: Final = (
    f"to connect without verifying the agent's certificate, set {_VERIFY_VARIABLE}=false "
    "(libprocess's default; insecure)"
)
_CLIENT_CERT_HINT: Final = (
    "if the agent requires client certificates (LIBPROCESS_SSL_REQUIRE_CLIENT_CERT on the "
    "agent), set LIBPROCESS_SSL_CERT_FILE and LIBPROCESS_SSL_KEY_FILE"
)
# X509_V_ERR_HOSTNAME_MISMATCH / X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH_CODES: Final = frozenset({62, 64})

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

    With TLS, builds the SSL context now (reads the CA and certificate files).

    Raises:
        ConfigError: no address is known, or a TLS file or setting is unusable.
    """
    if config.domain_socket is not None:
        socket_path = config.domain_socket

        async def open_unix() -> trio.abc.Stream:
            return await trio.open_unix_socket(unix_socket_path(socket_path))

        return open_unix
    host, port = config.agent_host, config.agent_port
    if host is None or port is None:
        raise ConfigError([("MESOS_AGENT_ENDPOINT", "no agent address is configured")])
    tcp_host = host[1:-1] if host.startswith("[") else host

    if config.use_tls:
        context = tls_context(config.tls)
        tls = config.tls

        async def open_tls() -> trio.abc.Stream:
            with trio.move_on_after(CONNECT_TIMEOUT):
                return await _open_tls(tcp_host, port, context, tls)
            raise TransportError(
                f"TLS connection to the agent at {_address(tcp_host, port)} not established "
                f"within {CONNECT_TIMEOUT:g} s"
            )

        return open_tls

    async def open_tcp() -> trio.abc.Stream:
        with trio.move_on_after(CONNECT_TIMEOUT):
            return keepalive(await trio.open_tcp_stream(tcp_host, port))
        raise TransportError(
            f"connecting to the agent at {_address(tcp_host, port)} took more than "
            f"{CONNECT_TIMEOUT:g} s"
        )

    return open_tcp


#: TCP keepalive on agent connections: first probe after this many idle
#: seconds, then every KEEPALIVE_INTERVAL, given up after KEEPALIVE_COUNT
#: unanswered probes (a peer that vanished without a FIN or RST is noticed in
#: about two minutes instead of the kernel's default two hours).
KEEPALIVE_IDLE: Final = 60
KEEPALIVE_INTERVAL: Final = 15
KEEPALIVE_COUNT: Final = 4


def keepalive(stream: trio.SocketStream) -> trio.SocketStream:
    """Turn TCP keepalive on for ``stream`` (with the timings above where the OS has them)."""
    try:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                stream.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError as exc:  # pragma: no cover - a socket that refuses options
        log.debug("TCP keepalive not set: %s", exc)
    return stream


def host_header(config: ExecutorConfig) -> str:
    """The ``Host`` header for requests to the agent."""
    if config.domain_socket is not None or config.agent_host is None:
        return "localhost"
    host = config.agent_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if config.agent_port is None else f"{host}:{config.agent_port}"


# --------------------------------------------------------------------------------------
# The SSL context
# --------------------------------------------------------------------------------------


def verifies_server(tls: TLSConfig) -> bool:
    """Whether the agent's certificate is verified: unless explicitly turned off."""
    return tls.verify_server_cert is not False


def _refuse_password() -> bytes:
    # Called by OpenSSL only for an encrypted key: never prompt on a terminal.
    raise ValueError("the key is encrypted")


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """The client ``ssl.SSLContext`` for these libprocess TLS settings.

    Reads the CA file (or names the CA directory) and the client certificate
    and key. See the module documentation for the rules.

    Raises:
        ConfigError: a file cannot be read or parsed, the key does not match
            the certificate or is encrypted, or the cipher list selects
            nothing. The message names the variable.
    """
    problems: list[tuple[str, str]] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    verify = verifies_server(tls)
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = tls.hostname_validation_scheme == "openssl"
        if tls.ca_file is None and tls.ca_dir is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if tls.ca_file is not None:
            try:
                context.load_verify_locations(cafile=tls.ca_file)
            except (OSError, ssl.SSLError) as exc:
                problems.append(
                    (
                        "LIBPROCESS_SSL_CA_FILE",
                        f"cannot load CA certificates from {tls.ca_file!r}: {_reason(exc)}",
                    )
                )
        if tls.ca_dir is not None:
            if not os.path.isdir(tls.ca_dir):
                problems.append(("LIBPROCESS_SSL_CA_DIR", f"{tls.ca_dir!r} is not a directory"))
            else:
                context.load_verify_locations(capath=tls.ca_dir)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "TLS to the agent WITHOUT verifying its certificate (%s=false)", _VERIFY_VARIABLE
        )

    if tls.key_file is not None and tls.cert_file is None:
        problems.append(
            (
                "LIBPROCESS_SSL_KEY_FILE",
                "set without LIBPROCESS_SSL_CERT_FILE (the certificate to present with it)",
            )
        )
    elif tls.cert_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password=_refuse_password)
        except (OSError, ssl.SSLError, ValueError) as exc:
            variable = "LIBPROCESS_SSL_CERT_FILE"
            files = repr(tls.cert_file)
            if tls.key_file is not None:
                variable += " / LIBPROCESS_SSL_KEY_FILE"
                files += f" and {tls.key_file!r}"
            problems.append(
                (
                    variable,
                    f"cannot load the client certificate and key from {files}: {_reason(exc)}",
                )
            )

    try:
        context.set_ciphers(DEFAULT_CIPHERS if tls.ciphers is None else tls.ciphers)
    except ssl.SSLError as exc:
        problems.append(
            (
                "LIBPROCESS_SSL_CIPHERS",
                f"selects no cipher OpenSSL knows ({_reason(exc)}), got {tls.ciphers!r}",
            )
        )
    if problems:
        raise ConfigError(problems)
    return context


def _reason(exc: BaseException) -> str:
    # ssl.SSLError has .reason/.library only when OpenSSL reported one.
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason:
        library = getattr(exc, "library", None)
        return f"{reason} ({library})" if library else str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OSError) and len(exc.args) == 1:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------
# Opening a TLS connection
# --------------------------------------------------------------------------------------


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _CertificateRefused(Exception):
    """The agent's certificate is valid but does not name the agent (legacy scheme)."""


async def _open_tls(
    host: str, port: int, context: ssl.SSLContext, tls: TLSConfig
) -> trio.abc.Stream:
    tcp = keepalive(await trio.open_tcp_stream(host, port))
    ssl_stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
    try:
        try:
            await ssl_stream.do_handshake()
            if verifies_server(tls) and tls.hostname_validation_scheme == "legacy":
                peer = tcp.socket.getpeername()
                await _check_legacy_hostname(ssl_stream, str(peer[0]), tls)
        except trio.BrokenResourceError as exc:
            raise TransportError(_handshake_failure(exc.__cause__, host, port, tls)) from exc
        except _CertificateRefused as exc:
            raise TransportError(
                f"TLS to the agent at {_address(host, port)}: hostname check failed "
                f"(LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=legacy): {exc}; {_TURN_OFF}"
            ) from None
    except BaseException:
        await trio.aclose_forcefully(ssl_stream)
        raise
    return _TLSStream(ssl_stream, tls)


def _handshake_failure(cause: BaseException | None, host: str, port: int, tls: TLSConfig) -> str:
    where = _address(host, port)
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or _reason(cause)
        if cause.verify_code in _NAME_MISMATCH_CODES:
            what = (
                f"the agent's certificate does not name {host} ({detail}; "
                "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=openssl checks the configured "
                "agent host)"
            )
        else:
            trust = (
                "LIBPROCESS_SSL_CA_FILE / LIBPROCESS_SSL_CA_DIR"
                if tls.ca_file or tls.ca_dir
                else "the system's trust store (set LIBPROCESS_SSL_CA_FILE or "
                "LIBPROCESS_SSL_CA_DIR to the cluster's CA)"
            )
            what = f"cannot verify the agent's certificate ({detail}) against {trust}"
        return f"TLS to the agent at {where}: {what}; {_TURN_OFF}"
    if cause is None or isinstance(cause, ssl.SSLEOFError):
        text = f"TLS: the agent at {where} closed the connection during the handshake"
    else:
        text = f"TLS handshake with the agent at {where} failed: {_reason(cause)}"
        reason = str(getattr(cause, "reason", "") or "").upper()
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
            return text + " (is the agent serving plain HTTP? then unset LIBPROCESS_SSL_ENABLED)"
    if tls.cert_file is None:
        text += f"; {_CLIENT_CERT_HINT}"
    return text


async def _reverse_lookup(ip: str) -> str | None:
    """The name reverse DNS gives for ``ip``, or None (a seam for tests)."""
    try:
        name, _ = await trio.socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)
    except OSError:
        return None
    return name


async def _check_legacy_hostname(ssl_stream: trio.SSLStream[Any], ip: str, tls: TLSConfig) -> None:
    """libprocess's ``legacy`` scheme: the reverse-DNS name (or, opted in, the IP) must match."""
    cert = ssl_stream.getpeercert()
    if not isinstance(cert, dict):  # pragma: no cover - verified chains always have one
        raise _CertificateRefused("the agent presented no certificate")
    name = await _reverse_lookup(ip)
    check_ip = ip if tls.verify_ipadd else None
    if name is None and check_ip is None:
        raise _CertificateRefused(
            f"reverse DNS has no name for the agent's address {ip}, so there is nothing to "
            "check the certificate against (set LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="
            "openssl, or LIBPROCESS_SSL_VERIFY_IPADD=true to accept the address itself)"
        )
    if _legacy_matches(cert, name, check_ip):
        return
    wanted = " or ".join(
        [f"host name {name!r} (reverse DNS of {ip})"] * (name is not None)
        + [f"IP address {ip}"] * (check_ip is not None)
    )
    raise _CertificateRefused(f"the certificate names neither {wanted}")


def _legacy_matches(cert: dict[str, Any], name: str | None, ip: str | None) -> bool:
    wanted_ip = None if ip is None else ipaddress.ip_address(ip.split("%")[0])
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS" and name is not None and str(value).lower() == name.lower():
            return True
        if kind == "IP Address" and wanted_ip is not None:
            try:
                if ipaddress.ip_address(str(value).strip()) == wanted_ip:
                    return True
            except ValueError:
                continue
    if name is None:
        return False
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and str(value).lower() == name.lower():
                return True
    return False


class _TLSStream(trio.abc.Stream):
    """An open ``trio.SSLStream`` whose failures say what TLS reported.

    trio raises a bare ``BrokenResourceError`` with the ``ssl.SSLError`` as
    ``__cause__``; the HTTP layer quotes only the exception itself, so the
    reason (for example the TLS 1.3 alert for a missing client certificate)
    is put into the message here.
    """

    def __init__(self, inner: trio.SSLStream[Any], tls: TLSConfig) -> None:
        self._inner = inner
        self._tls = tls
        self._answered = False  # some bytes came back on this connection

    def _explain(self, exc: trio.BrokenResourceError) -> trio.BrokenResourceError:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLError) and not exc.args:
            text = f"TLS: {_reason(cause)}"
            reason = str(getattr(cause, "reason", "") or "").upper()
            if "CERTIFICATE" in reason or "HANDSHAKE_FAILURE" in reason:
                if self._tls.cert_file is None:
                    text += "; the agent refused the connection without a client certificate: "
                    text += _CLIENT_CERT_HINT
                else:
                    text += "; the agent refused this executor's client certificate"
                    text += " (LIBPROCESS_SSL_CERT_FILE)"
            return trio.BrokenResourceError(text)
        if not self._answered:
            # TLS 1.3: a server that wants a client certificate checks it after
            # the client's handshake is over and then closes; our first write
            # may meet the closed socket before the alert is read.
            detail = str(exc) or (str(cause) if cause else "") or type(exc).__name__
            hint = (
                _CLIENT_CERT_HINT
                if self._tls.cert_file is None
                else "the agent may have refused this executor's client certificate "
                "(LIBPROCESS_SSL_CERT_FILE)"
            )
            return trio.BrokenResourceError(
                f"TLS: the agent closed the connection before answering ({detail}); {hint}"
            )
        return exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._inner.send_all(data)
        except trio.BrokenResourceError as exc:
            raise self._explain(exc) from exc.__cause__

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._inner.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            raise self._explain(exc) from exc.__cause__
        self._answered = True
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()
