"""Read a YAML file so that every later complaint can name the line it is about.

Generic on purpose (nothing policy-specific): the router's table could use it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class YamlFileError(ValueError):
    """A YAML file that cannot be read, with the line and column of the problem."""


def read_yaml(raw: bytes, source: str) -> tuple[Any, Node | None]:
    """Return the data of a single-document YAML file and its node tree (for line numbers)."""
    try:
        root = yaml.compose(raw, Loader=yaml.SafeLoader)
        data = yaml.safe_load(raw)
    except yaml.MarkedYAMLError as exc:
        raise YamlFileError(_describe(exc, source)) from exc
    except yaml.YAMLError as exc:  # e.g. bytes that are not UTF-8/16: no position to give
        raise YamlFileError(f"{source}: {exc}") from exc
    if root is not None:
        _refuse_duplicate_keys(root, source)
    return data, root


def line_of(root: Node | None, loc: Sequence[str | int]) -> int:
    """Return the 1-based line of the deepest part of `loc` that exists in the file."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        line, node = child
    return line


def _child(node: Node, part: str | int) -> tuple[int, Node] | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: Node = node.value[part]
        return item.start_mark.line + 1, item
    return None


def _describe(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "unknown position"
    what = "; ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    return f"{source} {where}: {what}"


def _refuse_duplicate_keys(root: Node, source: str) -> None:
    # PyYAML silently keeps the last of two equal keys; in a safety policy a second
    # `billing:` block quietly replacing the first must be an error, not a surprise.
    for node in _mappings(root, seen=set()):
        first_line: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):
                continue
            line = key.start_mark.line + 1
            if key.value in first_line:
                raise YamlFileError(
                    f"{source} line {line}: duplicate key {key.value!r} "
                    f"(first at line {first_line[key.value]})"
                )
            first_line[key.value] = line


def _mappings(node: Node, seen: set[int]) -> Iterator[MappingNode]:
    if id(node) in seen:  # an alias refers back to a node already visited
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        yield node
        for _, value in node.value:
            yield from _mappings(value, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _mappings(item, seen)
