"""Driver calls from any thread: the hop onto the driver's trio thread.

Part of the driver's shell (see :mod:`._driver`). The synchronous driver
methods (``start``, ``stop``, ``abort``, ``send_status_update``,
``send_framework_message``) touch state that only the driver's trio thread
may touch. Called from another thread (a ``threading.Thread``, a
``trio.to_thread`` worker, another trio run), they hop over: the call is run
on the driver's thread with :meth:`trio.lowlevel.TrioToken.run_sync_soon`
and the calling thread waits for its result. Waiting keeps what the methods
promise: the same return value as on the trio thread, the same exceptions
(``LocalProtocolError`` is raised in the caller), and calls queued in the
order each thread made them (a thread's next call starts after its previous
one was queued). The wait is short: the trio thread runs the call at its next
scheduling point, and the call itself never blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

__all__ = ["HomeThread"]

T = TypeVar("T")


class _Result(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class HomeThread:
    """The trio thread an object lives on; created on that thread, inside ``trio.run``."""

    __slots__ = ("ident", "token")

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.ident = threading.get_ident()

    def elsewhere(self) -> bool:
        """The calling thread is not the home thread."""
        return threading.get_ident() != self.ident

    def call(self, fn: Callable[[], T], finished: Callable[[], T]) -> T:
        """Run ``fn()`` on the home thread and return (or raise) what it did.

        Blocks the calling thread until the home thread ran it. Once the trio
        run has finished, returns ``finished()`` (evaluated here) instead.
        """
        result: _Result[T] = _Result()

        def run() -> None:
            try:
                result.value = fn()
            except BaseException as exc:  # handed to the caller, raised there
                result.error = exc
            finally:
                result.done.set()

        try:
            self.token.run_sync_soon(run)
        except trio.RunFinishedError:
            return finished()
        result.done.wait()
        if result.error is not None:
            try:
                raise result.error
            finally:
                del result
        return result.value  # type: ignore[return-value]  # set when no error
