"""Two rewrites of an exported NeuroFusionNet graph that ONNX Runtime's own optimiser leaves undone, applied in
memory when a predictor loads the model (the file on disk and its sha256 in the card stay as exported).

- GELU: the dynamo export writes ``x * 0.5 * (1 + erf(x / sqrt 2))`` as five element-wise nodes, each a full pass
  over a (channels x filters x time) tensor; ORT 1.32's GeluFusion does not match this node order. They become one
  ``com.microsoft.Gelu`` (the same erf formula in one pass).
- Conv1d -> Conv2d with a height of 1: ORT's CPU provider runs 2-D convolutions through its NCHWc kernels, 1-D ones
  through a per-image im2col + GEMM; same arithmetic per output, summed in another order (float32 rounding).

The graph is edited as plain protobuf messages (onnx's generated ``onnx_ml_pb2``, loaded on its own): ``import
onnx`` costs 1.4-1.5 s at load 10 (its ml_dtypes extension), which every worker start would pay.

On the 16x16 grid's network (256 channels, one window, one thread) this took ~8.6-9.0 ms of CPU per window to
~6.3-6.5 ms; outputs agree to ~1e-7 (``tests/models/test_onnx_rewrite.py`` holds them to 1e-5 and equal classes).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MICROSOFT_DOMAIN = "com.microsoft"
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_NUMPY_TYPES = {_FLOAT: np.float32, _INT64: np.int64}
_INTS, _INT = 7, 2  # AttributeProto.AttributeType


@functools.cache
def proto() -> ModuleType:
    """onnx's generated protobuf module, without running ``onnx/__init__`` (and its 1.5 s import)."""
    import importlib.util

    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx is not installed")
    path = Path(spec.submodule_search_locations[0]) / "onnx_ml_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_neurofusion_onnx_ml_pb2", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def tensor_array(tensor: Any) -> np.ndarray:
    dtype = _NUMPY_TYPES.get(tensor.data_type)
    if dtype is None:
        raise ValueError(f"initializer {tensor.name} has data type {tensor.data_type}")
    if tensor.raw_data:
        values = np.frombuffer(tensor.raw_data, dtype=dtype)
    else:
        values = np.array(tensor.float_data if dtype is np.float32 else tensor.int64_data, dtype=dtype)
    return values.reshape(tuple(tensor.dims))


def make_tensor(values: np.ndarray, name: str) -> Any:
    values = np.ascontiguousarray(values)
    data_type = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[values.dtype]
    return proto().TensorProto(name=name, dims=values.shape, data_type=data_type, raw_data=values.tobytes())


def make_node(op_type: str, inputs: list[str], outputs: list[str], name: str = "", domain: str = "",
              **ints: int | list[int]) -> Any:
    attributes = [proto().AttributeProto(name=key, type=_INTS, ints=value) if isinstance(value, list)
                  else proto().AttributeProto(name=key, type=_INT, i=value) for key, value in ints.items()]  # fmt: skip
    return proto().NodeProto(op_type=op_type, input=inputs, output=outputs, name=name, domain=domain,
                             attribute=attributes)  # fmt: skip


def _attributes(node: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in node.attribute:
        if attribute.type == _INTS:
            values[attribute.name] = list(attribute.ints)
        elif attribute.type == _INT:
            values[attribute.name] = attribute.i
        else:
            values[attribute.name] = attribute.s if attribute.s else None
    return values


def _scalar(initializers: dict[str, Any], name: str) -> float | None:
    tensor = initializers.get(name)
    if tensor is None or tensor.data_type not in _NUMPY_TYPES:
        return None
    value = tensor_array(tensor)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _other_input(node: Any, known: str) -> str | None:
    inputs = list(node.input)
    if len(inputs) != 2 or known not in inputs:
        return None
    return inputs[1] if inputs[0] == known else inputs[0]


def _consumers(nodes: list[Any]) -> dict[str, list[Any]]:
    """Tensor name -> the nodes that read it."""
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _only_consumer_finder(consumers: dict[str, list[Any]], graph_outputs: set[str]) -> Callable[[str, str], Any]:
    """``find(name, op_type)``: the one node that reads tensor ``name`` when it is of ``op_type`` and ``name`` is no
    graph output (a rewrite may then fold the tensor away), else None."""

    def find(name: str, op_type: str) -> Any:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type and name not in graph_outputs else None

    return find


def fuse_gelu(graph: Any) -> int:
    """Replaces Div(x, sqrt2) -> Erf -> Add(1) -> Mul(0.5) -> Mul(x) (either Mul first) by one Gelu(x)."""
    nodes = list(graph.node)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    consumers = _consumers(nodes)
    only_consumer = _only_consumer_finder(consumers, graph_outputs)

    replaced: dict[int, Any] = {}  # id of the pattern's last node -> the Gelu that takes its place
    dropped: set[int] = set()
    for erf in (node for node in nodes if node.op_type == "Erf"):
        divide = next((node for node in nodes if erf.input[0] in node.output), None)
        if divide is None or divide.op_type != "Div" or len(consumers.get(divide.output[0], [])) != 1:
            continue
        x = divide.input[0]
        root_two = _scalar(initializers, divide.input[1])
        if root_two is None or not math.isclose(root_two, math.sqrt(2.0), rel_tol=1e-6):
            continue
        add = only_consumer(erf.output[0], "Add")
        if add is None or _scalar(initializers, _other_input(add, erf.output[0]) or "") != 1.0:
            continue
        first = only_consumer(add.output[0], "Mul")
        if first is None:
            continue
        factor = _other_input(first, add.output[0])
        second = only_consumer(first.output[0], "Mul")
        if factor is None or second is None:
            continue
        last_factor = _other_input(second, first.output[0])
        if not ((_scalar(initializers, factor) == 0.5 and last_factor == x)
                or (factor == x and _scalar(initializers, last_factor or "") == 0.5)):  # fmt: skip
            continue
        gelu = make_node("Gelu", [x], [second.output[0]], name=f"{erf.name}_gelu", domain=MICROSOFT_DOMAIN)
        replaced[id(second)] = gelu
        dropped.update(id(node) for node in (divide, erf, add, first))
    if not replaced:
        return 0
    rewritten = [replaced.get(id(node), node) for node in nodes if id(node) not in dropped]
    del graph.node[:]
    graph.node.extend(rewritten)
    return len(replaced)


def conv1d_as_conv2d(graph: Any) -> int:
    """Every Conv with a 3-D weight initializer becomes Unsqueeze -> Conv (height 1) -> Squeeze."""
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    axis_name = "conv1d_as_conv2d_axis"
    rewritten, count = [], 0
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        attributes = _attributes(node)
        explicit_pads = attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        if weight is None or len(weight.dims) != 3 or not explicit_pads:
            rewritten.append(node)
            continue
        kernel = int(weight.dims[2])
        pads = list(attributes.get("pads", [0, 0]))
        weight_2d = make_tensor(tensor_array(weight)[:, :, np.newaxis, :], f"{weight.name}_2d")
        graph.initializer.append(weight_2d)
        as_image, image_out = f"{node.output[0]}_image_in", f"{node.output[0]}_image_out"
        rewritten.append(make_node("Unsqueeze", [node.input[0], axis_name], [as_image]))
        rewritten.append(make_node(
            "Conv", [as_image, weight_2d.name, *node.input[2:]], [image_out], name=f"{node.name}_2d",
            kernel_shape=[1, kernel], strides=[1, int(attributes.get("strides", [1])[0])],
            pads=[0, int(pads[0]), 0, int(pads[1])], dilations=[1, int(attributes.get("dilations", [1])[0])],
            group=int(attributes.get("group", 1)),
        ))  # fmt: skip
        rewritten.append(make_node("Squeeze", [image_out, axis_name], [node.output[0]]))
        count += 1
    if count:
        graph.initializer.append(make_tensor(np.array([2], dtype=np.int64), axis_name))
        del graph.node[:]
        graph.node.extend(rewritten)
        _drop_unused_initializers(graph)
    return count


def _drop_unused_initializers(graph: Any) -> None:
    # ORT warns once per unused initializer at every load: the replaced 1-D weights would each print a line
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def gelu_in_blocked_layout(graph: Any) -> int:
    """In ORT's optimised graph: each Gelu between an NCHWc convolution's ReorderOutput -> Squeeze and the next
    convolution's Unsqueeze -> ReorderInput reads and writes the blocked tensor directly (GELU is element-wise, so
    the layout does not change a value). Other consumers of the Gelu still get the plain tensor, reordered after it.

    Only where the filters are a multiple of 16 (the widest NCHWc block): no padded lanes in the blocked tensor."""
    nodes = list(graph.node)
    graph_outputs = {output.name for output in graph.output}
    producer = {name: node for node in nodes for name in node.output}
    consumers = _consumers(nodes)
    single = _only_consumer_finder(consumers, graph_outputs)

    dropped: set[int] = set()
    moved: dict[int, list[Any]] = {}  # id of a Gelu -> the reorder and squeeze that now follow it
    count = 0
    for gelu in (node for node in nodes if node.op_type == "Gelu" and node.domain == MICROSOFT_DOMAIN):
        squeeze = producer.get(gelu.input[0])
        if squeeze is None or squeeze.op_type != "Squeeze" or single(squeeze.output[0], "Gelu") is not gelu:
            continue
        reorder = producer.get(squeeze.input[0])
        if (reorder is None or reorder.op_type != "ReorderOutput" or single(reorder.output[0], "Squeeze") is None
                or _attributes(reorder).get("channels_last", 0) != 0 or _attributes(reorder).get("channels", 1) % 16):
            continue
        blocked_users, plain_users = [], []
        for user in consumers.get(gelu.output[0], []):
            reorder_in = single(user.output[0], "ReorderInput") if user.op_type == "Unsqueeze" else None
            same_axis = reorder_in is not None and list(user.input[1:]) == list(squeeze.input[1:])
            if same_axis and _attributes(reorder_in).get("channels_last", 0) == 0:
                blocked_users.append((user, reorder_in))
            else:
                plain_users.append(user)
        if not blocked_users or gelu.output[0] in graph_outputs:
            continue
        plain_name, blocked_name = gelu.output[0], f"{gelu.output[0]}_nchwc"
        gelu.input[0], gelu.output[0] = reorder.input[0], blocked_name
        for unsqueeze, reorder_in in blocked_users:
            for user in consumers.get(reorder_in.output[0], []):
                user.input[:] = [blocked_name if name == reorder_in.output[0] else name for name in user.input]
            dropped.update((id(unsqueeze), id(reorder_in)))
        dropped.update((id(reorder), id(squeeze)))
        if plain_users:  # e.g. the attention's weighted sum reads the last Gelu as well
            reorder.input[0], squeeze.output[0] = blocked_name, plain_name
            moved[id(gelu)] = [reorder, squeeze]
        count += 1
    if count:
        rewritten = []
        for node in nodes:
            if id(node) not in dropped:
                rewritten.append(node)
            rewritten.extend(moved.get(id(node), []))
        del graph.node[:]
        graph.node.extend(rewritten)
        del graph.value_info[:]  # shapes of the renamed tensors: ORT infers them again
    return count


def ort_optimised_bytes(model: bytes) -> bytes:
    """``model`` as ORT's CPU provider optimises it on this machine (fusions, NCHWc convolutions for its vector
    width), serialised: the graph it would run, to be edited further before the real session loads it."""
    import tempfile

    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="nf-onnx-") as folder:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warning that the saved graph holds hardware-specific kernels
        options.optimized_model_filepath = str(Path(folder) / "optimised.onnx")
        onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return Path(options.optimized_model_filepath).read_bytes()


def serving_model_bytes(path: str | Path) -> bytes | None:
    """What the inference worker loads: ``faster_model_bytes``, then ORT's optimised graph for this CPU with the
    GELUs kept in the convolutions' blocked layout (``gelu_in_blocked_layout``: the ReorderOutput/ReorderInput
    pairs between the convolutions, ~15 % of a window's CPU at 256 channels, are gone; outputs bit-identical,
    ``tests/inference/test_serving_model.py``). None when nothing applied; the first step alone when the second
    fails. Computed at each load, on the machine that runs it (the blocked layout depends on its CPU)."""
    faster = faster_model_bytes(path)
    if faster is None:
        return None
    try:
        model = proto().ModelProto()
        model.ParseFromString(ort_optimised_bytes(faster))
        if not gelu_in_blocked_layout(model.graph):
            return faster
        return model.SerializeToString()
    except Exception as error:  # an ORT that names its blocked kernels otherwise: the first rewrites still hold
        log.warning("blocked-layout GELU rewrite of %s skipped (%s: %s)", path, type(error).__name__, error)
        return faster


def faster_model_bytes(path: str | Path, rewrites: Iterable[str] = ("gelu", "conv2d")) -> bytes | None:
    """The model at ``path`` with the rewrites applied, serialised for ``onnxruntime.InferenceSession``; None when
    nothing applied or the rewrite failed (the caller then loads the file as it is)."""
    try:
        model = proto().ModelProto()
        model.ParseFromString(Path(path).read_bytes())
        counts = {}
        if "gelu" in rewrites:
            counts["gelu"] = fuse_gelu(model.graph)
            if counts["gelu"] and not any(o.domain == MICROSOFT_DOMAIN for o in model.opset_import):
                model.opset_import.append(proto().OperatorSetIdProto(domain=MICROSOFT_DOMAIN, version=1))
        if "conv2d" in rewrites:
            counts["conv2d"] = conv1d_as_conv2d(model.graph)
        if not any(counts.values()):
            return None
        log.debug("rewrote %s: %s", path, counts)
        return model.SerializeToString()
    except Exception as error:  # a graph this module does not know: the export as it is still runs
        log.warning("ONNX rewrite of %s skipped (%s: %s)", path, type(error).__name__, error)
        return None
