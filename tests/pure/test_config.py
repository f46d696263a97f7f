"""Tests for trio_mesos._config: stout durations and ExecutorConfig.from_environ."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_mesos._config import (
    DEFAULT_RECOVERY_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE_PERIOD,
    DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
    ExecutorConfig,
    TLSConfig,
    format_duration,
    parse_duration,
)
from trio_mesos._errors import ConfigError

VECTORS = pathlib.Path(__file__).resolve().parents[1] / "data" / "vectors"
ENV_FILES = sorted(VECTORS.glob("*/*/executor-env.json"))

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJmaWQiOiJzM2NyM3QifQ.c2VjcmV0LXNpZ25hdHVyZQ"

# Copied from tests/data/vectors/json/recovery/executor-env.json (real 1.11 agent, checkpointing).
RECOVERY_ENV = {
    "MESOS_EXECUTOR_ID": "task-0",
    "MESOS_CHECKPOINT": "1",
    "MESOS_HTTP_COMMAND_EXECUTOR": "0",
    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
    "MESOS_SUBSCRIPTION_BACKOFF_MAX": "10secs",
    "LIBPROCESS_PORT": "0",
    "MESOS_AGENT_ENDPOINT": "127.0.0.1:35383",
    "MESOS_SANDBOX": "/var/tmp/sandbox/task-0",
    "MESOS_RECOVERY_TIMEOUT": "15mins",
    "MESOS_FRAMEWORK_ID": "08c52fad-3c13-48c4-a908-541f22930e59-0000",
    "MESOS_DIRECTORY": "/var/tmp/sandbox/task-0",
    "MESOS_SLAVE_ID": "08c52fad-3c13-48c4-a908-541f22930e59-S0",
    "MESOS_SLAVE_PID": "slave(1)@127.0.0.1:35383",
    "LIBPROCESS_IP": "127.0.0.1",
}

# Copied from tests/data/vectors/json/command-kill/executor-env.json (not checkpointing).
PLAIN_ENV = {
    "MESOS_EXECUTOR_ID": "task-1",
    "MESOS_CHECKPOINT": "0",
    "MESOS_HTTP_COMMAND_EXECUTOR": "0",
    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "4secs",
    "LIBPROCESS_PORT": "0",
    "MESOS_AGENT_ENDPOINT": "127.0.0.1:37369",
    "MESOS_SANDBOX": "/var/tmp/sandbox/task-1",
    "MESOS_FRAMEWORK_ID": "2bd96b90-c439-4d0d-829e-4659108be986-0000",
    "MESOS_DIRECTORY": "/var/tmp/sandbox/task-1",
    "MESOS_SLAVE_ID": "2bd96b90-c439-4d0d-829e-4659108be986-S0",
    "MESOS_SLAVE_PID": "slave(1)@127.0.0.1:37369",
    "LIBPROCESS_IP": "127.0.0.1",
}


def env(base: Mapping[str, str] = PLAIN_ENV, /, **changes: str | None) -> dict[str, str]:
    """A copy of `base` with variables set (str) or removed (None)."""
    result = dict(base)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def problems_of(environ: Mapping[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        ExecutorConfig.from_environ(environ)
    return info.value


# --- parse_duration / format_duration --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5secs", 5.0),
        ("1.5secs", 1.5),
        ("15mins", 900.0),
        ("250ms", 0.25),
        ("0ns", 0.0),
        ("2weeks", 1_209_600.0),
        ("10secs", 10.0),
        ("4secs", 4.0),
        ("1us", 1e-6),
        ("3hrs", 10_800.0),
        ("1days", 86_400.0),
        ("0.5mins", 30.0),
        (".5secs", 0.5),
        ("007secs", 7.0),
        ("1.5ns", 1e-9),  # stout truncates to whole nanoseconds
    ],
)
def test_parse_valid_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5", "missing unit"),
        ("5 secs", "whitespace"),
        ("-5secs", "sign"),
        ("+5secs", "sign"),
        ("5sec", "unknown unit 'sec'"),
        ("5SECS", "unknown unit 'SECS'"),
        ("1e3secs", "exponent"),
        ("", "empty"),
        ("secs", "missing number"),
        ("1.2.3secs", "malformed number"),
        (".secs", "malformed number"),
        ("99999999999weeks", "out of range"),
        ("9223372036854775808ns", "out of range"),
        ("5secs ", "unknown unit"),
        (" 5secs", "whitespace"),
        ("5secs5", "unknown unit"),
        ("1_000secs", "unknown unit"),
        ("\u0665secs", "missing number"),  # Arabic-Indic digit five
        ("infsecs", "missing number"),
    ],
)
def test_parse_invalid_durations(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration") as info:
        parse_duration(text)
    assert reason in str(info.value)
    assert repr(text) in str(info.value)


def test_largest_duration_parses_and_one_more_does_not() -> None:
    # 2**63 - 1 as a double is 2**63, which does not fit: stout's range.
    assert parse_duration("9223372036854774784ns") == 9223372036854774784 / 1e9
    with pytest.raises(ValueError, match="out of range"):
        parse_duration("15250.3weeks")
    assert parse_duration("15250weeks") == 15250 * 604_800.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5secs"),
        (60, "1mins"),
        (900, "15mins"),
        (90, "90secs"),
        (5400, "90mins"),
        (0.25, "250ms"),
        (0, "0ns"),
        (1.5, "1500ms"),
        (2, "2secs"),
        (10, "10secs"),
        (1e-9, "1ns"),
        (1.5e-6, "1500ns"),
        (2.5e-3, "2500us"),
        (86_400 * 10, "10days"),
        (604_800 * 2, "2weeks"),
        (604_800 * 1.5, "1.5weeks"),
        (3_600 * 36, "36hrs"),
        (1.0005, "1.0005secs"),
        (0.0015, "1500us"),
        (61.5, "1.025mins"),
        (1 / 3, "333.333333ms"),
        (-5, "-5secs"),
    ],
)
def test_format_like_stout(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 1e10, -1e10])
def test_format_rejects_unrepresentable(bad: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        format_duration(bad)


@given(nanos=st.integers(min_value=0, max_value=9 * 10**18))
def test_parse_inverts_format(nanos: int) -> None:
    seconds = nanos / 1e9
    text = format_duration(seconds)
    # 15 significant digits, then stout truncates to whole nanoseconds.
    assert math.isclose(parse_duration(text), seconds, rel_tol=1e-14, abs_tol=2e-9)


@given(
    count=st.integers(min_value=0, max_value=2**40),
    unit=st.sampled_from(
        [
            ("ns", 1),
            ("us", 10**3),
            ("ms", 10**6),
            ("secs", 10**9),
            ("mins", 60 * 10**9),
            ("hrs", 3600 * 10**9),
            ("days", 86400 * 10**9),
            ("weeks", 604800 * 10**9),
        ]
    ),
)
def test_parse_whole_counts_exactly(count: int, unit: tuple[str, int]) -> None:
    name, nanos = unit
    if count * nanos > 2**53:  # beyond exact float range; covered by the roundtrip test
        return
    assert parse_duration(f"{count}{name}") == count * nanos / 1e9


@given(st.text(max_size=30))
def test_parse_arbitrary_text_raises_only_value_error(text: str) -> None:
    seconds: float | None = None
    message = ""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        message = str(exc)
    if seconds is None:
        assert repr(text) in message
    else:
        assert seconds >= 0
        assert not any(c.isspace() or c in "+-eE_" for c in text)


# --- the real agent's environments -----------------------------------------------------


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_real_agent_environments_parse(path: pathlib.Path) -> None:
    environ = json.loads(path.read_text())
    config = ExecutorConfig.from_environ(environ)
    assert config.framework_id == environ["MESOS_FRAMEWORK_ID"]
    assert config.executor_id == environ["MESOS_EXECUTOR_ID"]
    assert config.agent_id == environ["MESOS_SLAVE_ID"]
    assert config.directory == environ["MESOS_DIRECTORY"]
    assert config.sandbox == environ["MESOS_SANDBOX"]
    host, port = environ["MESOS_AGENT_ENDPOINT"].split(":")
    assert (config.agent_host, config.agent_port) == (host, int(port))
    assert config.agent_pid == environ["MESOS_SLAVE_PID"]
    assert config.agent_path == "/slave(1)/api/v1/executor"
    assert config.agent_url() == f"http://{host}:{port}/slave(1)/api/v1/executor"
    assert config.checkpoint is (environ["MESOS_CHECKPOINT"] == "1")
    assert config.shutdown_grace_period == parse_duration(
        environ["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"]
    )
    if config.checkpoint:
        assert config.recovery_timeout == parse_duration(environ["MESOS_RECOVERY_TIMEOUT"])
        assert config.subscription_backoff_max == parse_duration(
            environ["MESOS_SUBSCRIPTION_BACKOFF_MAX"]
        )
    assert config.authentication_token is None
    assert config.domain_socket is None
    assert config.http_command_executor is False
    assert config.local is False
    assert config.tls == TLSConfig()
    assert config.use_tls is False


def test_real_vectors_cover_both_checkpoint_modes() -> None:
    if not ENV_FILES:
        pytest.skip("tests/data/vectors is not present")
    modes = {json.loads(p.read_text())["MESOS_CHECKPOINT"] for p in ENV_FILES}
    assert modes == {"0", "1"}


def test_real_checkpointing_environment_values() -> None:
    config = ExecutorConfig.from_environ(RECOVERY_ENV)
    assert config == ExecutorConfig(
        framework_id="08c52fad-3c13-48c4-a908-541f22930e59-0000",
        executor_id="task-0",
        agent_id="08c52fad-3c13-48c4-a908-541f22930e59-S0",
        directory="/var/tmp/sandbox/task-0",
        sandbox="/var/tmp/sandbox/task-0",
        agent_host="127.0.0.1",
        agent_port=35383,
        agent_path="/slave(1)/api/v1/executor",
        agent_pid="slave(1)@127.0.0.1:35383",
        checkpoint=True,
        recovery_timeout=900.0,
        subscription_backoff_max=10.0,
        shutdown_grace_period=5.0,
    )
    assert config.agent_url() == "http://127.0.0.1:35383/slave(1)/api/v1/executor"


def test_real_plain_environment_values() -> None:
    config = ExecutorConfig.from_environ(PLAIN_ENV)
    assert config.checkpoint is False
    assert config.shutdown_grace_period == 4.0
    assert config.recovery_timeout == DEFAULT_RECOVERY_TIMEOUT == 900.0
    assert config.subscription_backoff_max == DEFAULT_SUBSCRIPTION_BACKOFF_MAX == 2.0
    assert (config.agent_host, config.agent_port) == ("127.0.0.1", 37369)


def test_environ_is_not_modified() -> None:
    environ = env(MESOS_EXECUTOR_AUTHENTICATION_TOKEN=TOKEN)
    before = dict(environ)
    ExecutorConfig.from_environ(environ)
    assert environ == before


# --- the dataclass itself --------------------------------------------------------------


def test_direct_construction_defaults() -> None:
    config = ExecutorConfig(framework_id="f", executor_id="e")
    assert config.agent_id is None
    assert config.agent_host is None
    assert config.agent_port is None
    assert config.agent_path == "/api/v1/executor"
    assert config.checkpoint is False
    assert config.recovery_timeout == 900.0
    assert config.subscription_backoff_max == 2.0
    assert config.shutdown_grace_period == DEFAULT_SHUTDOWN_GRACE_PERIOD == 5.0
    assert config.authentication_token is None
    assert config.tls == TLSConfig()
    assert config.tls.verify_server_cert is None
    assert config.tls.hostname_validation_scheme == "legacy"
    with pytest.raises(ValueError, match="no agent address"):
        config.agent_url()


def test_config_is_frozen_slotted_and_keyword_only() -> None:
    config = ExecutorConfig(framework_id="f", executor_id="e")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.checkpoint = True  # type: ignore[misc]
    assert not hasattr(config, "__dict__")
    assert not hasattr(TLSConfig(), "__dict__")
    with pytest.raises(TypeError):
        ExecutorConfig("f", "e")  # type: ignore[misc]


# --- required ids ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"])
def test_required_ids_missing(name: str) -> None:
    error = problems_of(env(**{name: None}))
    assert error.variables == (name,)
    assert "not set" in str(error)


@pytest.mark.parametrize("name", ["MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"])
def test_required_ids_empty(name: str) -> None:
    assert problems_of(env(**{name: ""})).variables == (name,)


def test_optional_informational_variables() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_SLAVE_ID=None, MESOS_DIRECTORY=None, MESOS_SANDBOX=None)
    )
    assert (config.agent_id, config.directory, config.sandbox) == (None, None, None)


def test_sandbox_defaults_to_directory() -> None:
    config = ExecutorConfig.from_environ(env(MESOS_SANDBOX=None, MESOS_DIRECTORY="/host/dir"))
    assert config.sandbox == "/host/dir"
    config = ExecutorConfig.from_environ(env(MESOS_SANDBOX="/mnt/mesos/sandbox"))
    assert config.sandbox == "/mnt/mesos/sandbox"


# --- agent address ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "host", "port"),
    [
        ("10.0.0.1:5051", "10.0.0.1", 5051),
        ("[::1]:5051", "::1", 5051),
        ("[fe80::1%eth0]:5051", "fe80::1%eth0", 5051),
        ("[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1),
        ("[2001:db8:0:0:0:0:0:1]:65535", "2001:db8:0:0:0:0:0:1", 65535),
        ("agent-1.example.com:5051", "agent-1.example.com", 5051),
        ("1e100.net:5051", "1e100.net", 5051),
        ("0.0.0.0:5051", "0.0.0.0", 5051),
        ("255.255.255.255:5051", "255.255.255.255", 5051),
    ],
)
def test_agent_endpoint_valid(endpoint: str, host: str, port: int) -> None:
    config = ExecutorConfig.from_environ(env(MESOS_AGENT_ENDPOINT=endpoint, MESOS_SLAVE_PID=None))
    assert (config.agent_host, config.agent_port) == (host, port)
    assert config.agent_path == "/api/v1/executor"


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999999",
        "127.0.0.1:-1",
        "127.0.0.1:+5051",
        "127.0.0.1:http",
        "127.0.0.1: 5051",
        "127.0.0.1:\uff15\uff10\uff15\uff11",  # full-width digits
        ":5051",
        "::1:5051",
        "[::1]",
        "[::1]5051",
        "[::1:5051",
        "[zz::1]:5051",
        "[1:2:3:4:5:6:7:8:9]:5051",
        "[1::2::3]:5051",
        "[10.0.0.1]:5051",
        "host name:5051",
        "http://10.0.0.1:5051",
        # IPv4 literals getaddrinfo (inet_aton) would read otherwise than they look
        "010.0.0.1:5051",  # octal: 8.0.0.1
        "10.0.0.01:5051",
        "10.1:5051",  # 10.0.0.1
        "2130706433:5051",  # 127.0.0.1
        "0x7f.0.0.1:5051",
        "256.0.0.1:5051",
        "10.0.0.1.:5051",
        "[::ffff:010.0.0.1]:5051",
        "[fe80::1%]:5051",
    ],
)
def test_agent_endpoint_malformed(endpoint: str) -> None:
    error = problems_of(env(MESOS_AGENT_ENDPOINT=endpoint))
    assert error.variables == ("MESOS_AGENT_ENDPOINT",)
    assert repr(endpoint) in str(error)


@given(st.lists(st.integers(0, 255), min_size=4, max_size=4), st.integers(0, 3))
def test_ipv4_literals_are_strict_dotted_quads(octets: list[int], padded: int) -> None:
    address = ".".join(map(str, octets))
    config = ExecutorConfig.from_environ(env(MESOS_AGENT_ENDPOINT=f"{address}:5051"))
    assert config.agent_host == address
    # A leading zero makes inet_aton read the octet as octal: refused, never resolved.
    zero_padded = ".".join(f"0{o}" if i == padded else str(o) for i, o in enumerate(octets))
    error = problems_of(env(MESOS_AGENT_ENDPOINT=f"{zero_padded}:5051"))
    assert error.variables == ("MESOS_AGENT_ENDPOINT",)
    assert "not an IPv4 address" in str(error)


@pytest.mark.parametrize(
    "pid",
    [
        "",
        "127.0.0.1:5051",
        "@127.0.0.1:5051",
        "slave(1)@",
        "slave(1)@127.0.0.1",
        "slave(1)@127.0.0.1:99999",
        "slave(1)@127.0.0.1:0",
        "sla ve(1)@127.0.0.1:5051",
        "a/b@127.0.0.1:5051",
        "slave(1)@::1:5051",
        "slave(1)@010.0.0.1:5051",
    ],
)
def test_slave_pid_malformed(pid: str) -> None:
    error = problems_of(env(MESOS_SLAVE_PID=pid))
    assert error.variables == ("MESOS_SLAVE_PID",)
    assert repr(pid) in str(error)


def test_slave_pid_alone_gives_address_and_path() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_AGENT_ENDPOINT=None, MESOS_SLAVE_PID="slave(7)@10.0.0.1:5051")
    )
    assert (config.agent_host, config.agent_port) == ("10.0.0.1", 5051)
    assert config.agent_path == "/slave(7)/api/v1/executor"
    assert config.agent_url() == "http://10.0.0.1:5051/slave(7)/api/v1/executor"


def test_slave_pid_with_ipv6() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_AGENT_ENDPOINT=None, MESOS_SLAVE_PID="slave(1)@[::1]:5051")
    )
    assert (config.agent_host, config.agent_port) == ("::1", 5051)
    assert config.agent_url() == "http://[::1]:5051/slave(1)/api/v1/executor"


def test_endpoint_wins_for_address_pid_gives_path() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_AGENT_ENDPOINT="10.0.0.2:5052", MESOS_SLAVE_PID="slave(3)@10.0.0.1:5051")
    )
    assert (config.agent_host, config.agent_port) == ("10.0.0.2", 5052)
    assert config.agent_path == "/slave(3)/api/v1/executor"
    assert config.agent_pid == "slave(3)@10.0.0.1:5051"


def test_no_address_at_all_is_a_problem() -> None:
    error = problems_of(env(MESOS_AGENT_ENDPOINT=None, MESOS_SLAVE_PID=None))
    assert error.variables == ("MESOS_AGENT_ENDPOINT",)
    assert "MESOS_SLAVE_PID" in str(error)


def test_domain_socket_alone_uses_slave1_path() -> None:
    config = ExecutorConfig.from_environ(
        env(
            MESOS_AGENT_ENDPOINT=None,
            MESOS_SLAVE_PID=None,
            MESOS_DOMAIN_SOCKET="/var/run/mesos/executor.sock",
        )
    )
    assert config.domain_socket == "/var/run/mesos/executor.sock"
    assert config.agent_path == "/slave(1)/api/v1/executor"
    assert (config.agent_host, config.agent_port) == (None, None)
    assert config.agent_url() == (
        "http+unix://%2Fvar%2Frun%2Fmesos%2Fexecutor.sock/slave(1)/api/v1/executor"
    )


def test_domain_socket_with_pid_uses_pid_path() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_SLAVE_PID="slave(2)@127.0.0.1:5051", MESOS_DOMAIN_SOCKET="/tmp/a b.sock")
    )
    assert config.agent_path == "/slave(2)/api/v1/executor"
    assert config.agent_url() == "http+unix://%2Ftmp%2Fa%20b.sock/slave(2)/api/v1/executor"


def test_domain_socket_disables_tls() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_DOMAIN_SOCKET="/s.sock", LIBPROCESS_SSL_ENABLED="true")
    )
    assert config.tls.enabled is True
    assert config.use_tls is False
    assert config.agent_url().startswith("http+unix://")


@pytest.mark.parametrize("socket", ["", "/a\x00b"])
def test_domain_socket_malformed(socket: str) -> None:
    assert problems_of(env(MESOS_DOMAIN_SOCKET=socket)).variables == ("MESOS_DOMAIN_SOCKET",)


def test_agent_url_uses_https_with_tls() -> None:
    config = ExecutorConfig.from_environ(env(LIBPROCESS_SSL_ENABLED="1"))
    assert config.use_tls is True
    assert config.agent_url() == "https://127.0.0.1:37369/slave(1)/api/v1/executor"


def test_agent_url_quotes_ipv6_zone() -> None:
    config = ExecutorConfig(
        framework_id="f", executor_id="e", agent_host="fe80::1%eth0", agent_port=5051
    )
    assert config.agent_url() == "http://[fe80::1%25eth0]:5051/api/v1/executor"


# --- checkpointing and durations -------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "true", "True", "TRUE", "yes", "", "01", " 1", "1 ", None])
def test_checkpoint_off_unless_exactly_one(value: str | None) -> None:
    config = ExecutorConfig.from_environ(env(MESOS_CHECKPOINT=value))
    assert config.checkpoint is False


def test_checkpoint_on_with_one() -> None:
    config = ExecutorConfig.from_environ(env(RECOVERY_ENV, MESOS_CHECKPOINT="1"))
    assert config.checkpoint is True


@given(st.text(max_size=5))
def test_checkpoint_is_exactly_string_one(value: str) -> None:
    config = ExecutorConfig.from_environ(env(RECOVERY_ENV, MESOS_CHECKPOINT=value))
    assert config.checkpoint is (value == "1")


def test_checkpointing_requires_both_durations_in_one_error() -> None:
    error = problems_of(
        env(
            RECOVERY_ENV,
            MESOS_RECOVERY_TIMEOUT=None,
            MESOS_SUBSCRIPTION_BACKOFF_MAX=None,
        )
    )
    assert set(error.variables) == {"MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX"}
    assert len(error.problems) == 2
    assert "MESOS_CHECKPOINT" in str(error)


@pytest.mark.parametrize("name", ["MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX"])
def test_checkpointing_requires_each_duration(name: str) -> None:
    assert problems_of(env(RECOVERY_ENV, **{name: None})).variables == (name,)


def test_durations_optional_without_checkpointing() -> None:
    config = ExecutorConfig.from_environ(
        env(MESOS_RECOVERY_TIMEOUT="30secs", MESOS_SUBSCRIPTION_BACKOFF_MAX="250ms")
    )
    assert config.recovery_timeout == 30.0
    assert config.subscription_backoff_max == 0.25


@pytest.mark.parametrize(
    "name",
    [
        "MESOS_RECOVERY_TIMEOUT",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
    ],
)
@pytest.mark.parametrize("base", [PLAIN_ENV, RECOVERY_ENV], ids=["plain", "checkpoint"])
@pytest.mark.parametrize("bad", ["5", "5 secs", "-5secs", "5sec", "", "99999999999weeks"])
def test_malformed_durations(name: str, base: Mapping[str, str], bad: str) -> None:
    error = problems_of(env(base, **{name: bad}))
    assert error.variables == (name,)
    assert repr(bad) in str(error)


def test_shutdown_grace_period_default() -> None:
    config = ExecutorConfig.from_environ(env(MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=None))
    assert config.shutdown_grace_period == 5.0
    config = ExecutorConfig.from_environ(env(MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD="1.5mins"))
    assert config.shutdown_grace_period == 90.0


# --- flags -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("0", False), ("true", False), ("", False), (None, False)],
)
def test_http_command_executor(value: str | None, expected: bool) -> None:
    config = ExecutorConfig.from_environ(env(MESOS_HTTP_COMMAND_EXECUTOR=value))
    assert config.http_command_executor is expected


@pytest.mark.parametrize(
    ("value", "expected"), [("", True), ("1", True), ("0", True), (None, False)]
)
def test_local_is_presence(value: str | None, expected: bool) -> None:
    assert ExecutorConfig.from_environ(env(MESOS_LOCAL=value)).local is expected


# --- the authentication token ----------------------------------------------------------


def test_token_is_read_but_never_shown() -> None:
    config = ExecutorConfig.from_environ(env(MESOS_EXECUTOR_AUTHENTICATION_TOKEN=TOKEN))
    assert config.authentication_token == TOKEN
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    assert "authentication_token" not in repr(config)
    assert TOKEN not in config.agent_url()


def test_empty_token_means_none() -> None:
    config = ExecutorConfig.from_environ(env(MESOS_EXECUTOR_AUTHENTICATION_TOKEN=""))
    assert config.authentication_token is None


def test_token_not_in_errors_even_when_echoed_elsewhere() -> None:
    error = problems_of(
        env(
            MESOS_EXECUTOR_AUTHENTICATION_TOKEN=TOKEN,
            MESOS_EXECUTOR_ID=None,
            MESOS_RECOVERY_TIMEOUT=TOKEN,  # a misconfigured agent copying the secret
            MESOS_AGENT_ENDPOINT=TOKEN,
        )
    )
    assert set(error.variables) == {
        "MESOS_EXECUTOR_ID",
        "MESOS_RECOVERY_TIMEOUT",
        "MESOS_AGENT_ENDPOINT",
    }
    for text in (str(error), repr(error), repr(error.args), repr(error.problems)):
        assert TOKEN not in text
    assert "<redacted>" in str(error)


@pytest.mark.parametrize("token", ["abc def", "abc\n", "t\u00f6ken", "\x00abc"])
def test_token_unusable_in_header_is_a_problem_without_its_value(token: str) -> None:
    error = problems_of(env(MESOS_EXECUTOR_AUTHENTICATION_TOKEN=token))
    assert error.variables == ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN",)
    assert token not in str(error)
    assert repr(token) not in str(error)


# --- TLS -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("", True),  # stout's flag loader reads an empty boolean as true
        ("false", False),
        ("FALSE", False),
        ("0", False),
    ],
)
def test_tls_enabled_booleans(value: str, expected: bool) -> None:
    config = ExecutorConfig.from_environ(env(LIBPROCESS_SSL_ENABLED=value))
    assert config.tls.enabled is expected
    assert config.use_tls is expected


@pytest.mark.parametrize("name", ["ENABLED", "VERIFY_SERVER_CERT", "VERIFY_CERT"])
@pytest.mark.parametrize("prefix", ["LIBPROCESS_SSL_", "SSL_"])
@pytest.mark.parametrize("bad", ["yes", "no", "2", "on", " true"])
def test_tls_malformed_booleans(name: str, prefix: str, bad: str) -> None:
    error = problems_of(env(**{prefix + name: bad}))
    assert error.variables == (prefix + name,)
    assert repr(bad) in str(error)


def test_tls_deprecated_prefix_and_precedence() -> None:
    assert ExecutorConfig.from_environ(env(SSL_ENABLED="true")).tls.enabled is True
    config = ExecutorConfig.from_environ(
        env(LIBPROCESS_SSL_ENABLED="false", SSL_ENABLED="true", SSL_CA_FILE="/old/ca.pem")
    )
    assert config.tls.enabled is False
    assert config.tls.ca_file == "/old/ca.pem"
    config = ExecutorConfig.from_environ(
        env(LIBPROCESS_SSL_CA_FILE="/new/ca.pem", SSL_CA_FILE="/old/ca.pem")
    )
    assert config.tls.ca_file == "/new/ca.pem"
    # A shadowed SSL_ value is never read, so it cannot be malformed.
    config = ExecutorConfig.from_environ(env(LIBPROCESS_SSL_ENABLED="1", SSL_ENABLED="bogus"))
    assert config.tls.enabled is True


def test_tls_paths() -> None:
    config = ExecutorConfig.from_environ(
        env(
            LIBPROCESS_SSL_ENABLED="true",
            LIBPROCESS_SSL_CERT_FILE="/etc/ssl/cert.pem",
            LIBPROCESS_SSL_KEY_FILE="/etc/ssl/key.pem",
            LIBPROCESS_SSL_CA_FILE="/etc/ssl/ca.pem",
            SSL_CA_DIR="/etc/ssl/certs",
        )
    )
    assert config.tls == TLSConfig(
        enabled=True,
        cert_file="/etc/ssl/cert.pem",
        key_file="/etc/ssl/key.pem",
        ca_file="/etc/ssl/ca.pem",
        ca_dir="/etc/ssl/certs",
    )


@pytest.mark.parametrize("name", ["CERT_FILE", "KEY_FILE", "CA_FILE", "CA_DIR"])
def test_tls_empty_path_is_a_problem(name: str) -> None:
    variable = "LIBPROCESS_SSL_" + name
    assert problems_of(env(**{variable: ""})).variables == (variable,)


@pytest.mark.parametrize(
    ("variables", "verify", "require"),
    [
        ({}, None, False),
        ({"LIBPROCESS_SSL_VERIFY_SERVER_CERT": "false"}, False, False),
        ({"LIBPROCESS_SSL_VERIFY_SERVER_CERT": "true"}, True, False),
        ({"LIBPROCESS_SSL_VERIFY_CERT": "1"}, True, False),
        ({"SSL_VERIFY_CERT": "0"}, False, False),
        ({"LIBPROCESS_SSL_VERIFY_SERVER_CERT": "false", "SSL_VERIFY_CERT": "true"}, True, False),
        ({"LIBPROCESS_SSL_REQUIRE_CLIENT_CERT": "true"}, True, True),
        ({"LIBPROCESS_SSL_REQUIRE_CERT": "true"}, True, True),
        (
            {"LIBPROCESS_SSL_REQUIRE_CERT": "true", "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "0"},
            True,
            True,
        ),
        ({"LIBPROCESS_SSL_REQUIRE_CLIENT_CERT": "false"}, None, False),
    ],
)
def test_tls_verification_rules(
    variables: dict[str, str], verify: bool | None, require: bool
) -> None:
    config = ExecutorConfig.from_environ(env(**variables))
    assert config.tls.verify_server_cert is verify
    assert config.tls.require_client_cert is require


@pytest.mark.parametrize("scheme", ["legacy", "openssl"])
def test_tls_hostname_validation_scheme(scheme: str) -> None:
    config = ExecutorConfig.from_environ(env(SSL_HOSTNAME_VALIDATION_SCHEME=scheme))
    assert config.tls.hostname_validation_scheme == scheme


@pytest.mark.parametrize("scheme", ["", "OpenSSL", "strict", "legacy "])
def test_tls_hostname_validation_scheme_malformed(scheme: str) -> None:
    error = problems_of(env(LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=scheme))
    assert error.variables == ("LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME",)


def test_tls_verify_ipadd() -> None:
    assert ExecutorConfig.from_environ(env(LIBPROCESS_SSL_VERIFY_IPADD="1")).tls.verify_ipadd
    assert not ExecutorConfig.from_environ(env()).tls.verify_ipadd


# --- many problems at once -------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "MESOS_CHECKPOINT": "1",
        "MESOS_AGENT_ENDPOINT": "nowhere",
        "MESOS_SLAVE_PID": "slave(1)",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5",
        "MESOS_DOMAIN_SOCKET": "",
        "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": TOKEN,
        "LIBPROCESS_SSL_ENABLED": "maybe",
        "SSL_VERIFY_CERT": "sure",
        "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME": "none",
        "LIBPROCESS_SSL_KEY_FILE": "",
    }
    error = problems_of(environ)
    assert set(error.variables) == {
        "MESOS_FRAMEWORK_ID",
        "MESOS_EXECUTOR_ID",
        "MESOS_AGENT_ENDPOINT",
        "MESOS_SLAVE_PID",
        "MESOS_RECOVERY_TIMEOUT",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
        "MESOS_DOMAIN_SOCKET",
        "LIBPROCESS_SSL_ENABLED",
        "SSL_VERIFY_CERT",
        "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME",
        "LIBPROCESS_SSL_KEY_FILE",
    }
    assert len(error.problems) == len(set(error.variables))
    message = str(error)
    assert "12 problems" in message
    for name in error.variables:
        assert name in message
    assert TOKEN not in message


_VARIABLES = [
    "MESOS_FRAMEWORK_ID",
    "MESOS_EXECUTOR_ID",
    "MESOS_SLAVE_ID",
    "MESOS_DIRECTORY",
    "MESOS_SANDBOX",
    "MESOS_AGENT_ENDPOINT",
    "MESOS_SLAVE_PID",
    "MESOS_CHECKPOINT",
    "MESOS_RECOVERY_TIMEOUT",
    "MESOS_SUBSCRIPTION_BACKOFF_MAX",
    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
    "MESOS_DOMAIN_SOCKET",
    "MESOS_HTTP_COMMAND_EXECUTOR",
    "MESOS_LOCAL",
    "LIBPROCESS_SSL_ENABLED",
    "SSL_ENABLED",
    "LIBPROCESS_SSL_VERIFY_SERVER_CERT",
    "SSL_REQUIRE_CERT",
    "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME",
    "LIBPROCESS_SSL_CA_FILE",
]
_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["1", "0", "true", "5secs", "15mins", "10.0.0.1:5051", "slave(1)@[::1]:1"]),
)


@given(
    base=st.sampled_from([PLAIN_ENV, RECOVERY_ENV, {}]),
    changes=st.dictionaries(st.sampled_from(_VARIABLES), st.one_of(st.none(), _VALUES)),
    # Marked with "~~" so it cannot be a piece of any other text in a message or
    # repr (a bare word such as "recovery_timeout" is a field name there).
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=14, max_size=38).map(
        lambda text: "~~" + text
    ),
)
def test_any_environment_gives_a_config_or_one_config_error(
    base: Mapping[str, str], changes: dict[str, str | None], token: str
) -> None:
    environ = env(base, MESOS_EXECUTOR_AUTHENTICATION_TOKEN=token, **changes)
    config: ExecutorConfig | None = None
    error: ConfigError | None = None
    try:
        config = ExecutorConfig.from_environ(environ)
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert error.problems
        assert token not in str(error)
        assert set(error.variables) <= set(environ) | {
            "MESOS_FRAMEWORK_ID",
            "MESOS_EXECUTOR_ID",
            "MESOS_AGENT_ENDPOINT",
            "MESOS_RECOVERY_TIMEOUT",
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
        }
    else:
        # A config that came out holds what the environment says.
        assert config is not None
        assert config.framework_id == environ["MESOS_FRAMEWORK_ID"]
        assert config.executor_id == environ["MESOS_EXECUTOR_ID"]
        assert config.authentication_token == token
        assert config.checkpoint == (environ.get("MESOS_CHECKPOINT") == "1")
        assert config.domain_socket == environ.get("MESOS_DOMAIN_SOCKET")
        assert token not in repr(config)
        assert token not in repr(config)
        assert config.authentication_token == token
        assert config.checkpoint is (environ.get("MESOS_CHECKPOINT") == "1")
        assert config.framework_id == environ["MESOS_FRAMEWORK_ID"]
        if config.domain_socket is None:
            assert config.agent_url().startswith(("http://", "https://"))
