"""Execution modes: the one place that names them.

``eager`` is transformers' generate with a dynamic KV cache (the reference study's path);
``graph`` compiles the decode step with the device's graph backend over a static KV cache, as
production serving does. A test asks for a mode by name; it is resolved here once, into an
:class:`ExecutionMode` that the flows receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

EAGER = "eager"
GRAPH = "graph"
EXECUTION_MODES: Tuple[str, ...] = (EAGER, GRAPH)


@dataclass(frozen=True)
class ExecutionMode:
    name: str

    @property
    def graph(self) -> bool:
        return self.name == GRAPH

    @property
    def id_suffix(self) -> str:
        """What a test id adds in this mode: '' for eager, '-graph' for graph mode."""
        return "" if self.name == EAGER else f"-{self.name}"


MODES: Dict[str, ExecutionMode] = {name: ExecutionMode(name) for name in EXECUTION_MODES}


def get_mode(name: str) -> ExecutionMode:
    """The execution mode called ``name``; ValueError naming the accepted ones otherwise."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown execution mode {name!r}; accepted: {', '.join(EXECUTION_MODES)}") from None
