"""Sphinx glue for the trio_mesos documentation.

Directives:

``.. session-diagram:: [all | protocol | endings]``
    The session state machine, generated at build time from
    ``trio_mesos._session.TRANSITIONS`` (:mod:`state_tables`) and rendered by
    ``sphinx.ext.graphviz``. Option ``:caption:``.
``.. session-table::``
    The same table as a reStructuredText table: state, input, may go to.
``.. delivery-diagram::``
    The delivery states of one update, measured on ``trio_mesos._acks.AckLedger``.
``.. optional-literalinclude:: PATH``
    ``literalinclude`` when PATH exists; otherwise the directive's content
    (a note, say). The build passes either way, and is redone when the file
    appears.

Event handlers:

* the public names of ``trio_mesos`` are defined in private modules and
  re-exported (their ``__module__`` says ``trio_mesos``), so autodoc, which
  reads ``#:`` comments from the module an object claims, would find none for
  constants, dataclass fields and instance attributes:
  :func:`_merge_reexported_attr_docs` gives it those of the defining modules;
* napoleon is kept off attribute, data and property docstrings
  (:func:`_restore_written`), which are prose, not ``type: description``;
* enums and ``ExecutorDriver`` are shown without a call signature.
"""

from __future__ import annotations

import enum
import importlib
import pathlib
import sys
from typing import Any, ClassVar

import state_tables
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralInclude
from sphinx.errors import PycodeError
from sphinx.ext.graphviz import figure_wrapper, graphviz
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

_SOURCES = ("trio_mesos/_session.py", "trio_mesos/_acks.py")


def _note_sources(directive: SphinxDirective) -> None:
    root = pathlib.Path(directive.env.srcdir).parent
    for source in _SOURCES:
        directive.env.note_dependency(str(root / source))


def _graph(directive: SphinxDirective, code: str, alt: str) -> list[nodes.Node]:
    node = graphviz()
    node["code"] = code
    node["options"] = {"docname": directive.env.docname}
    node["alt"] = alt
    node["align"] = "center"
    node["classes"] = ["state-diagram"]
    _note_sources(directive)
    caption = directive.options.get("caption")
    if caption:
        figure = figure_wrapper(directive, node, caption)
        directive.add_name(figure)
        return [figure]
    directive.add_name(node)
    return [node]


class SessionDiagram(SphinxDirective):
    """The session's state diagram, from ``TRANSITIONS``."""

    optional_arguments = 1
    option_spec: ClassVar = {"caption": directives.unchanged, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        view = self.arguments[0] if self.arguments else "all"
        if view not in state_tables.SESSION_VIEWS:
            raise self.error(
                f"unknown view {view!r}; one of {', '.join(state_tables.SESSION_VIEWS)}"
            )
        code = state_tables.session_dot(view=view)
        return _graph(self, code, f"Session state diagram ({view}), from TRANSITIONS")


class DeliveryDiagram(SphinxDirective):
    """The delivery states of one update, measured on the ledger."""

    option_spec: ClassVar = {"caption": directives.unchanged, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        return _graph(self, state_tables.delivery_dot(), "Delivery states of one status update")


class SessionTable(SphinxDirective):
    """``TRANSITIONS`` as a list-table."""

    def run(self) -> list[nodes.Node]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 20 20 60",
            "   :class: session-table",
            "",
            "   * - state",
            "     - input",
            "     - may go to (besides staying)",
        ]
        for state, kind, targets in state_tables.session_rows():
            lines += [
                f"   * - {state}",
                f"     - {kind}",
                "     - " + ", ".join(targets),
            ]
        content = StringList(lines, source="trio_mesos._session.TRANSITIONS")
        container = nodes.container()
        self.state.nested_parse(content, self.content_offset, container)
        _note_sources(self)
        return list(container.children)


class OptionalLiteralInclude(SphinxDirective):
    """``literalinclude`` if the file exists, else the directive's content."""

    has_content = True
    required_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar = dict(LiteralInclude.option_spec)

    def run(self) -> list[nodes.Node]:
        rel_filename, filename = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(rel_filename)
        if pathlib.Path(filename).is_file():
            include = LiteralInclude(
                "literalinclude",
                self.arguments,
                self.options,
                StringList(),
                self.lineno,
                self.content_offset,
                self.block_text,
                self.state,
                self.state_machine,
            )
            return include.run()
        container = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, container)
        return list(container.children)


# ----------------------------------------------------------------------------
# `#:` comments of re-exported names
# ----------------------------------------------------------------------------

#: The public packages whose names are defined in private modules.
PACKAGES = ("trio_mesos", "trio_mesos.testing")


def _defining_modules(package: str, attribute: str, obj: Any) -> list[str]:
    """Private modules of ``package`` (already imported) that hold ``obj`` as ``attribute``."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(package + "._"):
            continue
        if getattr(module, attribute, None) is obj:
            found.append(name)
    return sorted(found)


def _merge_reexported_attr_docs(app: Sphinx) -> None:
    """Teach autodoc the ``#:`` comments, annotations and source order of re-exported names.

    autodoc reads attribute comments (``#: ...`` above a constant, a dataclass
    field or ``self.x = ...`` in ``__init__``) from the module an object
    claims in ``__module__``. Our public classes claim ``trio_mesos`` (or
    ``trio_mesos.testing``) but are defined in private modules, so the
    package's analyzer is given the entries of the defining modules for the
    names in ``__all__``. Nothing else changes: documented names stay public.
    """
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        analyzer = ModuleAnalyzer.for_module(package_name)
        analyzer.analyze()
        for name in package.__all__:
            obj = getattr(package, name)
            for module_name in _defining_modules(package_name, name, obj):
                try:
                    private = ModuleAnalyzer.for_module(module_name)
                    private.analyze()
                except PycodeError:
                    continue

                def ours(qualname: str, attr: str = "", name: str = name) -> bool:
                    return (qualname == "" and attr == name) or qualname == name or (
                        qualname.startswith(name + ".")
                    )

                for key, doc in private.attr_docs.items():
                    if ours(*key):
                        analyzer.attr_docs.setdefault(key, doc)
                for key, annotation in private.annotations.items():
                    if ours(*key):
                        analyzer.annotations.setdefault(key, annotation)
                for tag, order in private.tagorder.items():
                    if ours(tag):
                        analyzer.tagorder.setdefault(tag, order)


# ----------------------------------------------------------------------------
# napoleon, but not for attribute docstrings
# ----------------------------------------------------------------------------

_AS_WRITTEN = ("attribute", "data", "property")
_written: dict[tuple[str, str], list[str]] = {}


def _keep_written(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what in _AS_WRITTEN:
        _written[(what, name)] = list(lines)


def _restore_written(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Undo napoleon on attributes, data and properties.

    Google style reads the first line of such a docstring as ``type:
    description``. Ours are prose (``"Whether to speak TLS to the agent: ..."``)
    and their types come from annotations, so they are shown as written.
    """
    written = _written.pop((what, name), None)
    if written is not None:
        lines[:] = written


def _signatures(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Classes users never call get no call signature: enums (their members
    are the API) and ExecutorDriver (no public constructor)."""
    never_called = isinstance(obj, type) and (
        issubclass(obj, enum.Enum) or name == "trio_mesos.ExecutorDriver"
    )
    if what in ("class", "exception") and never_called:
        return "", None
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("session-diagram", SessionDiagram)
    app.add_directive("session-table", SessionTable)
    app.add_directive("delivery-diagram", DeliveryDiagram)
    app.add_directive("optional-literalinclude", OptionalLiteralInclude)
    app.connect("builder-inited", _merge_reexported_attr_docs)
    # napoleon's own handler runs at the default priority, 500.
    app.connect("autodoc-process-docstring", _keep_written, priority=400)
    app.connect("autodoc-process-docstring", _restore_written, priority=600)
    app.connect("autodoc-process-signature", _signatures)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
