"""A request as the agent reads it, and the texts libprocess answers with (pure).

Pure: no trio, h11, os or time, so the agent's answer rules (``_rules``) can be
tested without I/O.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "PLAIN_TEXT",
    "Reply",
    "Request",
    "default_error_body",
    "first_header",
    "reason_phrase",
]

#: The Content-Type libprocess gives every response with a text body.
PLAIN_TEXT: Final = "text/plain; charset=utf-8"


def reason_phrase(status: int) -> str:
    """The reason phrase libprocess uses (the RFC's, as Python knows them)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def default_error_body(status: int) -> bytes:
    """The body libprocess writes for a status-only error response."""
    return f"{status} {reason_phrase(status)}.".encode()


def first_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` in ``headers`` (case-insensitive), or None."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Request:
    """A complete request as read from the wire.

    Attributes:
        method: e.g. ``"POST"``.
        target: the request target as sent (path and query).
        path: the target without its query string.
        headers: ``(name, value)`` pairs with the sender's spelling, in order.
        body: the whole request body.
    """

    method: str
    target: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return first_header(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]


@dataclass(eq=False)
class Reply:
    """An answer that is not an event stream: status, body, extra headers."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
