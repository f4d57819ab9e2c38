"""Export a :class:`~cyprop.Network` as a standard ONNX model.

The graph is the network's forward pass: for each layer ``MatMul`` by ``W``,
``Add`` of ``b``, then the activation's ONNX operator (in float64, leaky ReLU
is ``Max`` of ``z`` and ``Mul`` of ``z`` by the slope, since ``LeakyRelu``
holds its slope in float32). It takes ``X`` of
shape ``(batch, n_features)`` in the network's dtype, with any batch size,
and returns ``Y`` of shape ``(batch, n_outputs)``. Needs the ``onnx``
package (``pip install "cyprop[onnx]"``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cyprop.network import Network

#: The ONNX operator set the exported graph uses.
OPSET = 17

_OPERATORS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "identity": "Identity",
    "softmax": "Softmax",
}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            'exporting to ONNX needs the onnx package: pip install "cyprop[onnx]"'
        ) from None
    return onnx


def to_onnx_model(net: Network, leaky_relu_slope: float) -> Any:
    """The network's forward pass as an ``onnx.ModelProto``."""
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    element = TensorProto.FLOAT if net.dtype == np.float32 else TensorProto.DOUBLE
    nodes, initializers = [], []
    current = "X"
    for index, (W, b, activation) in enumerate(zip(net.weights, net.biases, net.activations)):
        W_name, b_name = f"W{index + 1}", f"b{index + 1}"
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(W), W_name))
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(b), b_name))
        product, shifted = f"layer{index + 1}_product", f"layer{index + 1}_z"
        output = "Y" if index == len(net.weights) - 1 else f"layer{index + 1}_a"
        nodes.append(helper.make_node("MatMul", [current, W_name], [product]))
        nodes.append(helper.make_node("Add", [product, b_name], [shifted]))
        if activation == "leaky_relu" and net.dtype == np.float64:
            # LeakyRelu's alpha is a float32 attribute, 0.0099999998 for 0.01;
            # max(z, slope z) takes the slope in double, as predict does.
            slope, scaled = f"layer{index + 1}_slope", f"layer{index + 1}_scaled"
            initializers.append(numpy_helper.from_array(
                np.array(leaky_relu_slope, dtype=np.float64), slope))
            nodes.append(helper.make_node("Mul", [shifted, slope], [scaled]))
            nodes.append(helper.make_node("Max", [shifted, scaled], [output]))
            current = output
            continue
        options: dict[str, Any] = {}
        if activation == "leaky_relu":
            options["alpha"] = leaky_relu_slope
        elif activation == "softmax":
            options["axis"] = -1
        nodes.append(helper.make_node(_OPERATORS[activation], [shifted], [output], **options))
        current = output
    graph = helper.make_graph(
        nodes,
        "cyprop_network",
        [helper.make_tensor_value_info("X", element, ["batch", net.layer_sizes[0]])],
        [helper.make_tensor_value_info("Y", element, ["batch", net.layer_sizes[-1]])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="cyprop",
    )
    model.ir_version = 8  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model)
    return model


def save_onnx(net: Network, path: str | os.PathLike[str], leaky_relu_slope: float) -> None:
    """Write the network's ONNX model to ``path``."""
    model = to_onnx_model(net, leaky_relu_slope)
    with open(path, "wb") as stream:
        stream.write(model.SerializeToString())
