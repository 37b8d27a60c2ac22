"""engine as an `onnx.backend.base.Backend`, so onnx's own backend test suite (and tools built on the backend
API) can drive it:

    import engine.backend
    rep = engine.backend.prepare(model)
    outputs = rep.run([x])            # list, in the model's output order
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from engine.session import Session, SessionOptions


class EngineRep(BackendRep):
    def __init__(self, session: Session):
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple, dict)):
            inputs = [inputs]
        if isinstance(inputs, dict):
            res = self.session.run(inputs)
        else:
            names = [i.name for i in self.session.inputs]
            res = self.session.run(dict(zip(names, inputs)))
        return tuple(res[o.name] for o in self.session.outputs)


class EngineBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        from engine.session import check

        try:
            return not check(model)
        except Exception:
            return False

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> EngineRep:
        super().prepare(model, device, **kwargs)
        return EngineRep(Session(model, kwargs.get("options") or SessionOptions()))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().startswith("CPU")


prepare = EngineBackend.prepare
run_model = EngineBackend.run_model
supports_device = EngineBackend.supports_device
is_compatible = EngineBackend.is_compatible
