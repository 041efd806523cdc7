"""Frozen TensorFlow GraphDefs (`frozen_inference_graph.pb`), read without TensorFlow.

The `tensorboard` package ships TF's GraphDef protos (`tensorboard.compat.proto`), so a frozen graph parses
with protobuf alone: nothing in the file is executed. A frozen graph holds every variable as a `Const` node
named after the variable (`FeatureExtractor/MobilenetV2/Conv/weights`), read through an `Identity` (`.../read`).
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError

log = logging.getLogger(__name__)

# TF DataType enum values (types.proto) -> numpy dtypes, and the repeated field each keeps its values in.
_DTYPES = {
    1: (np.float32, "float_val"),
    2: (np.float64, "double_val"),
    3: (np.int32, "int_val"),
    4: (np.uint8, "int_val"),
    5: (np.int16, "int_val"),
    6: (np.int8, "int_val"),
    9: (np.int64, "int64_val"),
    10: (np.bool_, "bool_val"),
    19: (np.float16, "half_val"),
}


def decode_tensor(tensor) -> np.ndarray:
    """A TensorProto's value as a numpy array (raw `tensor_content`, or the typed repeated field, where a
    shorter list repeats its last value over the shape, as TF does)."""
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    if tensor.dtype not in _DTYPES:
        raise UserError(f"unsupported constant dtype {tensor.dtype} (TF DataType enum)")
    dtype, field = _DTYPES[tensor.dtype]
    size = int(np.prod(shape)) if shape else 1
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        stored = list(getattr(tensor, field))
        if dtype is np.float16:  # half_val holds the raw 16-bit patterns as ints
            values = np.array(stored, dtype=np.uint16).view(np.float16)
        else:
            values = np.array(stored, dtype=dtype)
        if values.size == 0:
            values = np.zeros(size, dtype=dtype)
        elif values.size < size:
            values = np.concatenate([values, np.full(size - values.size, values[-1], dtype=dtype)])
    if values.size != size:
        raise UserError(f"constant of shape {shape} holds {values.size} values")
    return values.astype(dtype, copy=True).reshape(shape)


def node_name(ref: str) -> str:
    """'^name', 'name:1' -> 'name' (an input reference without control marker or output index)."""
    return ref.lstrip("^").split(":")[0]


@dataclass
class FrozenGraph:
    """The nodes of a GraphDef by name, with helpers to read constants and follow inputs."""

    path: Path
    nodes: dict

    def has(self, name: str) -> bool:
        return name in self.nodes

    def op(self, name: str) -> str:
        return self.nodes[name].op

    def inputs(self, name: str) -> list[str]:
        """Data inputs (control inputs dropped), as references ('name' or 'name:k')."""
        return [i for i in self.nodes[name].input if not i.startswith("^")]

    def resolve(self, name: str) -> str:
        """Follow Identity nodes (a variable's '/read') back to the node that produces the value."""
        seen = 0
        while name in self.nodes and self.nodes[name].op == "Identity" and seen < 100:
            name, seen = node_name(self.nodes[name].input[0]), seen + 1
        return name

    def const(self, name: str) -> np.ndarray:
        """The value of the constant `name` (through Identity nodes); UserError naming it when absent."""
        resolved = self.resolve(name)
        if resolved not in self.nodes:
            raise UserError(f"{self.path.name}: the graph has no tensor {name!r}")
        node = self.nodes[resolved]
        if node.op != "Const":
            raise UserError(f"{self.path.name}: {name!r} is computed by a {node.op} op, not stored as a constant")
        return decode_tensor(node.attr["value"].tensor)

    def const_names(self, prefix: str = "") -> list[str]:
        """Names of the constants that start with `prefix`, in graph order (nothing decoded)."""
        return [n for n, node in self.nodes.items() if node.op == "Const" and n.startswith(prefix)]

    def consts(self, prefix: str = "") -> dict[str, np.ndarray]:
        """{name: value} of every constant whose name starts with `prefix`."""
        return {
            n: decode_tensor(node.attr["value"].tensor)
            for n, node in self.nodes.items()
            if node.op == "Const" and n.startswith(prefix)
        }

    def input_const(self, name: str, index: int) -> np.ndarray | None:
        """The constant feeding input `index` of node `name`, or None when that input is computed."""
        ref = node_name(self.inputs(name)[index])
        resolved = self.resolve(ref)
        if resolved in self.nodes and self.nodes[resolved].op == "Const":
            return decode_tensor(self.nodes[resolved].attr["value"].tensor)
        return None

    def find(self, op: str, pattern: str = "") -> list[str]:
        """Names of the nodes of type `op` (in graph order) whose name matches the regex `pattern`."""
        rx = re.compile(pattern)
        return [n for n, node in self.nodes.items() if node.op == op and rx.search(n)]

    def attr(self, name: str, key: str):
        return self.nodes[name].attr[key]


def read_graph(path: str | Path) -> FrozenGraph:
    """Parse a binary GraphDef (.pb). UserError for anything that is not one."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import graph_pb2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such graph file: {path}")
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UserError(f"{path} is not a binary TensorFlow GraphDef ({type(exc).__name__}: {exc})") from None
    if not graph.node:
        raise UserError(f"{path} holds no graph nodes (a binary frozen GraphDef .pb expected)")
    nodes = {}
    for node in graph.node:
        nodes[node.name] = node
    log.debug("%s: %d nodes", path.name, len(nodes))
    return FrozenGraph(path, nodes)
