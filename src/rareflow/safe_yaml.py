"""YAML for untrusted configs and ``--param`` values: safe types only, no aliases, bounded size.

``yaml.safe_load`` builds only plain types, but it still expands aliases: a few hundred bytes of
"billion laughs" (nested lists of ``*a`` references) become a structure with 10^9 leaves that any
later ``repr`` or traversal pays for. rareflow configs never need anchors, so an alias is refused
at parse time with the line it sits on; a config larger than :data:`MAX_BYTES` or nested deeper
than :data:`MAX_DEPTH` is refused too.
"""

from __future__ import annotations

from typing import Any

import yaml

from rareflow.errors import RareflowError

#: Largest config text accepted (bytes); real experiment configs are a few hundred bytes.
MAX_BYTES = 1_000_000
#: Deepest nesting of mappings / lists accepted.
MAX_DEPTH = 32


class NoAliasLoader(yaml.SafeLoader):
    """A :class:`yaml.SafeLoader` that refuses aliases (``*name``) and deep nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are not allowed (line {line}); write the value out")
        self._rf_depth = getattr(self, "_rf_depth", 0) + 1
        try:
            if self._rf_depth > MAX_DEPTH:
                raise yaml.YAMLError(f"YAML nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._rf_depth -= 1


def load_yaml(text: str, source: str) -> Any:
    """Parse untrusted YAML ``text``; one-line :class:`RareflowError` naming ``source`` on failure."""
    if len(text) > MAX_BYTES:
        raise RareflowError(f"{source}: {len(text)} characters of YAML (limit {MAX_BYTES}); is this the right file?")
    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - NoAliasLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        detail = getattr(exc, "problem", None) or str(exc)
        raise RareflowError(f"{source}: invalid YAML{where}: {detail}; fix the syntax") from None
