"""The one YAML reader for text the service did not write itself: rule packs (files, drafts,
the lint API's `pack`), a repository's `.github/pmguard.yml`, policy files and the
service's settings file.

`yaml.safe_load` constructs no objects, but it still follows aliases: a few hundred bytes of
nested `*name` references stand for billions of values, and whatever walks the result (a
validator, `str()`, spaCy) spends minutes and gigabytes on them. Here aliases are refused
outright, except in rule packs, whose `definitions` share word lists through them (the
shipped pack does): there the values aliases add are counted as the text is composed,
and the text is refused past `MAX_ALIAS_VALUES`. Nesting is capped as well, because
PyYAML composes recursively and a deep enough `[[[[...` ends in RecursionError rather
than a YAML error.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 40  # nested collections; a rule pack needs about a dozen
# Values that aliases may add to a rule pack: the shipped pack's aliases add about 600,
# the 4 KB pack that expanded into 900k pattern tokens adds millions.
MAX_ALIAS_VALUES = 20_000


class YamlRefused(ValueError):
    """YAML that parses but is refused; the message names the source and the line."""


class _Loader(yaml.SafeLoader):
    def __init__(self, text: str, source: str, *, aliases: bool) -> None:
        super().__init__(text)
        self.source = source
        self.aliases = aliases
        self.depth = 0
        self.alias_values = 0
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1
            if not self.aliases:
                raise YamlRefused(
                    f"YAML aliases (*{event.anchor}) are not allowed in {self.source}, line {line}"
                )
            node = super().compose_node(parent, index)
            self.alias_values += self._size(node)
            if self.alias_values > MAX_ALIAS_VALUES:
                raise YamlRefused(
                    f"YAML aliases in {self.source} stand for over {MAX_ALIAS_VALUES} values "
                    f"(*{event.anchor} at line {line}); share fewer or smaller lists"
                )
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YamlRefused(
                    f"YAML in {self.source} nests deeper than {MAX_DEPTH} levels, line {line}"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _size(self, node: yaml.Node) -> int:
        """Values a node stands for with its aliases written out; each node is counted once,
        so a chain of aliases costs its length here, not its expansion."""
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        else:
            size = 1
        self.sizes[id(node)] = size
        return size


def load_yaml(text: str, source: str, *, aliases: bool = False) -> Any:
    """Parse one YAML document like `yaml.safe_load`.

    Raises YamlRefused for aliases (or, with `aliases`, for aliases that expand too far) and
    for nesting past MAX_DEPTH; yaml.YAMLError for text that is not YAML."""
    loader = _Loader(text, source, aliases=aliases)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
