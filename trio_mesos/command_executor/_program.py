"""The ``trio-mesos-executor`` program: command line, signals, exit status."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Final

import trio

import trio_mesos

from ._executor import DEFAULT_TERMINAL_ACK_TIMEOUT, CommandExecutor
from ._launch import TOKEN_VARIABLE, LaunchFlagError, add_launch_flags, launch_flags_from_args
from ._processes import ProcessKeeper, set_child_subreaper

__all__ = ["EXIT_ABORTED", "EXIT_OK", "EXIT_USAGE", "main", "serve"]

log = logging.getLogger("trio_mesos.command_executor")

EXIT_OK: Final = 0
EXIT_ABORTED: Final = 1
EXIT_USAGE: Final = 2
#: How often re-parented orphans are reaped.
REAP_INTERVAL: Final = 1.0
PROGRAM: Final = "trio-mesos-executor"
#: Environment variable that turns stall detection on (seconds), as
#: ``--stream-idle-timeout`` does.
STALL_VARIABLE: Final = "TRIO_MESOS_STREAM_IDLE_TIMEOUT"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "A Mesos command and default executor on trio_mesos: runs each task's "
            "CommandInfo (LAUNCH or LAUNCH_GROUP), with health checks, checks and "
            "max_completion_time; reports its states, honours KILL and SHUTDOWN. Reads its "
            "configuration from the MESOS_* environment the agent provides."
        ),
    )
    parser.add_argument(
        "--echo-messages",
        action="store_true",
        help="send every framework message back to the framework (a diagnostic)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--exit-when-done",
        dest="exit_when_done",
        action="store_const",
        const=True,
        default=None,
        help="exit once every task is done and acknowledged (default: as Mesos's command "
        "and default executors do; a custom executor stays up)",
    )
    when.add_argument(
        "--stay-up",
        dest="exit_when_done",
        action="store_const",
        const=False,
        help="never exit by itself; only SHUTDOWN or the loss of the agent end it",
    )
    parser.add_argument(
        "--terminal-ack-timeout",
        type=float,
        default=DEFAULT_TERMINAL_ACK_TIMEOUT,
        metavar="SECONDS",
        help="when exiting by itself, exit this long after the last terminal update even "
        "if the agent never acknowledges it (default: %(default)g, as Mesos)",
    )
    parser.add_argument(
        "--stream-idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="count the agent's event stream as lost after this long without a byte "
        f"(stall detection; default: ${STALL_VARIABLE}, else off). The agent sends a "
        "HEARTBEAT event every 30 minutes, so use more than 1800 (e.g. 2700)",
    )
    parser.add_argument(
        "--keep-group-running",
        action="store_true",
        help="when a task of a group fails or is killed, let the others run (Mesos's "
        "default executor kills them; the realmesos conformance suite expects them to run)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    add_launch_flags(parser)
    return parser


async def serve(
    executor: CommandExecutor,
    config: trio_mesos.ExecutorConfig,
    stream_idle_timeout: float | None = None,
) -> tuple[trio_mesos.Status, BaseException | None]:
    """Run ``executor`` until the driver ends; return its final status and error.

    SIGTERM and SIGINT kill the tasks (as SHUTDOWN does) and then stop the
    driver; a second signal aborts it. Orphans re-parented to this process are
    reaped meanwhile.

    Raises:
        AgentUnavailableError: the agent could not be reached or refused SUBSCRIBE.
        ConfigError: a setting is unusable (e.g. a TLS file).
    """
    async with trio_mesos.open_executor_driver(
        executor, config=config, stream_idle_timeout=stream_idle_timeout
    ) as driver:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_handle_signals, executor, driver)
            nursery.start_soon(_reap_orphans, executor.keeper)
            status = await driver.join()
            nursery.cancel_scope.cancel()
    return status, driver.error


async def _reap_orphans(keeper: ProcessKeeper) -> None:
    while True:
        keeper.reap_orphans()
        await trio.sleep(REAP_INTERVAL)


async def _handle_signals(executor: CommandExecutor, driver: trio_mesos.ExecutorDriver) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.warning("%s: killing the tasks, then exiting", signal.Signals(signum).name)
            executor.begin_termination(driver)
            break
        async with trio.open_nursery() as nursery:

            async def stop_when_done() -> None:
                await executor.wait_tasks_done()
                driver.stop()

            nursery.start_soon(stop_when_done)
            async for signum in signals:
                log.warning("%s again: aborting", signal.Signals(signum).name)
                driver.abort()
                break


def _config_error(exc: BaseException) -> trio_mesos.ConfigError | None:
    """The ConfigError in ``exc`` (itself, or the only one of a group), if any."""
    if isinstance(exc, trio_mesos.ConfigError):
        return exc
    for inner in getattr(exc, "exceptions", ()):  # an exception group (3.10: the backport)
        found = _config_error(inner)
        if found is not None:
            return found
    return None


def _error(text: str) -> None:
    """One line on stderr (a ConfigError's problems, one per line, joined with ``; ``)."""
    head, *rest = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    print(f"{PROGRAM}: {head}{': ' if rest else ''}{'; '.join(rest)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``trio-mesos-executor`` program; returns the exit status.

    Every configuration error (environment, launch flags, a TLS file found
    unusable only when the connection is made) ends it with one line on
    stderr and status 2.
    """
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s",
    )
    for extra in unknown:
        log.warning("ignoring unknown argument %r", extra)
    try:
        config = trio_mesos.ExecutorConfig.from_environ(os.environ)
        flags = launch_flags_from_args(args)
    except (trio_mesos.ConfigError, LaunchFlagError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    if not args.terminal_ack_timeout >= 0:
        _error("--terminal-ack-timeout must be >= 0")
        return EXIT_USAGE
    idle = args.stream_idle_timeout
    if idle is None and os.environ.get(STALL_VARIABLE, "").strip():
        try:
            idle = float(os.environ[STALL_VARIABLE])
        except ValueError:
            _error(f"{STALL_VARIABLE}: not a number of seconds: {os.environ[STALL_VARIABLE]!r}")
            return EXIT_USAGE
    if idle is not None and not idle > 0:
        _error("the stream idle timeout must be > 0 seconds")
        return EXIT_USAGE
    # The tasks must not inherit the secret (the C++ library does the same).
    os.environ.pop(TOKEN_VARIABLE, None)
    if not set_child_subreaper():
        log.info("not a child subreaper (not Linux): orphans of tasks are not tracked")
    executor = CommandExecutor(
        echo_messages=args.echo_messages,
        exit_when_done=args.exit_when_done,
        environ=dict(os.environ),
        launch_flags=flags,
        terminal_ack_timeout=args.terminal_ack_timeout,
        keeper=ProcessKeeper(reap_orphans=True),
        kill_group_on_failure=not args.keep_group_running,
    )
    log.info(
        "%s %s: executor %s of framework %s, agent at %s",
        PROGRAM,
        trio_mesos.__version__,
        config.executor_id,
        config.framework_id,
        config.agent_url(),
    )
    try:
        status, error = trio.run(serve, executor, config, idle)
    except trio_mesos.AgentUnavailableError as exc:
        _error(f"cannot work with the agent: {exc}")
        return EXIT_ABORTED
    except BaseException as exc:
        found = _config_error(exc)
        if found is None:
            raise
        _error(str(found))
        return EXIT_USAGE
    if executor.exit_status is not None:
        if executor.exit_message:
            _error(executor.exit_message)
        return executor.exit_status
    if status is trio_mesos.Status.DRIVER_STOPPED:
        return EXIT_OK
    reason = f": {error}" if error is not None else ""
    _error(f"the executor driver aborted{reason}")
    return EXIT_ABORTED
