"""tensor ops (see engine.ops._registry for the conventions)."""
from __future__ import annotations

import numpy as np

from engine.ops._registry import NodeCtx, Unsupported, register  # noqa: F401
