"""Bounded YAML loading for every file merlin parses (specs, overlays, prompt
frontmatter, lease inventories).

A file is refused *before it is read* unless it is a regular file of at most
``MERLIN_MAX_SPEC_BYTES`` bytes (default 4 MiB), so a FIFO cannot hang a
command and ``/dev/zero`` or a 47 MB file cannot exhaust memory. While the
YAML is composed, every node is counted, and an alias counts as the whole
subtree it stands for: a document that would expand to more than
``MERLIN_MAX_SPEC_NODES`` nodes (default 100,000) is refused at the line where
it crosses the limit. That is what stops an alias bomb ("billion laughs")
hidden in a free-form mapping such as ``deployment.extra`` before anything
downstream dumps its expansion.

Every problem is a ``SpecError`` (exit 2) of one located line,
``FILE[:LINE[:COL]]: problem (expected ...)``.

Public API: ``load_yaml(path, kind=...)`` -> ``Document`` (data plus the line
of every key and list item), ``read_bounded_text`` and ``parse_bounded``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from merlin.errors import SpecError

Loc = tuple[Any, ...]

MAX_BYTES_ENV = "MERLIN_MAX_SPEC_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_NODES_ENV = "MERLIN_MAX_SPEC_NODES"
DEFAULT_MAX_NODES = 100_000


def _limit(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SpecError([f"{env}={raw!r}: not a whole number (expected a positive limit, default {default})"]) from None
    if value <= 0:
        raise SpecError([f"{env}={raw!r}: out of range (expected a positive limit, default {default})"])
    return value


def max_bytes() -> int:
    """The size limit of one input file (``$MERLIN_MAX_SPEC_BYTES``, default 4 MiB)."""
    return _limit(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)


def max_nodes() -> int:
    """The node limit of one YAML document, aliases expanded (``$MERLIN_MAX_SPEC_NODES``)."""
    return _limit(MAX_NODES_ENV, DEFAULT_MAX_NODES)


@dataclass(frozen=True)
class Document:
    """A parsed YAML mapping with the line of every key and list item."""

    path: Path
    data: dict[Any, Any]
    lines: dict[Loc, int]
    #: (line, message) of every duplicate key; empty unless loaded with duplicates="collect"
    duplicates: list[tuple[int, str]] = field(default_factory=list)

    def line(self, *loc: Any) -> int:
        """The line of ``loc`` or of the nearest enclosing key that has one."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return 1

    def where(self, *loc: Any) -> str:
        """``FILE:LINE: dotted.path`` for messages about ``loc``."""
        return f"{self.path}:{self.line(*loc)}: {dotted(loc) or '(top level)'}"


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, bool):
            part = "true" if part else "false"
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- reading ----------------------------------------------------------------

_FILE_TYPES = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a FIFO (named pipe)"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


def read_bounded_text(path: str | os.PathLike[str], *, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes()`` bytes.

    ``what`` completes "expected a ...", e.g. "capability spec YAML file". The
    file is opened non-blocking and checked with ``fstat`` on the open
    descriptor, so neither a FIFO nor a file swapped in after a check can block
    or flood the read.
    """
    shown = str(path)
    limit = max_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError([f"{shown}: no such file (expected a {what})"]) from None
    except NotADirectoryError:
        raise SpecError([f"{shown}: no such file (a parent is not a directory; expected a {what})"]) from None
    except OSError as exc:
        raise SpecError([f"{shown}: cannot read: {exc.strerror}"]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((text for test, text in _FILE_TYPES if test(info.st_mode)), "is not a regular file")
            raise SpecError([f"{shown}: {kind} (expected a {what})"])
        if info.st_size > limit:
            raise SpecError([_too_big(shown, info.st_size, limit, what)])
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while we read it
            raise SpecError([_too_big(shown, size, limit, what)])
    except OSError as exc:
        raise SpecError([f"{shown}: cannot read: {exc.strerror}"]) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{shown}: not UTF-8 text (byte {exc.start}); expected a {what}"]) from None


def _too_big(shown: str, size: int, limit: int, what: str) -> str:
    return (
        f"{shown}: file is too large ({size:,} bytes; expected a {what} of at most {limit:,} bytes, "
        f"raise the limit with {MAX_BYTES_ENV})"
    )


# --- composing with a node budget --------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer counts nodes, an alias as its whole subtree."""

    def __init__(self, stream: str, shown: str, limit: int, line_offset: int = 0) -> None:
        super().__init__(stream)
        self._shown = shown
        self._limit = limit
        self._line_offset = line_offset
        self._total = 0
        self._through_aliases = 0
        self._anchored_sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            # An alias to a node still being composed is recursive data: count it once, the walk reports it.
            size = self._anchored_sizes.get(id(node), 1)
            self._through_aliases += size
            self._count(size, event.start_mark)
            return node
        before = self._total
        node = super().compose_node(parent, index)
        self._count(1, node.start_mark if node is not None else None)
        if getattr(event, "anchor", None) is not None:
            self._anchored_sizes[id(node)] = self._total - before
        return node

    def _count(self, size: int, mark: Any) -> None:
        self._total += size
        if self._total <= self._limit:
            return
        line = mark.line + 1 + self._line_offset if mark is not None else self._line_offset + 1
        where = f"{self._shown}:{line}"
        if self._through_aliases * 2 > self._total:  # most of the document comes from aliases
            raise SpecError(
                [
                    f"{where}: YAML aliases expand the document to more than {self._limit:,} nodes "
                    f"(expected at most {self._limit:,} once aliases are expanded: an alias bomb? "
                    f"The limit is set by {MAX_NODES_ENV})"
                ]
            )
        raise SpecError(
            [f"{where}: YAML has more than {self._limit:,} nodes (expected at most {self._limit:,}; the limit is set by {MAX_NODES_ENV})"]
        )


def parse_bounded(text: str, *, shown: str, line_offset: int = 0) -> Any:
    """``yaml.safe_load`` of ``text`` within the node budget.

    For YAML embedded in another file (prompt frontmatter): ``line_offset`` is
    added to every reported line. PyYAML's own errors propagate unchanged for
    the caller to word; a budget overrun is a ``SpecError``.
    """
    loader = _BoundedLoader(text, shown, max_nodes(), line_offset)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(
    path: str | os.PathLike[str],
    *,
    kind: str,
    duplicates: Literal["raise", "collect"] = "raise",
) -> Document:
    """Read and parse one YAML mapping file of ``kind`` (e.g. "lease inventory").

    Every problem, from a FIFO to a YAML syntax error or a duplicate key, is a
    ``SpecError`` of located lines. With ``duplicates="collect"`` duplicate
    keys are returned in ``Document.duplicates`` instead, to be reported
    together with the caller's own validation errors.
    """
    shown = str(path)
    what = f"{kind} YAML file"
    text = read_bounded_text(path, what=what)
    empty = f"{shown}: file is empty (expected a {kind} mapping starting with 'schema_version: 1')"
    if not text.strip():  # PyYAML would reject a whitespace-only line holding a tab
        raise SpecError([empty])
    try:
        loader = _BoundedLoader(text, shown, max_nodes())  # the reader rejects control characters here
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_error(shown, text, exc)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([empty])
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        dupes: list[tuple[int, str]] = []
        _index(loader, node, (), lines, dupes, shown, {})
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_error(shown, exc)]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_error(shown, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{shown}: YAML error: {str(exc).splitlines()[0]}"]) from None
    except RecursionError:  # PyYAML's composer and constructor recurse once per nesting level
        raise SpecError([f"{shown}: YAML is nested too deeply (expected a spec a few levels deep)"]) from None
    finally:
        loader.dispose()
    if data is None:  # only '---' or a bare null
        raise SpecError([empty])
    if not isinstance(data, dict):
        raise SpecError([f"{shown}:{node.start_mark.line + 1}: top level is {kind_of(data)} (expected a {kind} mapping)"])
    if dupes and duplicates == "raise":
        raise SpecError([text for _, text in sorted(dupes)])
    return Document(path=Path(path), data=data, lines=lines, duplicates=sorted(dupes))


def _syntax_error(shown: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    problem = exc.problem or "invalid YAML"
    context = ""
    if exc.context:
        cmark = exc.context_mark
        started = (
            f"; it starts at line {cmark.line + 1}, column {cmark.column + 1}"
            if cmark and exc.problem_mark and cmark.line != exc.problem_mark.line
            else ""
        )
        context = f" ({exc.context}{started})"
    return f"{where}: YAML syntax error: {problem}{context}"


def _reader_error(shown: str, text: str, exc: yaml.reader.ReaderError) -> str:
    line = text.count("\n", 0, exc.position) + 1
    code = ord(exc.character) if isinstance(exc.character, str) else exc.character
    return f"{shown}:{line}: YAML syntax error: control character #x{code:04x} is not allowed (expected printable text)"


def _index(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    dupes: list[tuple[int, str]],
    shown: str,
    walked: dict[int, bool],
) -> None:
    """Record the line of every key and list item under ``node``.

    ``walked`` maps each collection node already visited to whether it is still
    being walked: an alias back into an open node is recursive data, and a node
    reached again through an alias is not walked twice; errors inside it point
    at the first occurrence.
    """
    if isinstance(node, yaml.ScalarNode):
        _scalar(loader, node, shown)
        return
    if walked.get(id(node)):
        where = dotted(loc) or "(top level)"
        raise SpecError([f"{shown}:{node.start_mark.line + 1}: {where}: recursive alias (expected finite data)"])
    if id(node) in walked:
        return
    walked[id(node)] = True
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node, shown)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                where = dotted(loc + (key,))
                first = seen[key]
                dupes.append((key_line, f"{shown}:{key_line}: {where}: duplicate key (first defined on line {first})"))
            seen[key] = key_line
            lines[loc + (key,)] = key_line  # the last definition is the one that is used
            _index(loader, value_node, loc + (key,), lines, dupes, shown, walked)
    else:
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = item.start_mark.line + 1
            _index(loader, item, loc + (i,), lines, dupes, shown, walked)
    walked[id(node)] = False


def _key(loader: yaml.SafeLoader, key_node: yaml.Node, shown: str) -> Any:
    """The key as the constructor will build it (``on:`` is True, ``1:`` is 1), so error locations match."""
    if isinstance(key_node, yaml.ScalarNode):
        try:
            key = _scalar(loader, key_node, shown)
            hash(key)
        except (yaml.YAMLError, TypeError):  # `<<` (merge) or `!!set x:`; construct_document handles or reports them
            return key_node.value
        return key
    return str(key_node.value)


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, shown: str) -> Any:
    """Build one scalar now, so a bad explicit tag (``!!int abc``) is a located error, not a crash inside PyYAML."""
    try:
        return loader.construct_object(node)
    except yaml.YAMLError:
        raise  # marked: reported with line and column by load_yaml
    except Exception:  # PyYAML's int/float/timestamp constructors raise plain ValueError and friends
        mark = node.start_mark
        tag = node.tag.rsplit(":", 1)[-1]
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}"
        raise SpecError([f"{where}: YAML syntax error: {node.value!r} is not a valid {tag} (check the explicit !!{tag} tag)"]) from None


def kind_of(value: Any) -> str:
    """A value's YAML kind in words ("a mapping", "an integer")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
