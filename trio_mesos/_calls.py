"""The call task: UPDATE, MESSAGE and HEARTBEAT calls, pipelined on their own connection.

Part of the driver's shell (see :mod:`._driver`). While the session is
subscribed (:meth:`CallSender.go_live`), it opens a keep-alive connection to
the agent and writes calls ahead of their answers (HTTP/1.1 pipelining, as
Mesos's C++ executor library does), up to ``MAX_CALLS_IN_FLIGHT``:

* updates first, oldest first, per task only the oldest one not yet accepted
  (``AckLedger.sendable``), each until its 2xx: a task's updates reach the
  agent in the order they were made;
* then framework messages, in the order they were made, one at a time (a
  message answered "retry" is never overtaken by the next);
* then a due HEARTBEAT.

What an answer means comes from one table (:func:`._answers.classify`).
Retry timing is per call: a call answered "retry" (503, say) waits its own
backoff before the pipeline writes again, and only that call's acceptance
resets it (a HEARTBEAT's 202 does not shorten an UPDATE's backoff).

A MESSAGE is sent at most once: answered "retry" it goes back to its place
in the queue (the agent did not take it); in flight when the connection
breaks it is dropped (the agent may have taken it), and its waiter gets
:exc:`~trio_mesos.AgentUnavailableError`. Updates in flight when the
connection breaks go back to the ledger's queue (the agent deduplicates them
by uuid, and the ledger never sends one again once accepted).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final

import trio

from ._acks import AckLedger
from ._answers import Verdict, classify
from ._backoff import Backoff
from ._dispatch import Waiter, Waiters
from ._errors import (
    AgentUnavailableError,
    CallRejectedError,
    MessageQueueFullError,
    RemoteProtocolError,
)
from ._http import CallPipeline, Response, TransportError
from ._messages import (
    ContentType,
    encode_message,
    encode_update_call,
    heartbeat_call,
    message_call,
)
from ._transport import OpenStream

__all__ = ["MAX_CALLS_IN_FLIGHT", "MESSAGE_QUEUE_SIZE", "CallSender"]

log: Final = logging.getLogger("trio_mesos.driver")

#: Framework messages waiting to be sent. A message that does not fit is
#: refused (``message()`` raises MessageQueueFullError); the queued ones keep
#: their place and order.
MESSAGE_QUEUE_SIZE: Final = 1024
#: Calls written on the call connection whose answer has not been read yet.
#: Bounds the memory and the work redone when the connection breaks; per task
#: at most one UPDATE is among them (the ledger's order rule).
MAX_CALLS_IN_FLIGHT: Final = 64

_UPDATE: Final = "UPDATE"
_MESSAGE: Final = "MESSAGE"
_HEARTBEAT: Final = "HEARTBEAT"


class _Message:
    __slots__ = ("data", "seq", "waiter")

    def __init__(self, data: bytes, seq: int, waiter: Waiter | None) -> None:
        self.data = data
        self.seq = seq
        self.waiter = waiter


class _Call:
    """A call written (or about to be) on the call connection."""

    __slots__ = ("body", "ref", "what")

    def __init__(self, what: str, body: bytes, ref: object) -> None:
        self.what = what  # _UPDATE, _MESSAGE or _HEARTBEAT
        self.body = body
        self.ref = ref  # UPDATE: the uuid; MESSAGE: the _Message; HEARTBEAT: None


class _Pipeline:
    """The state of one pipeline on one call connection."""

    __slots__ = (
        "failed",
        "generation",
        "heartbeat_in_flight",
        "in_flight",
        "message_in_flight",
        "scope",
        "sent",
    )

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.in_flight: deque[_Call] = deque()
        self.sent = trio.Event()
        self.heartbeat_in_flight = False
        self.message_in_flight = False
        self.failed = False
        self.scope = trio.CancelScope()


class CallSender:
    """Sends the ledger's updates, framework messages and heartbeats.

    Args:
        ledger: the acknowledgement ledger (updates come from it; accepted
            ones are marked in it).
        waiters: outcomes to settle as answers arrive.
        open_stream: opens a new connection to the agent.
        make_pipeline: wraps a stream into a :class:`CallPipeline`.
        content_type: the encoding of calls.
        framework_id, executor_id: the ids every call carries.
        new_backoff: a fresh backoff (connection failures; each retried call).
        call_timeout: seconds the agent has to answer a call completely.
        heartbeat_interval: seconds between HEARTBEAT calls.
        redact: removes secrets from text the agent sent (a proxy may echo
            our headers).
        on_refused: called with the text of a call refused for good (the
            driver runs the ``error`` callback with it).
        on_answer: called after each answer was applied.
    """

    def __init__(
        self,
        *,
        ledger: AckLedger,
        waiters: Waiters,
        open_stream: OpenStream,
        make_pipeline: Callable[[trio.abc.Stream], CallPipeline],
        content_type: ContentType,
        framework_id: str,
        executor_id: str,
        new_backoff: Callable[[], Backoff],
        call_timeout: float,
        heartbeat_interval: float,
        redact: Callable[[str], str],
        on_refused: Callable[[str], None],
        on_answer: Callable[[], None],
    ) -> None:
        self._ledger = ledger
        self._waiters = waiters
        self._open_stream = open_stream
        self._make_pipeline = make_pipeline
        self._content_type = content_type
        self._ids = (framework_id, executor_id)
        self._new_backoff = new_backoff
        self._call_timeout = call_timeout
        self._heartbeat_interval = heartbeat_interval
        self._redact = redact
        self._on_refused = on_refused
        self._on_answer = on_answer
        self._messages: deque[_Message] = deque()
        self._seq = itertools.count()
        self._wakeup = trio.Event()
        self._retry_backoffs: dict[object, Backoff] = {}
        self._resume_at = -math.inf
        #: Calls may go out (subscribed on the current stream).
        self.live = False
        self._generation = 0
        self._next_heartbeat = math.inf
        #: UPDATE calls the agent accepted.
        self.updates_accepted = 0

    # -- the driver's side -----------------------------------------------------

    def go_live(self, now: float) -> None:
        """Subscribed (or SHUTDOWN came first): calls may go out."""
        self.live = True
        self._next_heartbeat = now + self._heartbeat_interval
        self.wake()

    def go_down(self, why: str) -> None:
        """The event stream is gone: stop sending; queued messages are dropped."""
        if self.live:
            self.live = False
            self._generation += 1
        self._ledger.disconnected()
        for message in self._messages:
            self._drop(message, why)
        self._messages.clear()
        self._next_heartbeat = math.inf
        self.wake()

    def queue_message(self, data: bytes, waiter: Waiter | None) -> None:
        if not self.live:
            # As the C++ library: calls other than SUBSCRIBE are only sent while
            # subscribed; MESSAGE carries no delivery guarantee in Mesos.
            self._drop(_Message(data, -1, waiter), "not subscribed to the agent")
            return
        if len(self._messages) >= MESSAGE_QUEUE_SIZE:
            log.warning(
                "framework message dropped: %d messages already wait to be sent",
                len(self._messages),
            )
            if waiter is not None:
                self._waiters.message_done(
                    waiter,
                    MessageQueueFullError(
                        f"framework message refused: {MESSAGE_QUEUE_SIZE} messages already "
                        "wait to be sent"
                    ),
                )
            return
        self._messages.append(_Message(data, next(self._seq), waiter))
        self.wake()

    def wake(self) -> None:
        self._wakeup.set()

    # -- the task --------------------------------------------------------------

    async def run(self) -> None:
        """The call task: open the connection when there is work, run a pipeline on it.

        Starts over when a pipeline ends (it broke, went stale because the
        event stream was lost, or the agent closed it), after a backoff if it
        failed. Calls in flight when a pipeline ends go back to their queues
        (:meth:`_pipeline_ended`).
        """
        backoff = self._new_backoff()
        while True:
            if not self._has_work():
                await self._sleep_until(self._next_heartbeat if self.live else math.inf)
                continue
            state = _Pipeline(self._generation)
            try:
                with trio.move_on_after(self._call_timeout) as opening:
                    stream = await self._open_stream()
                if opening.cancelled_caught:
                    raise TransportError(
                        f"connecting to the agent took more than {self._call_timeout:g} s"
                    )
            except (OSError, trio.BrokenResourceError, TransportError) as exc:
                log.warning("cannot open the call connection to the agent: %s", exc)
                await trio.sleep(backoff.next_delay())
                continue
            pipe = self._make_pipeline(stream)
            try:
                async with trio.open_nursery() as nursery:
                    state.scope = nursery.cancel_scope
                    nursery.start_soon(self._reader, pipe, state)
                    await self._writer(pipe, state)
                    nursery.cancel_scope.cancel()
            finally:
                self._pipeline_ended(state)
                with trio.CancelScope(shield=True):
                    await pipe.aclose()
            if state.failed:
                await trio.sleep(backoff.next_delay())
            else:
                backoff.reset()

    async def _sleep_until(self, deadline: float) -> None:
        self._wakeup = trio.Event()
        with trio.move_on_at(deadline):
            await self._wakeup.wait()

    def _has_work(self) -> bool:
        if not self.live:
            return False
        return bool(
            self._messages
            or trio.current_time() >= self._next_heartbeat
            or self._ledger.sendable()
        )

    def _next_calls(self, state: _Pipeline, room: int) -> list[_Call]:
        """Up to ``room`` calls to send now, in order; their updates become SENDING."""
        if not self.live or room <= 0:
            return []
        calls: list[_Call] = []
        framework_id, executor_id = self._ids
        for entry in self._ledger.sendable()[:room]:
            self._ledger.update_sending(entry.uuid)
            body = encode_update_call(framework_id, executor_id, entry.data, self._content_type)
            calls.append(_Call(_UPDATE, body, entry.uuid))
        if self._messages and len(calls) < room and not state.message_in_flight:
            # One MESSAGE at a time: one answered "retry" must not be overtaken
            # by the next one (the agent would take them out of order).
            state.message_in_flight = True
            message = self._messages.popleft()
            call = message_call(framework_id, executor_id, message.data)
            calls.append(_Call(_MESSAGE, encode_message(call, self._content_type), message))
        if (
            len(calls) < room
            and not state.heartbeat_in_flight
            and trio.current_time() >= self._next_heartbeat
        ):
            state.heartbeat_in_flight = True
            call = heartbeat_call(framework_id, executor_id)
            calls.append(_Call(_HEARTBEAT, encode_message(call, self._content_type), None))
        return calls

    async def _writer(self, pipe: CallPipeline, state: _Pipeline) -> None:
        """Writes calls ahead while fewer than MAX_CALLS_IN_FLIGHT are unanswered."""
        while pipe.reusable and state.generation == self._generation:
            now = trio.current_time()
            calls = []
            if now >= self._resume_at:
                calls = self._next_calls(state, MAX_CALLS_IN_FLIGHT - len(state.in_flight))
            if not calls:
                if now < self._resume_at:
                    deadline = self._resume_at  # a retried call's own backoff (e.g. 503)
                elif self.live and not state.heartbeat_in_flight:
                    deadline = self._next_heartbeat
                else:
                    deadline = math.inf
                await self._sleep_until(deadline)
                continue
            state.in_flight.extend(calls)
            state.sent.set()
            try:
                await pipe.send([c.body for c in calls])
            except TransportError as exc:
                log.warning("%s failed: %s", calls[0].what, exc)
                state.failed = True
                return

    async def _reader(self, pipe: CallPipeline, state: _Pipeline) -> None:
        """Reads the answers in order and applies them; each call has call_timeout.

        One cancel scope serves many answers (its deadline moves per call: a
        scope per answer was a twentieth of the CPU per update); a new one is
        taken only when its deadline passed just as an answer completed.
        """
        while True:
            with trio.CancelScope() as timer:
                renew = await self._read_answers(pipe, state, timer)
            if timer.cancelled_caught:
                call = state.in_flight[0]
                exc = TransportError(f"no complete answer within {self._call_timeout:g} s")
                log.warning("%s failed: %s", call.what, exc)
                state.failed = True
                state.scope.cancel()
                return
            if not renew:
                return

    async def _read_answers(
        self, pipe: CallPipeline, state: _Pipeline, timer: trio.CancelScope
    ) -> bool:
        """The reader's loop under ``timer``; True when ``timer`` must be replaced."""
        while True:
            while not state.in_flight:
                if not await self._wait_for_calls(pipe, state):
                    state.scope.cancel()
                    return False
            call = state.in_flight[0]
            timer.deadline = trio.current_time() + self._call_timeout
            try:
                response = await pipe.receive()
            except (TransportError, RemoteProtocolError) as exc:
                log.warning("%s failed: %s", call.what, exc)
                state.failed = True
                state.scope.cancel()
                return False
            timer.deadline = math.inf
            state.in_flight.popleft()
            self._answered(call, response, state)
            self._on_answer()
            self.wake()
            if not pipe.reusable:
                # The agent closes after this answer: what is still in flight
                # goes back to its queue and out on a new connection.
                state.scope.cancel()
                return False
            if timer.cancel_called:
                # The deadline passed as this answer completed: it stands, and
                # the next call gets a scope of its own.
                return True

    async def _wait_for_calls(self, pipe: CallPipeline, state: _Pipeline) -> bool:
        """Wait until a call is in flight, watching the idle connection meanwhile.

        False when the connection ended (the agent may close an idle one) or
        sent an answer to a request never sent.
        """
        state.sent = trio.Event()
        ended: list[BaseException] = []
        async with trio.open_nursery() as nursery:

            async def until_sent() -> None:
                await state.sent.wait()
                nursery.cancel_scope.cancel()

            async def watch_idle() -> None:
                try:
                    await pipe.receive_while_idle()
                except (TransportError, RemoteProtocolError) as exc:
                    ended.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_sent)
            nursery.start_soon(watch_idle)
        if ended:
            if isinstance(ended[0], RemoteProtocolError):
                log.warning("call connection: %s", ended[0])
                state.failed = True
            return False
        return True

    def _pipeline_ended(self, state: _Pipeline) -> None:
        """Unanswered calls: updates back to QUEUED (the ledger keeps their order);
        messages dropped (the agent may have taken them: at most once)."""
        for call in state.in_flight:
            if call.what is _UPDATE:
                self._ledger.update_failed(call.ref)  # type: ignore[arg-type]
            elif call.what is _MESSAGE:
                assert isinstance(call.ref, _Message)
                self._drop(call.ref, "the call connection failed before the agent answered")
        state.in_flight.clear()

    def _drop(self, message: _Message, why: str) -> None:
        log.warning("framework message dropped: %s", why)
        if message.waiter is not None:
            self._waiters.message_done(
                message.waiter, AgentUnavailableError(f"framework message dropped: {why}")
            )

    # -- answers ---------------------------------------------------------------

    def _body(self, response: Response) -> str:
        return self._redact(response.body.decode("utf-8", "replace"))

    def _describe(self, response: Response) -> str:
        """Status line and body, redacted before it is shortened (no partial token)."""
        return f"'{response.status_line}' ({self._body(response)[:500]})"

    def _answered(self, call: _Call, response: Response, state: _Pipeline) -> None:
        """Apply an answer (see :func:`._answers.classify`)."""
        if call.what is _HEARTBEAT:
            state.heartbeat_in_flight = False
            if response.status_code != 202:
                log.warning("HEARTBEAT answered %s", self._describe(response))
            self._next_heartbeat = trio.current_time() + self._heartbeat_interval
            return
        if call.what is _MESSAGE:
            state.message_in_flight = False
        verdict = classify(response.status_code, response.body)
        if verdict is Verdict.RETRY:
            log.warning("%s answered %s; will retry", call.what, self._describe(response))
            backoff = self._retry_backoffs.get(call.ref)
            if backoff is None:
                backoff = self._retry_backoffs[call.ref] = self._new_backoff()
            self._resume_at = trio.current_time() + backoff.next_delay()
        else:
            self._retry_backoffs.pop(call.ref, None)
        if call.what is _UPDATE:
            self._update_answered(call.ref, response, verdict)  # type: ignore[arg-type]
        else:
            assert isinstance(call.ref, _Message)
            self._message_answered(call.ref, response, verdict, state)

    def _update_answered(self, uuid: bytes, response: Response, verdict: Verdict) -> None:
        if verdict is Verdict.RETRY:
            self._ledger.update_failed(uuid)
        elif verdict is Verdict.ACCEPTED:
            if response.status_code != 202:
                log.warning("UPDATE answered %s instead of 202 Accepted", self._describe(response))
            self._ledger.update_accepted(uuid)
            self.updates_accepted += 1
            self._waiters.update_accepted(uuid)
        else:
            entry = self._ledger.update_rejected(uuid)
            text = f"Received unexpected {self._describe(response)} for UPDATE"
            log.error(
                "%s; the update of task %s is dropped",
                text,
                entry.task_id if entry is not None else "?",
            )
            self._waiters.update_failed(
                uuid, CallRejectedError(text, response.status_code, self._body(response))
            )
            self._on_refused(text)

    def _message_answered(
        self, message: _Message, response: Response, verdict: Verdict, state: _Pipeline
    ) -> None:
        if verdict is Verdict.RETRY:
            if state.generation == self._generation and self.live:
                self._requeue(message)
            else:
                self._drop(message, "the connection to the agent was lost")
            return
        error: BaseException | None = None
        if verdict is Verdict.REFUSED:
            text = f"Received unexpected {self._describe(response)} for MESSAGE"
            error = CallRejectedError(text, response.status_code, self._body(response))
            self._on_refused(text)
        if message.waiter is not None:
            self._waiters.message_done(message.waiter, error)

    def _requeue(self, message: _Message) -> None:
        """Put a message the agent did not take back in its place (order kept)."""
        index = next(
            (i for i, queued in enumerate(self._messages) if queued.seq > message.seq),
            len(self._messages),
        )
        self._messages.insert(index, message)
