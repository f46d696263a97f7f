"""The ``trio-mesos`` command (also ``python -m trio_mesos``).

Subcommands:

``trio-mesos demo [--plain] [--timeout S]``
    the command executor at work against the fake agent (:mod:`trio_mesos.demo`);
    what ``make demo`` runs.
``trio-mesos fake-agent [options] -- EXECUTOR ARGV...``
    run any executor program against the fake agent and print the conversation
    (the same as ``python -m trio_mesos.testing``; ``trio-mesos fake-agent --help``).
``trio-mesos executor [options]``
    the command executor (the same as ``trio-mesos-executor`` and
    ``python -m trio_mesos.command_executor``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("trio_mesos.demo", "run the command executor against a fake agent, live"),
    "fake-agent": (
        "trio_mesos.testing.__main__",
        "run an executor program against a fake agent and print every call and event",
    ),
    "executor": ("trio_mesos.command_executor", "the command executor (trio-mesos-executor)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-mesos",
        description="trio_mesos tools: a Trio-native Mesos executor driver.",
        epilog="Run 'trio-mesos COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "command", nargs="?", choices=sorted(_SUBCOMMANDS), help="; ".join(
            f"{name}: {help_text}" for name, (_, help_text) in sorted(_SUBCOMMANDS.items())
        )
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trio-mesos``; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"trio-mesos {__version__}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    module_name, _ = _SUBCOMMANDS[args.command]
    module = importlib.import_module(module_name)
    run: Callable[[Sequence[str]], int] = module.main
    return run(list(args.args))
