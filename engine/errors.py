"""engine's exceptions. Each names what was wrong: the input, the node, expected against got."""
from __future__ import annotations


class EngineError(Exception):
    """Base class of engine's own errors."""


class ModelLoadError(EngineError, ValueError):
    """The model file or bytes cannot be read: missing, truncated, corrupt, inconsistent."""


class UnsupportedModelError(EngineError, NotImplementedError):
    """The model uses ops, versions or dtypes engine does not implement. `.problems` lists every one of them
    (`engine.check(model)` returns the same list without raising)."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = [f"  - {p}" for p in self.problems]
        super().__init__(f"the model uses {len(self.problems)} unsupported node(s):\n" + "\n".join(lines))


class InvalidInputError(EngineError, ValueError):
    """An input given to run() is missing, unknown, or has the wrong dtype, rank or shape."""


class RunError(EngineError, RuntimeError):
    """A node failed while running (names the node; the cause is chained)."""
