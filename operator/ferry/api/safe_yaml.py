"""YAML documents read within bounds: a manifest cannot make the loader expand aliases without
end (a "billion laughs"), nest without end, or be larger than any sane manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

from ferry.errors import InvalidInput

# Kubernetes keeps an object under 1.5 MiB; a manifest file rarely holds more than a few.
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
# Values of one document as its aliases expand (each scalar, list and map counts one): a
# Template with a thousand mappings has about five thousand.
MAX_VALUES = 100_000
MAX_DEPTH = 64

class ManifestTooLarge(InvalidInput, yaml.YAMLError):
    """A document would expand beyond the bounds; the message says where and why."""


class _BoundedComposer(Composer):
    """Composes nodes as PyYAML does, counting values as the aliases would expand them, and
    refusing a document as soon as that count or its nesting exceeds the bounds."""

    if TYPE_CHECKING:  # from the parser it is mixed with
        def peek_event(self) -> Any: ...
        def check_event(self, *choices: type) -> bool: ...

    def __init__(self) -> None:
        super().__init__()
        self._sizes: dict[int, int] = {}   # id(node) -> values it expands to
        self._open: list[int] = []         # values so far of each collection being composed

    def compose_document(self) -> Node | None:
        self._sizes, self._open = {}, [0]
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        mark = self.peek_event().start_mark
        if self.check_event(AliasEvent):
            anchor = self.peek_event().anchor
            target = self.anchors.get(anchor)
            if target is not None and id(target) not in self._sizes:
                raise ManifestTooLarge(f"alias *{anchor} at {_where(mark)} is inside the value"
                                       " it refers to; write the value out")
            node = cast(Node, super().compose_node(parent, index))
            self._count(self._sizes[id(node)], mark)
            return node
        if len(self._open) > MAX_DEPTH:
            raise ManifestTooLarge(f"values nested deeper than {MAX_DEPTH} levels at"
                                   f" {_where(mark)}")
        self._open.append(0)
        node = cast(Node, super().compose_node(parent, index))
        size = 1 + self._open.pop()
        self._sizes[id(node)] = size
        self._count(size, mark)
        return node

    def _count(self, size: int, mark: Any) -> None:
        self._open[-1] += size
        if self._open[-1] > MAX_VALUES:
            raise ManifestTooLarge(
                f"more than {MAX_VALUES} values in one document, counting each alias as the"
                f" values it repeats (at {_where(mark)}); write fewer, or refer to them less")


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


try:  # libyaml's parser, when PyYAML has it; the composing stays ours either way
    from yaml._yaml import CParser

    class _ManifestLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _ManifestLoader(  # type: ignore[no-redef, misc]
            _BoundedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def load_documents(text: str) -> list[Any]:
    """Every non-empty document of text, as yaml.safe_load_all gives them, within bounds."""
    loader = _ManifestLoader(text)
    try:
        documents = []
        while loader.check_data():
            document = loader.get_data()
            if document is not None:
                documents.append(document)
        return documents
    finally:
        loader.dispose()
