"""ONNX op implementations, one module per family; importing this package registers them all.
See `engine.ops._registry` for how an op is written."""
from engine.ops import (  # noqa: F401  (imported for their registrations)
    control,
    fused,
    misc,
    elementwise,
    nn,
    quant,
    reduce,
    rnn,
    sequence,
    tensor,
)
from engine.ops import accel  # noqa: F401,E402  (last: wraps the builders above with their C fast paths)
from engine.ops import accel_convt  # noqa: F401,E402  (ConvTranspose's C fast path)
from engine.ops._registry import REGISTRY, NodeCtx, Unsupported, lookup, register  # noqa: F401
