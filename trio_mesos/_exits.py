"""What comes out of ``open_executor_driver``: the exception policy.

Trio nurseries wrap what escapes them in exception groups. The context
manager's nursery has two children: the caller's block, and the driver (whose
own nursery collects what callbacks and task work raised). The policy, after
trio's ``raise_single_exception_from_group`` (STYLE.md §3.3):

* ``KeyboardInterrupt`` or ``SystemExit`` anywhere: re-raised (a new one of
  the same type and args) from the group, so the traceback is kept;
* ``trio.Cancelled`` is dropped while anything else is left;
* exactly one exception left (what the block raised, a group it raised
  counting as one; or one raised by a callback or task work): re-raised as
  itself, its ``__context__`` kept;
* several: one ``BaseExceptionGroup`` (an ``ExceptionGroup`` when they all
  are ``Exception``) of exactly those, so ``except*`` catches each;
* only ``trio.Cancelled``: one of them, for the scope that owns it.

Our own bugs reach the caller as :exc:`~trio_mesos.TrioMesosInternalError`
(the driver's internal tasks convert what they raise); no private class is
ever part of what the caller sees.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import trio

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

__all__ = ["leaves", "raise_outcome"]


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in ``exc``, groups flattened."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def raise_outcome(
    group: BaseExceptionGroup[BaseException], raised: list[BaseException]
) -> NoReturn:
    """Raise what the caller should see for ``group`` (see the module's policy).

    ``raised``: the leaves of what the driver's nursery raised (callbacks,
    task work). A child of ``group`` made of those (and ``Cancelled``) is
    flattened; any other child came from the block and is kept whole. Leaves
    are compared by identity: trio may rebuild the groups around them.
    """
    for kind in (KeyboardInterrupt, SystemExit):
        for leaf in leaves(group):
            if isinstance(leaf, kind):
                raise kind(*leaf.args) from group
    ours = {id(exc) for exc in raised}

    def from_driver(child: BaseException) -> bool:
        return isinstance(child, BaseExceptionGroup) and all(
            id(leaf) in ours or isinstance(leaf, trio.Cancelled) for leaf in leaves(child)
        )

    candidates: list[BaseException] = []
    for child in group.exceptions:
        candidates += leaves(child) if from_driver(child) else [child]
    others = [exc for exc in candidates if not isinstance(exc, trio.Cancelled)]
    if len(others) == 1:
        _raise_saving_context(others[0])
    if not others:
        _raise_saving_context(candidates[0] if candidates else group)
    message = "several errors in the executor's block, callbacks or task work"
    if all(isinstance(exc, Exception) for exc in others):
        raise ExceptionGroup(message, others) from None
    raise BaseExceptionGroup(message, others) from None


def _raise_saving_context(exc: BaseException) -> NoReturn:
    __tracebackhide__ = True
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context
