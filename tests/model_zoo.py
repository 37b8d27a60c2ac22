"""Small, deterministic ONNX models of the families engine must run, built with onnx.helper (no downloads).

One `build_<family>(**size) -> onnx.ModelProto` per family, with fixed numpy seeds and random but well-scaled
weights: He-initialised convolutions, BatchNormalization statistics near the activations' real ones, so the
activations neither blow up nor vanish through the depth of the model and a classifier's top logit stands clear
of the second one. Each model passes `onnx.checker.check_model(full_check=True)` and runs on onnxruntime.

    FAMILIES[name] = Family(build, make_inputs)   # build(**size) -> ModelProto; make_inputs(model, seed, **dims)
    CLASSIFIER_OUTPUTS[name]                      # outputs whose argmax over the last axis must agree exactly
    DYNAMIC_DIMS[name]                            # two settings of the symbolic input dims, run through ONE session
    BENCH_MODELS[name] = (family, build kwargs, input dims)   # the full-size benchmark models

Used by tests/test_models.py (agreement with onnxruntime) and bench/ (end-to-end latency; bench scripts put the
tests/ directory on sys.path and `import model_zoo`). Nothing here is part of the engine wheel.

Opsets: 17 by default; vgg, mobilenetv2 and lstm at 13; shufflenet at 18 (Split num_outputs, ReduceMean axes as
an input); squeezenet at NEWEST_OPSET, the newest opset that both this onnx and onnxruntime 1.31 accept.
`ir_version` is pinned to 8: onnxruntime 1.31 rejects the IR version onnx 1.23 writes by default.
"""
from __future__ import annotations

import collections
import math
from typing import Callable, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
DEFAULT_OPSET = 17
def _newest_opset() -> int:
    """The newest opset the installed onnxruntime loads: 26 for 1.31, but pip gives CPython 3.10 onnxruntime 1.23,
    which refuses anything above 23 (the official releases); onnx 1.23 itself writes up to 28."""
    try:
        import onnxruntime

        major, minor = (int(p) for p in onnxruntime.__version__.split(".")[:2])
    except Exception:
        return 23
    return 26 if (major, minor) >= (1, 31) else 23


NEWEST_OPSET = _newest_opset()
FLOAT, FLOAT16, INT64, INT8, UINT8, INT32, BOOL = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64,
                                                   TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32,
                                                   TensorProto.BOOL)


# --- graph builder -------------------------------------------------------------------------------------------------

class _G:
    """Collects nodes and initializers; every layer method returns the name of its output tensor."""

    def __init__(self, name: str, seed: int, opset: int = DEFAULT_OPSET):
        self.name, self.opset = name, opset
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._count = collections.Counter()
        self._pending_outputs = []

    # plumbing
    def uniq(self, prefix: str) -> str:
        self._count[prefix] += 1
        return f"{prefix}_{self._count[prefix]}"

    def const(self, arr, prefix: str = "c") -> str:
        name = self.uniq(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def i64(self, vals, prefix: str = "i") -> str:
        return self.const(np.array(vals, np.int64), prefix)

    def f32(self, vals, prefix: str = "k") -> str:
        return self.const(np.array(vals, np.float32), prefix)

    def op(self, op_type: str, inputs, outputs=1, **attrs):
        outs = [self.uniq(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else list(outputs)
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.uniq(op_type), **attrs))
        return outs[0] if len(outs) == 1 else outs

    def input(self, name: str, elem_type: int, shape) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, tensor: str, name: str, elem_type: int = FLOAT, shape=None) -> str:
        """Makes `tensor` a graph output called `name` (at build time: its producer's output is renamed when
        nothing else reads it, else an Identity is added). `shape` is only needed where shape inference cannot
        find it (the checker wants a shape on every graph output)."""
        self._pending_outputs.append((tensor, name, elem_type, shape))
        return name

    def _resolve_outputs(self) -> None:
        def consumers(nodes):
            for n in nodes:
                yield from n.input
                for a in n.attribute:
                    for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                        yield from consumers(sub.node)

        used = collections.Counter(consumers(self.nodes))
        taken = collections.Counter(t for t, *_ in self._pending_outputs)
        for tensor, name, elem_type, shape in self._pending_outputs:
            producer = next((n for n in self.nodes if tensor in n.output), None)
            if producer is None or used[tensor] or taken[tensor] > 1:
                self.op("Identity", [tensor], [name])
            else:
                producer.output[list(producer.output).index(tensor)] = name
            self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def build(self) -> onnx.ModelProto:
        self._resolve_outputs()
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="engine tests/model_zoo.py")
        model.ir_version = IR_VERSION
        _fill_output_shapes(model)
        onnx.checker.check_model(model, full_check=True)
        return model

    # weights
    def he(self, shape, fan_in: int, gain: float = 2.0) -> np.ndarray:
        return (self.rng.standard_normal(shape) * math.sqrt(gain / fan_in)).astype(np.float32)

    def uniform(self, shape, bound: float) -> np.ndarray:
        return self.rng.uniform(-bound, bound, shape).astype(np.float32)

    # layers
    def conv(self, x, cin, cout, k, s=1, p=None, g=1, bias=True, d=1, gain=2.0, pads=None):
        kh, kw = (k, k) if isinstance(k, int) else k
        if pads is None:
            ph, pw = ((kh - 1) // 2 * d, (kw - 1) // 2 * d) if p is None else ((p, p) if isinstance(p, int) else p)
            pads = [ph, pw, ph, pw]
        w = self.he((cout, cin // g, kh, kw), cin // g * kh * kw, gain)
        ins = [x, self.const(w, "w")]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.05, cout).astype(np.float32), "b"))
        return self.op("Conv", ins, kernel_shape=[kh, kw], strides=[s, s], pads=pads, group=g, dilations=[d, d])

    def conv1d(self, x, cin, cout, k, s=1, p=None, g=1, bias=True, gain=2.0):
        p = (k - 1) // 2 if p is None else p
        w = self.he((cout, cin // g, k), cin // g * k, gain)
        ins = [x, self.const(w, "w")]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.05, cout).astype(np.float32), "b"))
        return self.op("Conv", ins, kernel_shape=[k], strides=[s], pads=[p, p], group=g)

    def bn(self, x, c, eps=1e-5):
        r = self.rng
        return self.op("BatchNormalization",
                       [x, self.f32(r.uniform(0.8, 1.2, c)), self.f32(r.normal(0, 0.1, c)),
                        self.f32(r.normal(0, 0.1, c)), self.f32(r.uniform(0.8, 1.5, c))], epsilon=eps)

    def act(self, x, kind, c=None):
        if kind is None:
            return x
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "relu6":
            return self.op("Clip", [x, self.f32(0.0), self.f32(6.0)])
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if kind == "leaky":
            return self.op("LeakyRelu", [x], alpha=0.1)
        if kind == "prelu":
            return self.op("PRelu", [x, self.f32(self.rng.uniform(0.1, 0.3, (c, 1, 1)))])
        raise ValueError(kind)

    def cba(self, x, cin, cout, k, s=1, act="relu", g=1, p=None, pads=None):
        """Conv (no bias) + BatchNormalization + activation, the usual exported block."""
        return self.act(self.bn(self.conv(x, cin, cout, k, s, p=p, g=g, bias=False, pads=pads), cout), act, cout)

    def fc(self, x, fin, fout, gain=1.0):
        """Gemm with transB=1 (PyTorch nn.Linear on a 2-D input)."""
        w = self.he((fout, fin), fin, gain)
        return self.op("Gemm", [x, self.const(w, "fc_w"), self.f32(self.rng.normal(0, 0.05, fout))], transB=1)

    def linear(self, x, fin, fout, gain=1.0):
        """MatMul with an (fin, fout) weight + Add bias (nn.Linear on a 3-D input, as PyTorch exports it)."""
        w = self.he((fin, fout), fin, gain)
        return self.op("Add", [self.op("MatMul", [x, self.const(w, "mm_w")]),
                               self.f32(self.rng.normal(0, 0.05, fout))])

    def layernorm(self, x, c, decomposed=False, eps=1e-12):
        gamma, beta = self.f32(self.rng.uniform(0.8, 1.2, c)), self.f32(self.rng.normal(0, 0.1, c))
        if not decomposed:
            return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)
        mean = self.reduce_mean(x, [-1])
        d = self.op("Sub", [x, mean])
        var = self.reduce_mean(self.op("Pow", [d, self.f32(2.0)]), [-1])
        std = self.op("Sqrt", [self.op("Add", [var, self.f32(eps)])])
        return self.op("Add", [self.op("Mul", [self.op("Div", [d, std]), gamma]), beta])

    def reduce_mean(self, x, axes, keepdims=1):
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.i64(axes)], keepdims=keepdims)
        return self.op("ReduceMean", [x], axes=axes, keepdims=keepdims)

    def unsqueeze(self, x, axes):
        return self.op("Unsqueeze", [x, self.i64(axes)])

    def dim(self, shape_tensor, i):
        """Shape -> Gather(i) -> Unsqueeze(0): a 1-element int64 tensor, the way PyTorch exports x.size(i)."""
        return self.unsqueeze(self.op("Gather", [shape_tensor, self.i64(i)], axis=0), [0])


def _fill_output_shapes(model: onnx.ModelProto) -> None:
    """Declares the inferred type and shape of each graph output, so `.outputs` of a session is informative."""
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in model.graph.output:
        v = known.get(out.name)
        if v is not None and v.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(v.type)


# --- input makers --------------------------------------------------------------------------------------------------

_NP = {FLOAT: np.float32, FLOAT16: np.float16, INT64: np.int64, INT32: np.int32, INT8: np.int8, UINT8: np.uint8,
       BOOL: np.bool_}


def input_shapes(model: onnx.ModelProto, **dims) -> dict:
    """name -> (numpy dtype, concrete shape): symbolic dims take `dims[name]`, else 1 for batch-like dims."""
    out = {}
    for vi in model.graph.input:
        tt = vi.type.tensor_type
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif d.dim_param in dims:
                shape.append(int(dims[d.dim_param]))
            elif d.dim_param == "batch":
                shape.append(1)
            else:
                raise ValueError(f"input {vi.name!r}: give a size for symbolic dim {d.dim_param!r}")
        out[vi.name] = (_NP[tt.elem_type], tuple(shape))
    return out


def make_float_inputs(model: onnx.ModelProto, seed: int = 0, scale: float = 1.0, **dims) -> dict:
    """Standard-normal float inputs (times `scale`) for every graph input."""
    rng = np.random.default_rng(seed)
    return {name: (rng.standard_normal(shape) * scale).astype(dt) for name, (dt, shape) in
            input_shapes(model, **dims).items()}


# --- CNN classifiers -----------------------------------------------------------------------------------------------

def build_resnet(depths=(1, 1), widths=(8, 16), image=32, num_classes=10, seed=1, opset=DEFAULT_OPSET):
    """ResNet with BasicBlocks (ResNet-18: depths (2, 2, 2, 2), widths (64, 128, 256, 512), 224x224, 1000 classes).
    Dynamic batch: the input is ("batch", 3, image, image)."""
    g = _G("resnet", seed, opset)
    x = g.input("input", FLOAT, ["batch", 3, image, image])
    c = widths[0]
    x = g.op("MaxPool", [g.cba(x, 3, c, 7, 2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for stage, (n, w) in enumerate(zip(depths, widths)):
        for b in range(n):
            s = 2 if (b == 0 and stage > 0) else 1
            y = g.bn(g.conv(g.cba(x, c, w, 3, s), w, w, 3, bias=False), w)
            short = g.bn(g.conv(x, c, w, 1, s, bias=False), w) if (s != 1 or c != w) else x
            x, c = g.op("Relu", [g.op("Add", [y, short])]), w
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.output(g.fc(x, c, num_classes), "logits")
    return g.build()


def build_resnet_bottleneck(depths=(2, 1), widths=(8, 16), image=32, num_classes=10, expansion=4, seed=22,
                            opset=DEFAULT_OPSET):
    """ResNet with Bottleneck blocks, as torchvision (v1.5: the stride is on the 3x3) exports it, BatchNormalization
    unfused: ResNet-50 is depths (3, 4, 6, 3), widths (64, 128, 256, 512), 224x224, 1000 classes. Each block is
    1x1 Conv+BN+Relu (width), 3x3 Conv+BN+Relu (stride), 1x1 Conv+BN (width * expansion), Add(., shortcut), Relu;
    the shortcut is a strided 1x1 Conv+BN where the shape changes. The last conv of a block gets a small gain (as
    zero-initialised last BNs do in training), so 16 residual adds do not blow the activations up.
    Dynamic batch: the input is ("batch", 3, image, image)."""
    g = _G("resnet_bottleneck", seed, opset)
    x = g.input("input", FLOAT, ["batch", 3, image, image])
    c = widths[0]
    x = g.op("MaxPool", [g.cba(x, 3, c, 7, 2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for stage, (n, w) in enumerate(zip(depths, widths)):
        out = w * expansion
        for b in range(n):
            s = 2 if (b == 0 and stage > 0) else 1
            y = g.cba(g.cba(x, c, w, 1), w, w, 3, s)
            y = g.bn(g.conv(y, w, out, 1, bias=False, gain=0.5), out)
            short = g.bn(g.conv(x, c, out, 1, s, bias=False), out) if (s != 1 or c != out) else x
            x, c = g.op("Relu", [g.op("Add", [y, short])]), out
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.output(g.fc(x, c, num_classes), "logits")
    return g.build()


MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1))


def build_mobilenetv2(settings=((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2)), stem=8, last=64, image=32,
                      num_classes=10, seed=2, opset=13):
    """MobileNetV2: inverted residuals with depthwise 3x3 convs and ReLU6 (Clip); full size: MOBILENETV2_SETTINGS,
    stem 32, last 1280, 224x224, 1000 classes."""
    g = _G("mobilenetv2", seed, opset)
    x = g.input("input", FLOAT, [1, 3, image, image])
    x, c = g.cba(x, 3, stem, 3, 2, "relu6"), stem
    for t, w, n, s in settings:
        for i in range(n):
            stride, hid = (s if i == 0 else 1), c * t
            y = g.cba(x, c, hid, 1, 1, "relu6") if t != 1 else x
            y = g.cba(y, hid, hid, 3, stride, "relu6", g=hid)
            y = g.cba(y, hid, w, 1, 1, None)
            x, c = (g.op("Add", [x, y]) if stride == 1 and c == w else y), w
    x = g.cba(x, c, last, 1, 1, "relu6")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.output(g.fc(x, last, num_classes), "logits")
    return g.build()


def build_shufflenet(stages=((2, 16), (2, 32)), stem=8, last=64, image=32, num_classes=10, seed=3, opset=18):
    """ShuffleNetV2: channel Split (num_outputs), Concat, channel shuffle (Reshape-Transpose-Reshape), depthwise
    convs, global pooling as ReduceMean over (2, 3) as torchvision exports it."""
    g = _G("shufflenet", seed, opset)
    x = g.input("input", FLOAT, [1, 3, image, image])
    x = g.op("MaxPool", [g.cba(x, 3, stem, 3, 2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = stem
    hw = image // 4

    def shuffle(t, ch, hw):
        t = g.op("Reshape", [t, g.i64([1, 2, ch // 2, hw, hw])])
        t = g.op("Transpose", [t], perm=[0, 2, 1, 3, 4])
        return g.op("Reshape", [t, g.i64([1, ch, hw, hw])])

    for n, w in stages:
        half = w // 2
        # down-sampling unit: both branches stride 2
        a = g.cba(g.cba(x, c, c, 3, 2, None, g=c), c, half, 1)
        b = g.cba(g.cba(g.cba(x, c, half, 1), half, half, 3, 2, None, g=half), half, half, 1)
        hw = (hw + 1) // 2
        x = shuffle(g.op("Concat", [a, b], axis=1), w, hw)
        for _ in range(n - 1):
            a, b = g.op("Split", [x], 2, axis=1, num_outputs=2)
            b = g.cba(g.cba(g.cba(b, half, half, 1), half, half, 3, 1, None, g=half), half, half, 1)
            x = shuffle(g.op("Concat", [a, b], axis=1), w, hw)
        c = w
    x = g.cba(x, c, last, 1)
    x = g.reduce_mean(x, [2, 3], keepdims=0)
    g.output(g.fc(x, last, num_classes), "logits")
    return g.build()


def build_squeezenet(fires=((8, 16), (8, 16), (16, 32)), stem=16, image=48, num_classes=10, seed=4,
                     opset=NEWEST_OPSET):
    """SqueezeNet 1.1: fire modules (squeeze 1x1, expand 1x1 and 3x3, Concat), MaxPool with ceil_mode, Dropout,
    a 1x1 conv classifier, GlobalAveragePool, Flatten and a Softmax output. Built at NEWEST_OPSET."""
    g = _G("squeezenet", seed, opset)
    x = g.input("input", FLOAT, [1, 3, image, image])
    x = g.op("Relu", [g.conv(x, 3, stem, 3, 2, p=0)])
    c = stem
    for i, (sq, ex) in enumerate(fires):
        if i % 2 == 0:
            x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
        s = g.op("Relu", [g.conv(x, c, sq, 1)])
        x = g.op("Concat", [g.op("Relu", [g.conv(s, sq, ex, 1)]), g.op("Relu", [g.conv(s, sq, ex, 3)])], axis=1)
        c = 2 * ex
    x = g.op("Dropout", [x])
    x = g.op("Relu", [g.conv(x, c, num_classes, 1)])
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    g.output(g.op("Softmax", [x], axis=1), "probs")
    return g.build()


def build_densenet(blocks=(3, 3), growth=8, stem=16, image=32, num_classes=10, seed=5, opset=DEFAULT_OPSET):
    """DenseNet: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 layers whose outputs are Concat-ed onto the input, transitions
    with a 1x1 conv and AveragePool 2x2."""
    g = _G("densenet", seed, opset)
    x = g.input("input", FLOAT, [1, 3, image, image])
    x = g.op("MaxPool", [g.cba(x, 3, stem, 7, 2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = stem
    for bi, n in enumerate(blocks):
        for _ in range(n):
            y = g.conv(g.act(g.bn(x, c), "relu"), c, 4 * growth, 1, bias=False)
            y = g.conv(g.act(g.bn(y, 4 * growth), "relu"), 4 * growth, growth, 3, bias=False)
            x, c = g.op("Concat", [x, y], axis=1), c + growth
        if bi != len(blocks) - 1:
            x = g.conv(g.act(g.bn(x, c), "relu"), c, c // 2, 1, bias=False)
            x, c = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2]), c // 2
    x = g.op("GlobalAveragePool", [g.act(g.bn(x, c), "relu")])
    g.output(g.fc(g.op("Flatten", [x]), c, num_classes), "logits")
    return g.build()


def build_inception(width=8, image=35, num_classes=10, seed=6, opset=DEFAULT_OPSET):
    """Inception-v3-style modules: parallel 1x1 / 5x5 / double 3x3 / pool branches Concat-ed, AveragePool with
    and without count_include_pad, asymmetric 1x7 and 7x1 convs, a grid reduction with valid (unpadded) stride-2
    convs next to a MaxPool."""
    g = _G("inception", seed, opset)
    w = width
    x = g.input("input", FLOAT, [1, 3, image, image])
    x, c = g.cba(x, 3, 2 * w, 3, 1), 2 * w

    def module_a(x, c, count_include_pad):
        b1 = g.cba(x, c, w, 1)
        b2 = g.cba(g.cba(x, c, w, 1), w, w, 5)
        b3 = g.cba(g.cba(g.cba(x, c, w, 1), w, w, 3), w, w, 3)
        p = g.op("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                 count_include_pad=count_include_pad)
        return g.op("Concat", [b1, b2, b3, g.cba(p, c, w, 1)], axis=1), 4 * w

    x, c = module_a(x, c, 1)
    x, c = module_a(x, c, 0)
    # grid reduction: valid stride-2 convs and a MaxPool
    r1 = g.cba(x, c, 2 * w, 3, 2, p=0)
    r2 = g.cba(g.cba(g.cba(x, c, w, 1), w, w, 3), w, w, 3, 2, p=0)
    x = g.op("Concat", [r1, r2, g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])], axis=1)
    c = 3 * w + c
    # module with factorized 7x7 convs
    b1 = g.cba(x, c, w, 1)
    b2 = g.cba(g.cba(g.cba(x, c, w, 1), w, w, (1, 7), p=(0, 3)), w, w, (7, 1), p=(3, 0))
    b3 = g.cba(g.cba(x, c, w, 1), w, w, (7, 1), p=(3, 0))
    p = g.cba(g.op("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]), c, w, 1)
    x, c = g.op("Concat", [b1, b2, b3, p], axis=1), 4 * w
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    g.output(g.fc(x, c, num_classes), "logits")
    return g.build()


def build_vgg(widths=(8, 16, 32), convs=(1, 2, 2), image=32, fc=64, num_classes=10, seed=7, opset=13):
    """VGG: 3x3 conv + ReLU stacks, MaxPool, Flatten, Gemm-ReLU-Dropout classifier."""
    g = _G("vgg", seed, opset)
    x = g.input("input", FLOAT, [1, 3, image, image])
    c = 3
    for w, n in zip(widths, convs):
        for _ in range(n):
            x, c = g.op("Relu", [g.conv(x, c, w, 3)]), w
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        image //= 2
    x = g.op("Flatten", [x])
    x = g.op("Dropout", [g.op("Relu", [g.fc(x, c * image * image, fc, gain=2.0)])])
    x = g.op("Dropout", [g.op("Relu", [g.fc(x, fc, fc, gain=2.0)])])
    g.output(g.fc(x, fc, num_classes), "logits")
    return g.build()


# --- detectors -----------------------------------------------------------------------------------------------------

def build_yolo(width=8, image=64, num_classes=4, anchors=3, seed=8, opset=DEFAULT_OPSET):
    """YOLOv5-style: Conv-BN-SiLU backbone, SPPF (chained MaxPool 5x5 + Concat), nearest Resize x2 + Concat neck,
    two detect heads decoded in the graph (Reshape, Transpose, Sigmoid, Slice, Pow, grid and anchor constants,
    Concat) into boxes (1, N, 4) in pixels and scores (1, N, 1 + classes)."""
    g = _G("yolo", seed, opset)
    w = width
    x = g.input("images", FLOAT, [1, 3, image, image])
    x = g.cba(x, 3, w, 3, 2, "silu")
    x = g.cba(x, w, 2 * w, 3, 2, "silu")
    p3 = g.cba(x, 2 * w, 2 * w, 3, 2, "leaky")                                   # stride 8
    p4 = g.cba(p3, 2 * w, 4 * w, 3, 2, "silu")                                   # stride 16
    # SPPF
    s = g.cba(p4, 4 * w, 2 * w, 1, 1, "silu")
    m1 = g.op("MaxPool", [s], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    m2 = g.op("MaxPool", [m1], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    m3 = g.op("MaxPool", [m2], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    p4 = g.cba(g.op("Concat", [s, m1, m2, m3], axis=1), 8 * w, 4 * w, 1, 1, "silu")
    up = g.op("Resize", [p4, "", g.f32([1, 1, 2, 2])], mode="nearest")
    p3 = g.cba(g.op("Concat", [up, p3], axis=1), 6 * w, 2 * w, 3, 1, "silu")
    no = 5 + num_classes
    outs = []
    for feat, c, stride in ((p3, 2 * w, 8), (p4, 4 * w, 16)):
        n = image // stride
        y = g.conv(feat, c, anchors * no, 1, gain=1.0)
        y = g.op("Reshape", [y, g.i64([1, anchors, no, n, n])])
        y = g.op("Sigmoid", [g.op("Transpose", [y], perm=[0, 1, 3, 4, 2])])          # (1, a, n, n, no)
        gy, gx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grid = np.stack([gx, gy], -1).reshape(1, 1, n, n, 2).astype(np.float32) - 0.5
        anc = (g.rng.uniform(1.0, 4.0, (1, anchors, 1, 1, 2)) * stride).astype(np.float32)
        xy = g.op("Slice", [y, g.i64([0]), g.i64([2]), g.i64([4])])
        wh = g.op("Slice", [y, g.i64([2]), g.i64([4]), g.i64([4])])
        rest = g.op("Slice", [y, g.i64([4]), g.i64([np.iinfo(np.int64).max]), g.i64([4])])
        xy = g.op("Mul", [g.op("Add", [g.op("Mul", [xy, g.f32(2.0)]), g.f32(grid)]), g.f32(float(stride))])
        wh = g.op("Mul", [g.op("Pow", [g.op("Mul", [wh, g.f32(2.0)]), g.f32(2.0)]), g.f32(anc)])
        y = g.op("Concat", [xy, wh, rest], axis=-1)
        outs.append(g.op("Reshape", [y, g.i64([1, -1, no])]))
    det = g.op("Concat", outs, axis=1)                                               # (1, boxes, 5 + classes)
    # two outputs, as split exports give them (pixel boxes next to 0..1 scores would hide score errors)
    g.output(g.op("Slice", [det, g.i64([0]), g.i64([4]), g.i64([2])]), "boxes")
    g.output(g.op("Slice", [det, g.i64([4]), g.i64([no]), g.i64([2])]), "scores")
    return g.build()


def build_face_detection(width=8, image=64, seed=9, opset=DEFAULT_OPSET):
    """RetinaFace-style: MobileNet-like backbone with LeakyReLU(0.1), FPN whose upsampling is Resize to the size
    of the finer map taken with Shape -> Slice -> Concat (F.interpolate(size=...) as PyTorch exports it), SSH
    context modules, per-level class (Softmax), box and 5-landmark heads flattened with Transpose+Reshape."""
    g = _G("face_detection", seed, opset)
    w = width
    x = g.input("input", FLOAT, [1, 3, image, image])
    x = g.cba(x, 3, w, 3, 2, "leaky")
    x = g.cba(g.cba(x, w, w, 3, 1, "leaky", g=w), w, 2 * w, 1, 1, "leaky")
    c1 = g.cba(g.cba(x, 2 * w, 2 * w, 3, 2, "leaky", g=2 * w), 2 * w, 2 * w, 1, 1, "leaky")      # stride 4
    c2 = g.cba(g.cba(c1, 2 * w, 2 * w, 3, 2, "leaky", g=2 * w), 2 * w, 4 * w, 1, 1, "leaky")     # stride 8
    c3 = g.cba(g.cba(c2, 4 * w, 4 * w, 3, 2, "leaky", g=4 * w), 4 * w, 4 * w, 1, 1, "leaky")     # stride 16
    f = 2 * w
    l1, l2, l3 = g.cba(c1, 2 * w, f, 1, 1, "leaky"), g.cba(c2, 4 * w, f, 1, 1, "leaky"), g.cba(c3, 4 * w, f, 1, 1,
                                                                                              "leaky")

    def up_to(t, like):
        hw = g.op("Slice", [g.op("Shape", [like]), g.i64([2]), g.i64([4]), g.i64([0])])
        nc = g.op("Slice", [g.op("Shape", [t]), g.i64([0]), g.i64([2]), g.i64([0])])
        sizes = g.op("Concat", [nc, hw], axis=0)
        return g.op("Resize", [t, "", "", sizes], mode="nearest")

    l2 = g.cba(g.op("Add", [l2, up_to(l3, l2)]), f, f, 3, 1, "leaky")
    l1 = g.cba(g.op("Add", [l1, up_to(l2, l1)]), f, f, 3, 1, "leaky")
    heads = {"scores": (2, []), "boxes": (4, []), "landmarks": (10, [])}
    anchors = 2
    for lvl in (l1, l2, l3):
        a = g.cba(lvl, f, f // 2, 3, 1, None)
        b = g.cba(g.cba(lvl, f, f // 4, 3, 1, "leaky"), f // 4, f // 4, 3, 1, None)
        cc = g.cba(g.cba(g.cba(lvl, f, f // 4, 3, 1, "leaky"), f // 4, f // 4, 3, 1, "leaky"), f // 4, f // 4, 3, 1,
                   None)
        ssh = g.op("Relu", [g.op("Concat", [a, b, cc], axis=1)])
        for k, (n, lst) in heads.items():
            y = g.conv(ssh, f, anchors * n, 1, gain=1.0)
            lst.append(g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 3, 1]), g.i64([1, -1, n])]))
    for k, (n, lst) in heads.items():
        y = g.op("Concat", lst, axis=1)
        if k == "scores":
            y = g.op("Softmax", [y], axis=-1)
        g.output(y, k)
    return g.build()


def build_face_embedding(width=8, image=32, emb=32, seed=10, opset=DEFAULT_OPSET):
    """MobileFaceNet-style embedding: Conv-BN-PReLU, depthwise bottlenecks with residuals, a global depthwise
    conv (kernel = the whole map, no padding), Flatten, Gemm, BatchNormalization on the (N, C) features and L2
    normalisation (ReduceL2 + Div)."""
    g = _G("face_embedding", seed, opset)
    w = width
    x = g.input("input", FLOAT, [1, 3, image, image])
    x = g.cba(x, 3, w, 3, 2, "prelu")
    x = g.cba(x, w, w, 3, 1, "prelu", g=w)
    c = w
    for cout, s, n in ((2 * w, 2, 2), (4 * w, 2, 2)):
        for i in range(n):
            stride = s if i == 0 else 1
            y = g.cba(x, c, 2 * c, 1, 1, "prelu")
            y = g.cba(y, 2 * c, 2 * c, 3, stride, "prelu", g=2 * c)
            y = g.cba(y, 2 * c, cout, 1, 1, None)
            x, c = (g.op("Add", [x, y]) if stride == 1 and c == cout else y), cout
    x = g.cba(x, c, 4 * c, 1, 1, "prelu")
    hw = image // 8
    x = g.bn(g.conv(x, 4 * c, 4 * c, hw, 1, p=0, g=4 * c, bias=False, gain=1.0), 4 * c)      # GDConv
    x = g.fc(g.op("Flatten", [x]), 4 * c, emb)
    x = g.bn(x, emb)
    norm = g.op("ReduceL2", [x], axes=[1], keepdims=1)
    g.output(g.op("Div", [x, g.op("Max", [norm, g.f32(1e-12)])]), "embedding")
    return g.build()


# --- OCR -----------------------------------------------------------------------------------------------------------

def build_ocr_det(width=8, seed=11, opset=DEFAULT_OPSET):
    """DB (differentiable binarisation) text detector: 4-level backbone, FPN with nearest Resize x2 (scales) and
    Add, every level brought to 1/4 resolution by Resize (nearest and one bilinear half_pixel), Concat, then the
    probability head Conv-BN-ReLU, ConvTranspose 2x2 s2, BN-ReLU, ConvTranspose 2x2 s2, Sigmoid. Dynamic height
    and width: the input is (1, 3, "height", "width"), both multiples of 32."""
    g = _G("ocr_det", seed, opset)
    w = width
    x = g.input("image", FLOAT, [1, 3, "height", "width"])
    x = g.cba(x, 3, w, 3, 2)
    c2 = g.cba(g.cba(x, w, w, 3, 2), w, w, 3)               # 1/4
    c3 = g.cba(g.cba(c2, w, 2 * w, 3, 2), 2 * w, 2 * w, 3)  # 1/8
    c4 = g.cba(c3, 2 * w, 4 * w, 3, 2)                      # 1/16
    c5 = g.cba(c4, 4 * w, 4 * w, 3, 2)                      # 1/32
    f = 2 * w
    ins = [g.conv(t, ch, f, 1, bias=False) for t, ch in ((c2, w), (c3, 2 * w), (c4, 4 * w), (c5, 4 * w))]
    two = g.f32([1, 1, 2, 2])
    for i in (2, 1, 0):
        ins[i] = g.op("Add", [ins[i], g.op("Resize", [ins[i + 1], "", two], mode="nearest")])
    ps = []
    for i, scale in enumerate((1, 2, 4, 8)):
        p = g.conv(ins[i], f, f // 4, 3, bias=False)
        if scale > 1:
            mode = "linear" if scale == 8 else "nearest"
            p = g.op("Resize", [p, "", g.f32([1, 1, scale, scale])], mode=mode,
                     coordinate_transformation_mode="half_pixel" if mode == "linear" else "asymmetric")
        ps.append(p)
    x = g.op("Concat", ps, axis=1)
    x = g.cba(x, f, f // 4, 3)
    wt = g.he((f // 4, f // 4, 2, 2), f // 4 * 4)
    x = g.op("ConvTranspose", [x, g.const(wt, "w"), g.f32(g.rng.normal(0, 0.05, f // 4))], kernel_shape=[2, 2],
             strides=[2, 2])
    x = g.act(g.bn(x, f // 4), "relu")
    wt = g.he((f // 4, 1, 2, 2), f // 4 * 4, gain=200.0)  # spread the logits: a map of ~0.5s tests little
    x = g.op("ConvTranspose", [x, g.const(wt, "w"), g.f32([0.0])], kernel_shape=[2, 2], strides=[2, 2])
    g.output(g.op("Sigmoid", [x]), "prob_map")
    return g.build()


def build_ocr_rec(width=8, hidden=16, num_classes=20, seed=12, opset=DEFAULT_OPSET):
    """CRNN text recogniser: conv stack with (2, 1) pools down to height 1, Squeeze, Transpose to (T, N, C), two
    bidirectional LSTM layers, MatMul + Add to the classes and Softmax over them. Dynamic width: the input is
    (1, 1, 32, "width"); T = width / 4."""
    g = _G("ocr_rec", seed, opset)
    w = width
    x = g.input("image", FLOAT, [1, 1, 32, "width"])
    x = g.op("MaxPool", [g.cba(x, 1, w, 3)], kernel_shape=[2, 2], strides=[2, 2])              # 16 x W/2
    x = g.op("MaxPool", [g.cba(x, w, 2 * w, 3)], kernel_shape=[2, 2], strides=[2, 2])          # 8 x W/4
    x = g.op("MaxPool", [g.cba(x, 2 * w, 4 * w, 3)], kernel_shape=[2, 1], strides=[2, 1])      # 4 x W/4
    x = g.op("MaxPool", [g.cba(x, 4 * w, 4 * w, 3)], kernel_shape=[2, 1], strides=[2, 1])      # 2 x W/4
    x = g.cba(x, 4 * w, 4 * w, (2, 1), p=(0, 0))                                                # 1 x W/4
    x = g.op("Transpose", [g.op("Squeeze", [x, g.i64([2])])], perm=[2, 0, 1])                   # (T, 1, C)
    cin, h = 4 * w, hidden
    for _ in range(2):
        b = 1 / math.sqrt(h)
        y = g.op("LSTM", [x, g.const(g.uniform((2, 4 * h, cin), b), "W"), g.const(g.uniform((2, 4 * h, h), b), "R"),
                          g.const(g.uniform((2, 8 * h), b), "B")], 1, hidden_size=h, direction="bidirectional")
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])                                          # (T, N, 2, H)
        x, cin = g.op("Reshape", [y, g.i64([0, 0, -1])]), 2 * h
    y = g.linear(x, cin, num_classes, gain=400.0)   # LSTM outputs are small: sharpen the per-frame classes
    g.output(g.op("Softmax", [y], axis=2), "probs")
    return g.build()


# --- transformers --------------------------------------------------------------------------------------------------

def build_bert(layers=2, hidden=32, heads=4, intermediate=None, vocab=100, max_pos=64, num_labels=3, seed=13,
               opset=DEFAULT_OPSET):
    """BERT-like encoder as PyTorch/transformers export it: Gather embeddings (word, position via Slice of a
    position_ids buffer up to Shape->Gather->Unsqueeze, token type), LayerNormalization in even layers and its
    ReduceMean/Sub/Pow/Sqrt/Div decomposition in odd ones, attention-mask subgraphs (Unsqueeze, Expand to
    (B, 1, S, S) from a Concat of Shape dims, Equal + Where; and Cast/Sub/Mul), heads split and merged with
    Shape->Gather->Unsqueeze->Concat->Reshape chains, batched MatMul with broadcast, Softmax, Erf GELU, a tanh
    pooler on token 0 and a classifier. Dynamic batch and sequence: inputs are ("batch", "seq") int64.
    BERT-small: layers 4, hidden 512, heads 8, intermediate 2048, vocab 30522, max_pos 512."""
    g = _G("bert", seed, opset)
    inter = intermediate or 4 * hidden
    hd = hidden // heads
    ids = g.input("input_ids", INT64, ["batch", "seq"])
    mask = g.input("attention_mask", INT64, ["batch", "seq"])
    types = g.input("token_type_ids", INT64, ["batch", "seq"])
    r = g.rng
    shp = g.op("Shape", [ids])
    b1, s1 = g.dim(shp, 0), g.dim(shp, 1)
    pos = g.op("Slice", [g.const(np.arange(max_pos, dtype=np.int64)[None], "position_ids"), g.i64([0]), s1,
                         g.i64([1])])
    word = g.const((r.standard_normal((vocab, hidden)) * 0.5).astype(np.float32), "word_embeddings")
    emb = g.op("Add", [g.op("Gather", [word, ids]),
                       g.op("Gather", [g.f32(r.standard_normal((max_pos, hidden)) * 0.5), pos])])
    emb = g.op("Add", [emb, g.op("Gather", [g.f32(r.standard_normal((2, hidden)) * 0.5), types])])
    x = g.layernorm(emb, hidden)
    # two equivalent additive masks, as different exporters write them
    m4 = g.unsqueeze(mask, [1, 2])                                                   # (B, 1, 1, S)
    full = g.op("Expand", [m4, g.op("Concat", [b1, g.i64([1]), s1, s1], axis=0)])     # (B, 1, S, S)
    bias_where = g.op("Where", [g.op("Equal", [full, g.i64(0)]), g.f32(-10000.0), g.f32(0.0)])
    bias_cast = g.op("Mul", [g.op("Sub", [g.f32(1.0), g.op("Cast", [m4], to=FLOAT)]), g.f32(-10000.0)])

    def split_heads(t, perm):
        s = g.op("Shape", [t])
        new = g.op("Concat", [g.dim(s, 0), g.dim(s, 1), g.i64([heads]), g.i64([hd])], axis=0)
        return g.op("Transpose", [g.op("Reshape", [t, new])], perm=perm)

    for layer in range(layers):
        q = split_heads(g.linear(x, hidden, hidden), [0, 2, 1, 3])
        k = split_heads(g.linear(x, hidden, hidden), [0, 2, 3, 1])
        v = split_heads(g.linear(x, hidden, hidden), [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), g.f32(math.sqrt(hd))])
        scores = g.op("Add", [scores, bias_where if layer % 2 == 0 else bias_cast])
        ctx = g.op("Transpose", [g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3])
        if layer % 2 == 0:
            s = g.op("Shape", [ctx])
            ctx = g.op("Reshape", [ctx, g.op("Concat", [g.dim(s, 0), g.dim(s, 1), g.i64([hidden])], axis=0)])
        else:
            ctx = g.op("Reshape", [ctx, g.i64([0, 0, -1])])
        x = g.layernorm(g.op("Add", [g.linear(ctx, hidden, hidden), x]), hidden, decomposed=layer % 2 == 1)
        h = g.linear(x, hidden, inter)
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op("Div", [h, g.f32(math.sqrt(2.0))])]),
                                                      g.f32(1.0)])]), g.f32(0.5)])
        x = g.layernorm(g.op("Add", [g.linear(h, inter, hidden), x]), hidden, decomposed=layer % 2 == 1)
    pooled = g.op("Tanh", [g.fc(g.op("Gather", [x, g.i64(0)], axis=1), hidden, hidden)])
    g.output(x, "last_hidden_state")
    g.output(g.fc(pooled, hidden, num_labels, gain=4.0), "logits")
    return g.build()


def make_bert_inputs(model: onnx.ModelProto, seed: int = 0, batch: int = 1, seq: int = 16) -> dict:
    """Token ids below the model's vocabulary, token types 0/1, and an attention mask whose last sample has its
    final quarter padded out (mask 0) when batch > 1."""
    vocab = next(t.dims[0] for t in model.graph.initializer if t.name.startswith("word_embeddings"))
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    if batch > 1:
        mask[-1, seq - max(1, seq // 4):] = 0
    types = np.zeros((batch, seq), np.int64)
    types[:, seq // 2:] = 1
    return {"input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": types}


# --- recurrent -----------------------------------------------------------------------------------------------------

def _rnn_model(kind, hidden, features, seed, opset):
    g = _G(kind.lower(), seed, opset)
    x = g.input("x", FLOAT, ["seq", "batch", features])
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    b = 1 / math.sqrt(hidden)

    def weights(nd, cin):
        return [g.const(g.uniform((nd, gates * hidden, cin), b), "W"),
                g.const(g.uniform((nd, gates * hidden, hidden), b), "R"),
                g.const(g.uniform((nd, 2 * gates * hidden), b), "B")]

    return g, x, weights


def build_lstm(hidden=16, features=8, seed=14, opset=13):
    """Two LSTM layers: bidirectional with initial states given as graph inputs (h0, c0), then forward;
    outputs Y, Y_h and Y_c. Dynamic sequence length and batch: x is ("seq", "batch", features)."""
    g, x, weights = _rnn_model("LSTM", hidden, features, seed, opset)
    h0 = g.input("h0", FLOAT, [2, "batch", hidden])
    c0 = g.input("c0", FLOAT, [2, "batch", hidden])
    y, yh, yc = g.op("LSTM", [x, *weights(2, features), "", h0, c0], 3, hidden_size=hidden,
                     direction="bidirectional")
    y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.i64([0, 0, -1])])
    y2, yh2, yc2 = g.op("LSTM", [y, *weights(1, 2 * hidden)], 3, hidden_size=hidden)
    g.output(y2, "y")
    g.output(g.op("Concat", [yh, yh2], axis=0), "h_n")
    g.output(g.op("Concat", [yc, yc2], axis=0), "c_n")
    return g.build()


def build_gru(hidden=16, features=8, seed=15, opset=DEFAULT_OPSET):
    """A bidirectional GRU with linear_before_reset=1 (PyTorch's form) and initial state h0, then a forward GRU
    with the ONNX default linear_before_reset=0. Dynamic sequence length and batch."""
    g, x, weights = _rnn_model("GRU", hidden, features, seed, opset)
    h0 = g.input("h0", FLOAT, [2, "batch", hidden])
    y, yh = g.op("GRU", [x, *weights(2, features), "", h0], 2, hidden_size=hidden, direction="bidirectional",
                 linear_before_reset=1)
    y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.i64([0, 0, -1])])
    y2, yh2 = g.op("GRU", [y, *weights(1, 2 * hidden)], 2, hidden_size=hidden)
    g.output(y2, "y")
    g.output(g.op("Concat", [yh, yh2], axis=0), "h_n")
    return g.build()


def build_rnn(hidden=16, features=8, seed=16, opset=DEFAULT_OPSET):
    """A vanilla RNN (Tanh) in reverse direction, then one with a Relu activation. Dynamic sequence and batch."""
    g, x, weights = _rnn_model("RNN", hidden, features, seed, opset)
    y, yh = g.op("RNN", [x, *weights(1, features)], 2, hidden_size=hidden, direction="reverse")
    y = g.op("Squeeze", [y, g.i64([1])])
    y2, yh2 = g.op("RNN", [y, *weights(1, hidden)], 2, hidden_size=hidden, activations=["Relu"])
    g.output(y2, "y")
    g.output(g.op("Concat", [yh, yh2], axis=0), "h_n")
    return g.build()


def make_rnn_inputs(model: onnx.ModelProto, seed: int = 0, seq: int = 7, batch: int = 2) -> dict:
    return make_float_inputs(model, seed, scale=1.0, seq=seq, batch=batch)


# --- audio ---------------------------------------------------------------------------------------------------------

def _stft_kernels(n_fft: int) -> np.ndarray:
    """(2 * bins, 1, n_fft) Hann-windowed cos and sin rows of the DFT: an STFT as one strided Conv1d."""
    bins = n_fft // 2 + 1
    n = np.arange(n_fft)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    ang = 2 * np.pi * np.outer(np.arange(bins), n) / n_fft
    return np.concatenate([np.cos(ang) * win, -np.sin(ang) * win])[:, None, :].astype(np.float32)


def _mel_filters(bins: int, mels: int) -> np.ndarray:
    """(bins, mels) triangular filters on a mel-spaced grid of bin indices."""
    mel = np.linspace(0, 2595 * np.log10(1 + bins / 70), mels + 2)
    centers = 70 * (10 ** (mel / 2595) - 1)
    f = np.arange(bins)[:, None]
    lo, c, hi = centers[:-2], centers[1:-1], centers[2:]
    w = np.maximum(0, np.minimum((f - lo) / np.maximum(c - lo, 1e-3), (hi - f) / np.maximum(hi - c, 1e-3)))
    return (w + 1e-3).astype(np.float32)


def build_audio_frontend(n_fft=64, hop=16, mels=12, seed=17, opset=DEFAULT_OPSET):
    """Log-mel front end: Unsqueeze, Pad (reflect), STFT as a strided Conv1d with fixed cos/sin kernels, Slice
    into real and imaginary halves, Pow + Add power, mel MatMul, Log, per-utterance mean removal (ReduceMean,
    Sub), and delta features from two Slices (one with a negative end) Concat-ed on. Dynamic batch and length:
    the input is ("batch", "samples")."""
    g = _G("audio_frontend", seed, opset)
    bins = n_fft // 2 + 1
    x = g.input("waveform", FLOAT, ["batch", "samples"])
    x = g.unsqueeze(x, [1])
    x = g.op("Pad", [x, g.i64([0, 0, n_fft // 2, 0, 0, n_fft // 2])], mode="reflect")
    spec = g.op("Conv", [x, g.const(_stft_kernels(n_fft), "stft")], kernel_shape=[n_fft], strides=[hop])
    re = g.op("Slice", [spec, g.i64([0]), g.i64([bins]), g.i64([1])])
    im = g.op("Slice", [spec, g.i64([bins]), g.i64([2 * bins]), g.i64([1])])
    power = g.op("Add", [g.op("Pow", [re, g.f32(2.0)]), g.op("Pow", [im, g.f32(2.0)])])      # (B, bins, frames)
    mel = g.op("MatMul", [g.op("Transpose", [power], perm=[0, 2, 1]), g.const(_mel_filters(bins, mels), "mel")])
    logmel = g.op("Log", [g.op("Add", [mel, g.f32(1e-3)])])                                  # (B, frames, mels)
    logmel = g.op("Sub", [logmel, g.reduce_mean(logmel, [1])])
    delta = g.op("Sub", [g.op("Slice", [logmel, g.i64([1]), g.i64([np.iinfo(np.int64).max]), g.i64([1])]),
                         g.op("Slice", [logmel, g.i64([0]), g.i64([-1]), g.i64([1])])])
    g.output(logmel, "features")
    g.output(delta, "deltas")
    return g.build()


def make_audio_inputs(model: onnx.ModelProto, seed: int = 0, batch: int = 1, samples: int = 400) -> dict:
    return make_float_inputs(model, seed, scale=0.1, batch=batch, samples=samples)


# --- control flow --------------------------------------------------------------------------------------------------

def build_control_flow(n=4, rows=3, steps=5, seed=18, opset=DEFAULT_OPSET):
    """If (on the sign of ReduceSum(x); both branches read outer-scope tensors), Loop (fixed trip count, a
    carried state through Tanh(h W + x[i % rows]) and a scan output of every state) and Scan (a leaky running
    sum over the rows of x and its Sigmoid per step)."""
    g = _G("control_flow", seed, opset)
    x = g.input("x", FLOAT, [rows, n])
    wmat = g.const(g.he((n, n), n, 1.0), "W")
    cond = g.op("Greater", [g.op("ReduceSum", [x], keepdims=0), g.f32(0.0)])
    vi = helper.make_tensor_value_info
    then_g = helper.make_graph([helper.make_node("MatMul", [x, wmat], ["t_mm"]),
                                helper.make_node("Relu", ["t_mm"], ["then_out"])], "then_branch", [],
                               [vi("then_out", FLOAT, [rows, n])])
    half = g.f32(0.5)
    one = g.f32(1.0)
    else_g = helper.make_graph([helper.make_node("Sub", [x, one], ["e_sub"]),
                                helper.make_node("Mul", ["e_sub", half], ["else_out"])], "else_branch", [],
                               [vi("else_out", FLOAT, [rows, n])])
    if_out = g.op("If", [cond], then_branch=then_g, else_branch=else_g)
    # Loop
    three = g.i64(rows)
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", three], ["i_mod"]),
         helper.make_node("Gather", [if_out, "i_mod"], ["row"], axis=0),
         helper.make_node("MatMul", ["h_in", wmat], ["hw"]),
         helper.make_node("Add", ["hw", "row"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["h_out"], ["h_scan"])],
        "loop_body",
        [vi("i", INT64, []), vi("cond_in", BOOL, []), vi("h_in", FLOAT, [1, n])],
        [vi("cond_out", BOOL, []), vi("h_out", FLOAT, [1, n]), vi("h_scan", FLOAT, [1, n])])
    h_final, h_all = g.op("Loop", [g.i64(steps), g.const(np.array(True), "cond"), g.f32(np.zeros((1, n)))], 2,
                          body=body)
    # Scan
    sbody = helper.make_graph(
        [helper.make_node("Mul", ["s_in", half], ["s_half"]),
         helper.make_node("Add", ["s_half", "x_t"], ["s_out"]),
         helper.make_node("Sigmoid", ["s_out"], ["y_t"])],
        "scan_body", [vi("s_in", FLOAT, [n]), vi("x_t", FLOAT, [n])],
        [vi("s_out", FLOAT, [n]), vi("y_t", FLOAT, [n])])
    s_final, ys = g.op("Scan", [g.f32(np.zeros(n)), x], 2, body=sbody, num_scan_inputs=1)
    g.output(if_out, "if_out")
    g.output(h_final, "loop_final", shape=[1, n])
    g.output(h_all, "loop_states")
    g.output(s_final, "scan_final")
    g.output(ys, "scan_outputs")
    return g.build()


def make_control_flow_inputs(model: onnx.ModelProto, seed: int = 0, sign: int = 1) -> dict:
    """x with a positive (sign=1: the If takes its then branch) or negative (sign=-1: else branch) sum."""
    x = make_float_inputs(model, seed)["x"]
    s = float(x.sum())
    return {"x": (x if s * sign > 0 else -x) + np.float32(0.25 * sign)}


# --- int8 QDQ and fp16 ---------------------------------------------------------------------------------------------

def build_qdq(c1=8, c2=16, image=16, num_classes=10, seed=19, opset=DEFAULT_OPSET):
    """A QDQ-quantised CNN as onnxruntime's quantiser writes it: QuantizeLinear/DequantizeLinear pairs on the
    activations (uint8, zero point 128), int8 weights with per-channel scales (DequantizeLinear axis=0), int32
    biases, Conv, Relu, GlobalAveragePool, a QDQ MatMul classifier. All scales are powers of two and all
    products small, so every float value in the graph is exact in float32 whatever the summation order: the
    uint8 tensor output `q_act` and everything else must then agree exactly. Outputs: logits and q_act."""
    g = _G("qdq", seed, opset)
    r = g.rng
    x = g.input("input", FLOAT, [1, 3, image, image])
    s_in, zp = 2.0 ** -5, np.uint8(128)

    def qdq(t, scale):
        sc, z = g.f32(scale), g.const(zp, "zp")
        q = g.op("QuantizeLinear", [t, sc, z])
        return q, g.op("DequantizeLinear", [q, sc, z])

    def qconv(t, cin, cout, s_x, k):
        w_scale = 2.0 ** -r.integers(6, 8, cout)                          # per output channel
        wq = r.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        w = g.op("DequantizeLinear", [g.const(wq, "wq"), g.f32(w_scale), g.const(np.zeros(cout, np.int8), "wzp")],
                 axis=0)
        bq = r.integers(-2000, 2000, cout).astype(np.int32)
        b = g.op("DequantizeLinear", [g.const(bq, "bq"), g.f32(s_x * w_scale), g.const(np.zeros(cout, np.int32),
                                                                                             "bzp")], axis=0)
        return g.op("Conv", [t, w, b], kernel_shape=[k, k], pads=[k // 2] * 4)

    _, x = qdq(x, s_in)
    x = g.op("Relu", [qconv(x, 3, c1, s_in, 3)])
    s_a = 2.0 ** -3
    q_act, x = qdq(x, s_a)
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Relu", [qconv(x, c1, c2, s_a, 3)])
    s_b = 2.0 ** -2
    _, x = qdq(x, s_b)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    s_g = 2.0 ** -6
    _, x = qdq(x, s_g)
    wq = r.integers(-127, 128, (c2, num_classes)).astype(np.int8)
    w = g.op("DequantizeLinear", [g.const(wq, "wq"), g.f32(2.0 ** -7), g.const(np.int8(0), "wzp")])
    g.output(g.op("MatMul", [x, w]), "logits")
    g.output(q_act, "q_act", UINT8)
    return g.build()


def make_qdq_inputs(model: onnx.ModelProto, seed: int = 0) -> dict:
    """Inputs on the 2^-5 input grid (with exact .5 ties after scaling, to test round-half-to-even) plus values
    that saturate the uint8 range."""
    rng = np.random.default_rng(seed)
    shape = input_shapes(model)["input"][1]
    x = rng.integers(-160, 160, shape) * 0.5 * 2.0 ** -5
    return {"input": x.astype(np.float32)}


def build_fp16(width=8, image=16, num_classes=10, seed=20, opset=DEFAULT_OPSET):
    """float16 at the edges, float32 inside: an fp16 input Cast to float32, conv weights stored as float16
    initializers and Cast up (the usual 'fp16 weights' export), a Cast down to float16 and back in the middle
    (rounds activations to half precision), and both a float32 and a float16 output."""
    g = _G("fp16", seed, opset)
    x = g.op("Cast", [g.input("input", FLOAT16, [1, 3, image, image])], to=FLOAT)

    def conv16(t, cin, cout):
        w = g.op("Cast", [g.const(g.he((cout, cin, 3, 3), cin * 9).astype(np.float16), "w16")], to=FLOAT)
        b = g.op("Cast", [g.const(g.rng.normal(0, 0.05, cout).astype(np.float16), "b16")], to=FLOAT)
        return g.op("Conv", [t, w, b], kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    x = g.op("Relu", [conv16(x, 3, width)])
    x = g.op("Cast", [g.op("Cast", [x], to=FLOAT16)], to=FLOAT)
    x = g.op("Relu", [conv16(x, width, width)])
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    logits = g.fc(x, width, num_classes)
    g.output(logits, "logits")
    g.output(g.op("Cast", [logits], to=FLOAT16), "logits_fp16", FLOAT16)
    return g.build()


# --- many small nodes (voice-activity / wake-word style) -----------------------------------------------------------

def build_vad(chunk=512, n_fft=64, hop=32, channels=16, hidden=16, bands=8, seed=21, opset=DEFAULT_OPSET):
    """A voice-activity detector in the style of small streaming models: hundreds of tiny nodes. Reflect Pad,
    STFT Conv1d, magnitude, per-band normalisation built from Slice/ReduceMean/Sub/Mul/Add/Relu per band and
    Concat, a Conv1d encoder, an ONNX GRU over the frames and a GRU cell unrolled by hand over the frames
    (Slice, MatMul, Add, Sigmoid, Tanh, Mul, Sub per step), a Conv1d decoder, Sigmoid and ReduceMean. Inputs:
    audio (1, chunk) and state (2, 1, hidden); outputs: prob (1, 1) and the new state."""
    g = _G("vad", seed, opset)
    bins = n_fft // 2 + 1
    frames = chunk // hop + 1
    x = g.input("audio", FLOAT, [1, chunk])
    state = g.input("state", FLOAT, [2, 1, hidden])
    x = g.op("Pad", [g.unsqueeze(x, [1]), g.i64([0, 0, n_fft // 2, 0, 0, n_fft // 2])], mode="reflect")
    spec = g.op("Conv", [x, g.const(_stft_kernels(n_fft), "stft")], kernel_shape=[n_fft], strides=[hop])
    re = g.op("Slice", [spec, g.i64([0]), g.i64([bins]), g.i64([1])])
    im = g.op("Slice", [spec, g.i64([bins]), g.i64([2 * bins]), g.i64([1])])
    mag = g.op("Sqrt", [g.op("Add", [g.op("Add", [g.op("Mul", [re, re]), g.op("Mul", [im, im])]), g.f32(1e-4)])])
    mag = g.op("Log", [g.op("Add", [mag, g.f32(1e-2)])])                                 # (1, bins, frames)
    edges = np.linspace(0, bins, bands + 1).astype(int)
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = g.op("Slice", [mag, g.i64([lo]), g.i64([hi]), g.i64([1])])
        centred = g.op("Sub", [band, g.reduce_mean(band, [1, 2])])
        y = g.op("Add", [g.op("Mul", [centred, g.f32(g.rng.uniform(0.5, 1.5))]), g.f32(g.rng.normal(0, 0.1))])
        parts.append(g.op("Relu", [y]))
        parts.append(g.op("Neg", [g.op("Relu", [g.op("Neg", [y])])]))
    x = g.op("Concat", parts, axis=1)                                                    # (1, 2 * bins, frames)
    c = 2 * bins
    for i in range(3):
        y = g.op("Relu", [g.conv1d(x, c, channels, 3)])
        x, c = (g.op("Add", [x, y]) if c == channels else y), channels
    # ONNX GRU over the frames, initial state = state[0]
    seq = g.op("Transpose", [x], perm=[2, 0, 1])                                         # (frames, 1, C)
    b = 1 / math.sqrt(hidden)
    h0 = g.op("Slice", [state, g.i64([0]), g.i64([1]), g.i64([0])])
    y, h_a = g.op("GRU", [seq, g.const(g.uniform((1, 3 * hidden, c), b), "W"),
                          g.const(g.uniform((1, 3 * hidden, hidden), b), "R"),
                          g.const(g.uniform((1, 6 * hidden), b), "B"), "", h0], 2, hidden_size=hidden,
                 linear_before_reset=1)
    # the same kind of cell unrolled by hand, state[1]
    h = g.op("Reshape", [g.op("Slice", [state, g.i64([1]), g.i64([2]), g.i64([0])]), g.i64([1, hidden])])
    wx = g.const(g.uniform((c, 3 * hidden), b), "Wx")
    wh = g.const(g.uniform((hidden, 3 * hidden), b), "Wh")
    bx = g.f32(g.uniform((3 * hidden,), b))
    steps = []
    for t in range(frames):
        xt = g.op("Reshape", [g.op("Slice", [x, g.i64([t]), g.i64([t + 1]), g.i64([2])]), g.i64([1, c])])
        gx = g.op("Add", [g.op("MatMul", [xt, wx]), bx])
        gh = g.op("MatMul", [h, wh])
        zr = g.op("Sigmoid", [g.op("Add", [g.op("Slice", [gx, g.i64([0]), g.i64([2 * hidden]), g.i64([1])]),
                                           g.op("Slice", [gh, g.i64([0]), g.i64([2 * hidden]), g.i64([1])])])])
        z = g.op("Slice", [zr, g.i64([0]), g.i64([hidden]), g.i64([1])])
        rr = g.op("Slice", [zr, g.i64([hidden]), g.i64([2 * hidden]), g.i64([1])])
        n = g.op("Tanh", [g.op("Add", [g.op("Slice", [gx, g.i64([2 * hidden]), g.i64([3 * hidden]), g.i64([1])]),
                                       g.op("Mul", [rr, g.op("Slice", [gh, g.i64([2 * hidden]),
                                                                       g.i64([3 * hidden]), g.i64([1])])])])])
        h = g.op("Add", [g.op("Mul", [g.op("Sub", [g.f32(1.0), z]), n]), g.op("Mul", [z, h])])
        steps.append(g.unsqueeze(h, [2]))
    manual = g.op("Concat", steps, axis=2)                                               # (1, hidden, frames)
    auto = g.op("Transpose", [g.op("Squeeze", [y, g.i64([1])])], perm=[1, 2, 0])          # (1, hidden, frames)
    x = g.op("Relu", [g.op("Concat", [auto, manual], axis=1)])
    x = g.op("Sigmoid", [g.conv1d(x, 2 * hidden, 1, 1, gain=4.0)])
    g.output(g.reduce_mean(x, [2], keepdims=0), "prob")
    g.output(g.op("Concat", [h_a, g.unsqueeze(h, [0])], axis=0), "new_state")
    return g.build()


def make_vad_inputs(model: onnx.ModelProto, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shapes = input_shapes(model)
    chunk = shapes["audio"][1][1]
    t = np.arange(chunk) / 16000.0
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(chunk)
    return {"audio": audio[None].astype(np.float32),
            "state": (0.5 * rng.standard_normal(shapes["state"][1])).astype(np.float32)}


# --- the registry --------------------------------------------------------------------------------------------------

class Family(NamedTuple):
    build: Callable[..., onnx.ModelProto]
    make_inputs: Callable[..., dict]


def _ocr_rec_inputs(model, seed=0, width=64):
    return make_float_inputs(model, seed, width=width)


def _ocr_det_inputs(model, seed=0, height=64, width=64):
    return make_float_inputs(model, seed, height=height, width=width)


def _batch_inputs(model, seed=0, batch=1):
    return make_float_inputs(model, seed, batch=batch)


FAMILIES: dict[str, Family] = {
    "resnet": Family(build_resnet, _batch_inputs),
    "resnet_bottleneck": Family(build_resnet_bottleneck, _batch_inputs),
    "mobilenetv2": Family(build_mobilenetv2, make_float_inputs),
    "shufflenet": Family(build_shufflenet, make_float_inputs),
    "squeezenet": Family(build_squeezenet, make_float_inputs),
    "densenet": Family(build_densenet, make_float_inputs),
    "inception": Family(build_inception, make_float_inputs),
    "vgg": Family(build_vgg, make_float_inputs),
    "yolo": Family(build_yolo, make_float_inputs),
    "face_detection": Family(build_face_detection, make_float_inputs),
    "face_embedding": Family(build_face_embedding, make_float_inputs),
    "ocr_det": Family(build_ocr_det, _ocr_det_inputs),
    "ocr_rec": Family(build_ocr_rec, _ocr_rec_inputs),
    "bert": Family(build_bert, make_bert_inputs),
    "lstm": Family(build_lstm, make_rnn_inputs),
    "gru": Family(build_gru, make_rnn_inputs),
    "rnn": Family(build_rnn, make_rnn_inputs),
    "audio_frontend": Family(build_audio_frontend, make_audio_inputs),
    "control_flow": Family(build_control_flow, make_control_flow_inputs),
    "qdq": Family(build_qdq, make_qdq_inputs),
    "fp16": Family(build_fp16, make_float_inputs),
    "vad": Family(build_vad, make_vad_inputs),
}

# Outputs whose argmax over the last axis must be identical (classifiers; CTC frames for ocr_rec).
CLASSIFIER_OUTPUTS: dict[str, tuple[str, ...]] = {
    "resnet": ("logits",), "resnet_bottleneck": ("logits",), "mobilenetv2": ("logits",), "shufflenet": ("logits",),
    "squeezenet": ("probs",),
    "densenet": ("logits",), "inception": ("logits",), "vgg": ("logits",), "ocr_rec": ("probs",),
    "bert": ("logits",), "qdq": ("logits",), "fp16": ("logits",),
}

# Two settings of the symbolic dims (keyword arguments of make_inputs) that one Session must both run.
DYNAMIC_DIMS: dict[str, tuple[dict, dict]] = {
    "resnet": ({"batch": 1}, {"batch": 3}),
    "resnet_bottleneck": ({"batch": 1}, {"batch": 2}),
    "ocr_det": ({"height": 64, "width": 64}, {"height": 32, "width": 96}),
    "ocr_rec": ({"width": 64}, {"width": 100}),
    "bert": ({"batch": 1, "seq": 16}, {"batch": 3, "seq": 9}),
    "lstm": ({"seq": 7, "batch": 2}, {"seq": 3, "batch": 1}),
    "gru": ({"seq": 7, "batch": 2}, {"seq": 11, "batch": 3}),
    "rnn": ({"seq": 7, "batch": 2}, {"seq": 4, "batch": 1}),
    "audio_frontend": ({"batch": 1, "samples": 400}, {"batch": 2, "samples": 257}),
    "control_flow": ({"sign": 1}, {"sign": -1}),   # not a shape: the two branches of the If
}

# Full-size benchmark models: name -> (family, build kwargs, make_inputs kwargs).
BENCH_MODELS: dict[str, tuple[str, dict, dict]] = {
    "resnet18": ("resnet", dict(depths=(2, 2, 2, 2), widths=(64, 128, 256, 512), image=224, num_classes=1000), {}),
    "resnet50": ("resnet_bottleneck", dict(depths=(3, 4, 6, 3), widths=(64, 128, 256, 512), image=224,
                                           num_classes=1000), {}),
    "mobilenetv2": ("mobilenetv2", dict(settings=MOBILENETV2_SETTINGS, stem=32, last=1280, image=224,
                                        num_classes=1000), {}),
    "bert_small": ("bert", dict(layers=4, hidden=512, heads=8, intermediate=2048, vocab=30522, max_pos=512,
                                num_labels=2), dict(batch=1, seq=128)),
    "vad": ("vad", {}, {}),
}
# Small stand-ins for the benchmark smoke run (same families, test sizes).
BENCH_MODELS_QUICK: dict[str, tuple[str, dict, dict]] = {
    "resnet18": ("resnet", {}, {}), "resnet50": ("resnet_bottleneck", {}, {}), "mobilenetv2": ("mobilenetv2", {}, {}),
    "bert_small": ("bert", {}, {}), "vad": ("vad", {}, {}),
}


def build(family: str, **size) -> onnx.ModelProto:
    return FAMILIES[family].build(**size)


def make_inputs(family: str, model: onnx.ModelProto, seed: int = 0, **dims) -> dict:
    return FAMILIES[family].make_inputs(model, seed, **dims)
