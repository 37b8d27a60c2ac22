"""Shared by bench_conv.py and compare_conv.py: the convolution layers of issue 4, their one-Conv ONNX models, the
inputs, and the output check done before any timing. Sessions and timing come from models_common.py.

Every layer has a bias and batch 1 (the latency case):

    name        input          kernel            output   what
    3x3_56      1x64x56x56     3x3 pad 1 -> 64   56x56    ResNet conv2_x
    3x3_28      1x128x28x28    3x3 pad 1 -> 128  28x28    ResNet conv3_x
    3x3_14      1x256x14x14    3x3 pad 1 -> 256  14x14    ResNet conv4_x
    7x7s2_224   1x3x224x224    7x7 s2 p3 -> 64   112x112  ResNet stem
    dw3x3_56    1x144x56x56    3x3 pad 1 group 144 56x56  MobileNetV2 depthwise
    1x1_112     1x32x112x112   1x1 -> 64         112x112  pointwise

The ONNX models use opset 17 and ir_version 8 (which every onnxruntime >= 1.14 loads); W and B are initializers,
so onnxruntime pre-packs the weights once, as it does in real models.
"""
from __future__ import annotations

from typing import NamedTuple

import models_common as mc  # noqa: F401  (puts the repository root and tests/ on sys.path)
import numpy as np


class Layer(NamedTuple):
    name: str
    x: tuple          # N, C, H, W
    cout: int
    k: int
    stride: int = 1
    pad: int = 0
    group: int = 1
    what: str = ""

    def out_hw(self) -> tuple[int, int]:
        h, w = self.x[2:]
        return ((h + 2 * self.pad - self.k) // self.stride + 1, (w + 2 * self.pad - self.k) // self.stride + 1)

    def flops(self) -> int:
        """2 * multiply-adds of the convolution (the bias add is not counted)."""
        oh, ow = self.out_hw()
        return 2 * self.x[0] * self.cout * oh * ow * (self.x[1] // self.group) * self.k * self.k


LAYERS = (
    Layer("3x3_56", (1, 64, 56, 56), 64, 3, pad=1, what="ResNet conv2_x 3x3"),
    Layer("3x3_28", (1, 128, 28, 28), 128, 3, pad=1, what="ResNet conv3_x 3x3"),
    Layer("3x3_14", (1, 256, 14, 14), 256, 3, pad=1, what="ResNet conv4_x 3x3"),
    Layer("7x7s2_224", (1, 3, 224, 224), 64, 7, stride=2, pad=3, what="ResNet stem 7x7 stride 2"),
    Layer("dw3x3_56", (1, 144, 56, 56), 144, 3, pad=1, group=144, what="MobileNetV2 depthwise 3x3"),
    Layer("1x1_112", (1, 32, 112, 112), 64, 1, what="pointwise 1x1"),
)
BY_NAME = {layer.name: layer for layer in LAYERS}

CHECK_REL = 1e-4  # max|engine - ORT| / max|ORT|: float32 sums of up to 2304 products in another order stay far below


def build(layer: Layer, seed: int = 0) -> tuple[bytes, dict]:
    """(model bytes, feeds) for one layer: Y = Conv(X, W, B), He-scaled weights, standard-normal input."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng([seed, *layer.x, layer.cout, layer.k, layer.stride, layer.group])
    cg = layer.x[1] // layer.group
    w = (rng.standard_normal((layer.cout, cg, layer.k, layer.k)) * np.sqrt(2.0 / (cg * layer.k ** 2)))
    b = rng.normal(0, 0.05, layer.cout)
    oh, ow = layer.out_hw()
    node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=[layer.k, layer.k],
                            strides=[layer.stride] * 2, pads=[layer.pad] * 4, group=layer.group)
    graph = helper.make_graph(
        [node], f"conv_{layer.name}", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(layer.x))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [layer.x[0], layer.cout, oh, ow])],
        [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(b.astype(np.float32), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="engine-bench")
    model.ir_version = 8
    feeds = {"X": rng.standard_normal(layer.x).astype(np.float32)}
    return model.SerializeToString(), feeds


def check(layer: Layer, got: np.ndarray, ref: np.ndarray) -> float:
    """engine's output against onnxruntime's: same shape and dtype, max relative error within CHECK_REL. Returns
    the error; raises AssertionError naming the layer otherwise."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape or got.dtype != ref.dtype:
        raise AssertionError(f"conv {layer.name}: engine gives {got.dtype}{list(got.shape)}, onnxruntime "
                             f"{ref.dtype}{list(ref.shape)}")
    err = float(np.abs(got.astype(np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    if not err <= CHECK_REL:
        raise AssertionError(f"conv {layer.name}: max relative error {err:.3g} against onnxruntime > {CHECK_REL}")
    return err
