"""TLS to the agent (issue 8): trio.SSLStream from the LIBPROCESS_SSL_* variables.

Real loopback sockets and real time (TLS needs real sockets); every test is
bounded by ``trio.fail_after(LIMIT)`` with a wide bound. Certificates come from
``trustme``; the FakeAgent serves TLS with ``listen_tcp(ssl_context=...)``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import pathlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import trio
import trustme

import trio_mesos
from trio_mesos import AgentUnavailableError, ConfigError, ExecutorConfig, _transport
from trio_mesos._config import TLSConfig
from trio_mesos._transport import DEFAULT_CIPHERS, default_open_stream, tls_context
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2

from .helpers import Recorder, make_task, status

#: Real seconds after which a test fails instead of hanging.
LIMIT = 30.0
#: libprocess's default LIBPROCESS_SSL_CIPHERS (PROTOCOL.md §8.2).
LIBPROCESS_CIPHERS = (
    "AES128-SHA:AES256-SHA:RC4-SHA:DHE-RSA-AES128-SHA:DHE-DSS-AES128-SHA:"
    "DHE-RSA-AES256-SHA:DHE-DSS-AES256-SHA"
)


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def other_ca() -> trustme.CA:
    return trustme.CA()


class Files:
    """PEM files of one test, written under ``tmp_path``."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def ca(self, ca: trustme.CA, name: str = "ca.pem") -> str:
        path = self.root / name
        ca.cert_pem.write_to_path(str(path))
        return str(path)

    def client(self, ca: trustme.CA, name: str = "executor") -> tuple[str, str]:
        cert = ca.issue_cert(f"{name}.example")
        cert_path, key_path = self.root / f"{name}.crt", self.root / f"{name}.key"
        for blob in cert.cert_chain_pems:
            blob.write_to_path(str(cert_path), append=True)
        cert.private_key_pem.write_to_path(str(key_path))
        return str(cert_path), str(key_path)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> Files:
    return Files(tmp_path)


def server_context(
    ca: trustme.CA,
    *names: str,
    client_ca: trustme.CA | None = None,
    tls12_only: bool = False,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1",))).configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextlib.asynccontextmanager
async def tls_agent(ca: trustme.CA, *names: str) -> AsyncIterator[FakeAgent]:
    """A FakeAgent serving TLS on TCP with a certificate from ``ca`` for ``names``."""
    async with FakeAgent() as agent:
        await agent.listen_tcp(ssl_context=server_context(ca, *names))
        yield agent


def tls_environ(agent: FakeAgent, sandbox: pathlib.Path, **ssl_vars: str) -> dict[str, str]:
    """The executor environment of ``agent`` plus TLS variables (as a cluster would add)."""
    env = agent.executor_environment(sandbox)
    env["LIBPROCESS_SSL_ENABLED"] = "true"
    env.update(ssl_vars)
    return env


@pytest.fixture
def reverse_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Replace reverse DNS: map an IP to a name (None = no PTR record)."""
    table: dict[str, str | None] = {}
    looked_up: list[str] = []

    async def lookup(ip: str) -> str | None:
        await trio.lowlevel.checkpoint()
        looked_up.append(ip)
        return table.get(ip)

    monkeypatch.setattr(_transport, "_reverse_lookup", lookup)
    return table


async def exchange(agent: FakeAgent, config: ExecutorConfig) -> None:
    executor = Recorder()
    with trio.fail_after(LIMIT):
        async with trio_mesos.open_executor_driver(executor, config=config) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            uuid = await driver.update(status("t1", mesos_pb2.TASK_FINISHED))
            await driver.wait_acknowledged(uuid)
    assert agent.task_state("t1") == mesos_pb2.TASK_FINISHED


async def refused(config: ExecutorConfig) -> str:
    """Open the driver; it must fail with AgentUnavailableError: return its message."""
    with trio.fail_after(LIMIT), pytest.raises(AgentUnavailableError) as excinfo:
        async with trio_mesos.open_executor_driver(Recorder(), config=config):
            pytest.fail("the driver started although TLS should have failed")
    return str(excinfo.value)


# --------------------------------------------------------------------------
# It works
# --------------------------------------------------------------------------


async def test_good_ca_openssl_scheme_end_to_end(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path
) -> None:
    async with tls_agent(ca, "127.0.0.1") as agent:
        assert agent.tls
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        config = ExecutorConfig.from_environ(env)
        assert config.use_tls and config.agent_url().startswith("https://")
        await exchange(agent, config)
    assert agent.calls and {call.transport for call in agent.calls} == {"tls"}


async def test_good_ca_in_a_ca_directory(ca: trustme.CA, tmp_path: pathlib.Path) -> None:
    # CA_DIR holds hashed names (c_rehash); build the link name OpenSSL looks for.
    ca_dir = tmp_path / "cas"
    ca_dir.mkdir()
    pem = ca_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    context = ssl.create_default_context(cafile=str(pem))
    der = context.get_ca_certs(binary_form=True)[0]
    cert = ssl.DER_cert_to_PEM_cert(der)
    subject_hash = _subject_hash(cert, tmp_path)
    if subject_hash is None:
        pytest.skip("the openssl command is not available to compute the subject hash")
    (ca_dir / f"{subject_hash}.0").symlink_to(pem)
    async with tls_agent(ca, "127.0.0.1") as agent:
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_DIR=str(ca_dir),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        await exchange(agent, ExecutorConfig.from_environ(env))


def _subject_hash(cert_pem: str, tmp_path: pathlib.Path) -> str | None:
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    path = tmp_path / "hash-me.pem"
    path.write_text(cert_pem)
    result = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


async def test_legacy_scheme_checks_the_reverse_dns_name(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, reverse_dns: dict[str, str | None]
) -> None:
    # The default scheme is libprocess's "legacy": the name reverse DNS gives
    # for the agent's address must be in the certificate (not the IP itself).
    reverse_dns["127.0.0.1"] = "agent-7.example"
    async with tls_agent(ca, "agent-7.example") as agent:
        config = ExecutorConfig.from_environ(
            tls_environ(agent, tmp_path, LIBPROCESS_SSL_CA_FILE=files.ca(ca))
        )
        assert config.tls.hostname_validation_scheme == "legacy"
        assert config.tls.verify_server_cert is None  # unset: we verify anyway
        await exchange(agent, config)


async def test_legacy_scheme_with_verify_ipadd_accepts_an_ip_san(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, reverse_dns: dict[str, str | None]
) -> None:
    reverse_dns["127.0.0.1"] = None  # no PTR record
    async with tls_agent(ca, "127.0.0.1") as agent:
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_VERIFY_IPADD="true",
        )
        await exchange(agent, ExecutorConfig.from_environ(env))


@pytest.mark.parametrize(
    "variable",
    ["LIBPROCESS_SSL_VERIFY_SERVER_CERT", "LIBPROCESS_SSL_VERIFY_CERT", "SSL_VERIFY_CERT"],
)
async def test_verification_turned_off_by_the_variable_accepts_an_untrusted_cert(
    ca: trustme.CA, tmp_path: pathlib.Path, variable: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No CA given, a certificate for another host: only "off" lets this through.
    async with tls_agent(ca, "elsewhere.example") as agent:
        env = tls_environ(agent, tmp_path, **{variable: "false"})
        config = ExecutorConfig.from_environ(env)
        assert config.tls.verify_server_cert is False
        with caplog.at_level(logging.WARNING, logger="trio_mesos"):
            await exchange(agent, config)
    assert any("WITHOUT verifying" in r.getMessage() for r in caplog.records)


async def test_libprocess_default_ciphers_on_tls12_are_reachable(
    files: Files, tmp_path: pathlib.Path
) -> None:
    # An agent left at libprocess's defaults: TLS 1.2 only, its AES-CBC cipher
    # list, an RSA certificate. Python's default client list shares none of them.
    rsa_ca = trustme.CA(key_type=trustme.KeyType.RSA)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    rsa_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA).configure_cert(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(LIBPROCESS_CIPHERS)
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert not {c["name"] for c in plain.get_ciphers()} & set(LIBPROCESS_CIPHERS.split(":"))
    async with FakeAgent() as agent:
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(rsa_ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        await exchange(agent, ExecutorConfig.from_environ(env))


async def test_the_unix_socket_stays_plain_with_tls_enabled(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent:
        socket_path = str(tmp_path / "agent.sock")
        await agent.listen_unix(socket_path)
        config = ExecutorConfig.from_environ(
            {
                "MESOS_FRAMEWORK_ID": agent.framework_id,
                "MESOS_EXECUTOR_ID": agent.executor_id,
                "MESOS_SLAVE_ID": agent.agent_id,
                "MESOS_DOMAIN_SOCKET": socket_path,
                "MESOS_SLAVE_PID": "slave(1)@127.0.0.1:5051",
                "LIBPROCESS_SSL_ENABLED": "true",
                # Would fail at once if TLS were attempted:
                "LIBPROCESS_SSL_CA_FILE": str(tmp_path / "missing.pem"),
            }
        )
        assert config.tls.enabled and not config.use_tls
        await exchange(agent, config)
    assert {call.transport for call in agent.calls} == {"unix"}


# --------------------------------------------------------------------------
# Clear errors
# --------------------------------------------------------------------------


async def test_wrong_ca_names_the_variable_that_turns_verification_off(
    ca: trustme.CA, other_ca: trustme.CA, files: Files, tmp_path: pathlib.Path
) -> None:
    async with tls_agent(ca, "127.0.0.1") as agent:
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(other_ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        message = await refused(ExecutorConfig.from_environ(env))
    assert "LIBPROCESS_SSL_VERIFY_SERVER_CERT=false" in message
    assert "cannot verify the agent's certificate" in message
    assert "LIBPROCESS_SSL_CA_FILE" in message
    assert f"127.0.0.1:{agent.port}" in message
    assert agent.calls == []  # nothing was sent to an unverified peer


async def test_without_a_ca_the_system_store_is_used_and_the_error_says_so(
    ca: trustme.CA, tmp_path: pathlib.Path
) -> None:
    async with tls_agent(ca, "127.0.0.1") as agent:
        message = await refused(ExecutorConfig.from_environ(tls_environ(agent, tmp_path)))
    assert "system's trust store" in message
    assert "LIBPROCESS_SSL_VERIFY_SERVER_CERT=false" in message


async def test_wrong_host_openssl_scheme(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path
) -> None:
    async with tls_agent(ca, "agent-9.example") as agent:
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        message = await refused(ExecutorConfig.from_environ(env))
    assert "does not name 127.0.0.1" in message
    assert "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=openssl" in message
    assert "LIBPROCESS_SSL_VERIFY_SERVER_CERT=false" in message
    assert agent.calls == []


async def test_wrong_host_legacy_scheme(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, reverse_dns: dict[str, str | None]
) -> None:
    reverse_dns["127.0.0.1"] = "agent-7.example"
    async with FakeAgent() as agent:
        # Names the IP, but legacy only checks it with VERIFY_IPADD.
        context = server_context(ca, "agent-8.example", "127.0.0.1")
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(agent, tmp_path, LIBPROCESS_SSL_CA_FILE=files.ca(ca))
        message = await refused(ExecutorConfig.from_environ(env))
    assert "'agent-7.example' (reverse DNS of 127.0.0.1)" in message
    assert "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=legacy" in message
    assert "LIBPROCESS_SSL_VERIFY_SERVER_CERT=false" in message
    assert agent.calls == []


async def test_legacy_scheme_without_a_reverse_name_is_refused_clearly(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, reverse_dns: dict[str, str | None]
) -> None:
    reverse_dns["127.0.0.1"] = None
    async with tls_agent(ca, "127.0.0.1") as agent:
        env = tls_environ(agent, tmp_path, LIBPROCESS_SSL_CA_FILE=files.ca(ca))
        message = await refused(ExecutorConfig.from_environ(env))
    assert "reverse DNS has no name for the agent's address 127.0.0.1" in message
    assert "LIBPROCESS_SSL_VERIFY_IPADD=true" in message
    assert "LIBPROCESS_SSL_VERIFY_SERVER_CERT=false" in message


@pytest.mark.parametrize("tls12_only", [False, True], ids=["tls1.3", "tls1.2"])
async def test_client_certificate_required_works_with_cert_and_key_files(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, tls12_only: bool
) -> None:
    client_ca = trustme.CA()
    cert_file, key_file = files.client(client_ca)
    async with FakeAgent() as agent:
        context = server_context(ca, "127.0.0.1", client_ca=client_ca, tls12_only=tls12_only)
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
            LIBPROCESS_SSL_CERT_FILE=cert_file,
            LIBPROCESS_SSL_KEY_FILE=key_file,
        )
        await exchange(agent, ExecutorConfig.from_environ(env))


@pytest.mark.parametrize("tls12_only", [False, True], ids=["tls1.3", "tls1.2"])
async def test_client_certificate_required_fails_clearly_without_one(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path, tls12_only: bool
) -> None:
    client_ca = trustme.CA()
    async with FakeAgent() as agent:
        context = server_context(ca, "127.0.0.1", client_ca=client_ca, tls12_only=tls12_only)
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        message = await refused(ExecutorConfig.from_environ(env))
    assert "LIBPROCESS_SSL_CERT_FILE and LIBPROCESS_SSL_KEY_FILE" in message
    assert "TLS" in message
    assert agent.calls == []


async def test_client_certificate_from_an_untrusted_ca_is_refused_clearly(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path
) -> None:
    client_ca, stranger = trustme.CA(), trustme.CA()
    cert_file, key_file = files.client(stranger)
    async with FakeAgent() as agent:
        context = server_context(ca, "127.0.0.1", client_ca=client_ca)
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
            LIBPROCESS_SSL_CERT_FILE=cert_file,
            LIBPROCESS_SSL_KEY_FILE=key_file,
        )
        message = await refused(ExecutorConfig.from_environ(env))
    assert "refused this executor's client certificate" in message
    assert "LIBPROCESS_SSL_CERT_FILE" in message


async def test_tls_to_a_plain_http_agent_is_a_clear_error(
    tmp_path: pathlib.Path,
) -> None:
    async with FakeAgent() as agent:
        await agent.listen_tcp()
        env = tls_environ(agent, tmp_path, LIBPROCESS_SSL_VERIFY_SERVER_CERT="false")
        message = await refused(ExecutorConfig.from_environ(env))
    assert "TLS" in message
    assert "cannot connect to the agent" in message


async def test_a_peer_that_never_handshakes_is_bounded(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "CONNECT_TIMEOUT", 0.5)
    accepted: list[trio.SocketStream] = []

    async def silent(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        config = ExecutorConfig.from_environ(
            {
                "MESOS_FRAMEWORK_ID": "f",
                "MESOS_EXECUTOR_ID": "e",
                "MESOS_AGENT_ENDPOINT": f"127.0.0.1:{port}",
                "LIBPROCESS_SSL_ENABLED": "true",
                "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "false",
            }
        )
        start = trio.current_time()
        message = await refused(config)
        assert trio.current_time() - start < 10
        nursery.cancel_scope.cancel()
    assert accepted
    assert "not established within 0.5 s" in message


async def test_tls_survives_an_agent_restart(
    ca: trustme.CA, files: Files, tmp_path: pathlib.Path
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True) as agent:
        await agent.listen_tcp(ssl_context=server_context(ca, "127.0.0.1"))
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
            MESOS_SUBSCRIPTION_BACKOFF_MAX="100ms",
        )
        config = ExecutorConfig.from_environ(env)
        with trio.fail_after(LIMIT):
            async with trio_mesos.open_executor_driver(executor, config=config) as driver:
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
                await agent.restart(down=0.2, recovering=0.2)
                driver.send_status_update(status("t1", mesos_pb2.TASK_RUNNING))
                await executor.wait_for("reregistered")
                await agent.wait_for_update("t1", mesos_pb2.TASK_RUNNING)
    assert agent.subscriptions == 2
    assert {call.transport for call in agent.calls} == {"tls"}


# --------------------------------------------------------------------------
# Configuration errors (synchronous: the context is built before connecting)
# --------------------------------------------------------------------------


def _config(**tls: Any) -> ExecutorConfig:
    return ExecutorConfig(
        framework_id="f",
        executor_id="e",
        agent_host="127.0.0.1",
        agent_port=5051,
        tls=TLSConfig(enabled=True, **tls),
    )


def _problems(config: ExecutorConfig) -> Mapping[str, str]:
    with pytest.raises(ConfigError) as excinfo:
        default_open_stream(config)
    return dict(excinfo.value.problems)


def test_a_missing_ca_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    problems = _problems(_config(ca_file=str(tmp_path / "nope.pem")))
    assert "LIBPROCESS_SSL_CA_FILE" in problems
    assert "nope.pem" in problems["LIBPROCESS_SSL_CA_FILE"]


def test_a_ca_dir_that_is_no_directory_is_a_config_error(tmp_path: pathlib.Path) -> None:
    assert "LIBPROCESS_SSL_CA_DIR" in _problems(_config(ca_dir=str(tmp_path / "none")))


def test_garbage_in_the_ca_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    assert "LIBPROCESS_SSL_CA_FILE" in _problems(_config(ca_file=str(path)))


def test_key_without_cert_is_a_config_error(files: Files, ca: trustme.CA) -> None:
    _, key_file = files.client(ca)
    problems = _problems(_config(key_file=key_file))
    assert "without LIBPROCESS_SSL_CERT_FILE" in problems["LIBPROCESS_SSL_KEY_FILE"]


def test_a_key_that_does_not_match_is_a_config_error(files: Files, ca: trustme.CA) -> None:
    cert_file, _ = files.client(ca, "one")
    _, other_key = files.client(ca, "two")
    problems = _problems(_config(cert_file=cert_file, key_file=other_key))
    assert "LIBPROCESS_SSL_CERT_FILE / LIBPROCESS_SSL_KEY_FILE" in problems


def test_an_encrypted_key_is_refused_without_prompting(
    files: Files, ca: trustme.CA, tmp_path: pathlib.Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    cert_file, key_file = files.client(ca)
    key = serialization.load_pem_private_key(pathlib.Path(key_file).read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    path = tmp_path / "encrypted.key"
    path.write_bytes(encrypted)
    problems = _problems(_config(cert_file=cert_file, key_file=str(path)))
    assert "LIBPROCESS_SSL_CERT_FILE / LIBPROCESS_SSL_KEY_FILE" in problems


def test_a_cert_file_holding_the_key_needs_no_key_file(files: Files, ca: trustme.CA) -> None:
    cert_file, key_file = files.client(ca)
    combined = pathlib.Path(cert_file).with_suffix(".both")
    combined.write_bytes(pathlib.Path(key_file).read_bytes() + pathlib.Path(cert_file).read_bytes())
    tls_context(TLSConfig(enabled=True, cert_file=str(combined)))


def test_a_cipher_list_selecting_nothing_is_a_config_error() -> None:
    assert "LIBPROCESS_SSL_CIPHERS" in _problems(_config(ciphers="NO-SUCH-CIPHER"))


def test_the_cipher_variable_is_read_and_used() -> None:
    config = ExecutorConfig.from_environ(
        {
            "MESOS_FRAMEWORK_ID": "f",
            "MESOS_EXECUTOR_ID": "e",
            "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
            "LIBPROCESS_SSL_ENABLED": "1",
            "LIBPROCESS_SSL_CIPHERS": "ECDHE-RSA-AES128-GCM-SHA256",
        }
    )
    assert config.tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256"
    context = tls_context(config.tls)
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}


def test_verification_is_on_unless_explicitly_off() -> None:
    # Unset (None) verifies: stricter than libprocess, whose default is off.
    assert tls_context(TLSConfig(enabled=True)).verify_mode == ssl.CERT_REQUIRED
    assert tls_context(TLSConfig(enabled=True, verify_server_cert=True)).verify_mode == (
        ssl.CERT_REQUIRED
    )
    assert tls_context(TLSConfig(enabled=True, verify_server_cert=False)).verify_mode == (
        ssl.CERT_NONE
    )
    openssl = tls_context(TLSConfig(enabled=True, hostname_validation_scheme="openssl"))
    assert openssl.check_hostname
    # legacy checks the name itself, after the handshake
    assert not tls_context(TLSConfig(enabled=True)).check_hostname


def test_the_default_cipher_list_covers_libprocess_defaults_and_modern_suites() -> None:
    context = tls_context(TLSConfig(enabled=True))
    names = {c["name"] for c in context.get_ciphers()}
    assert {"AES128-SHA", "AES256-SHA", "DHE-RSA-AES128-SHA", "DHE-RSA-AES256-SHA"} <= names
    assert "ECDHE-RSA-AES128-GCM-SHA256" in names
    assert not any("RC4" in n or "NULL" in n or "MD5" in n for n in names)
    assert DEFAULT_CIPHERS.startswith("ECDH+AESGCM")
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


async def test_listen_tcp_refuses_a_second_different_ssl_context(ca: trustme.CA) -> None:
    async with FakeAgent() as agent:
        context = server_context(ca)
        port = await agent.listen_tcp(ssl_context=context)
        assert await agent.listen_tcp(ssl_context=context) == port
        with pytest.raises(RuntimeError, match="another ssl_context"):
            await agent.listen_tcp()
