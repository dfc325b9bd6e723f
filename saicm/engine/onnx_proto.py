"""The few ONNX messages the engine writes, serialized as protobuf wire format with no dependency.

Why not the ``onnx`` package: it and what it pulls in (ml_dtypes) take ~105 MB of the
coding-only install, to serialize a dozen small messages once per model. The
field numbers below are those of ``onnx.proto`` (ONNX IR version 8); the wire
format is protobuf's (varint keys; varints; length-delimited strings, bytes and
messages; fixed32 floats). ``tests/test_engine_onnx.py`` parses what this
writes with the ``onnx`` package and runs its checker, where it is installed.
"""

from __future__ import annotations

import struct

import numpy as np

from ..entropy.tables import leb128

FLOAT, UINT8, INT8, INT32 = 1, 2, 3, 6  # TensorProto.DataType
_NUMPY = {FLOAT: "<f4", UINT8: "u1", INT8: "i1", INT32: "<i4"}  # little-endian, as raw_data is
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7  # AttributeProto.AttributeType


_varint = leb128  # every integer written here (sizes, counts, enums, field keys) is non-negative


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, v: int) -> bytes:
    return _key(field, 0) + _varint(int(v))


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def tensor(name: str, value: np.ndarray, data_type: int = FLOAT) -> bytes:
    """TensorProto of an array as ``data_type`` (float32 unless told; dims 1, data_type 2, name 8, raw_data 9;
    little-endian)."""
    a = np.ascontiguousarray(value, dtype=_NUMPY[data_type])
    return b"".join(_int(1, d) for d in a.shape) + _int(2, data_type) + _str(8, name) + _bytes(9, a.tobytes())


def _attribute(name: str, value) -> bytes:
    """AttributeProto (name 1, f 2, i 3, s 4, ints 8, type 20) of a float, an int, a string or a list of ints."""
    if isinstance(value, str):
        return _str(1, name) + _str(4, value) + _int(20, _ATTR_STRING)
    if isinstance(value, float):
        return _str(1, name) + _key(2, 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, int):
        return _str(1, name) + _int(3, value) + _int(20, _ATTR_INT)
    return _str(1, name) + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)


def node(op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> bytes:
    """NodeProto (input 1, output 2, name 3, op_type 4, attribute 5)."""
    return (b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs) + _str(3, name)
            + _str(4, op_type) + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items())))


def value_info(name: str, dims: list, data_type: int = FLOAT) -> bytes:
    """ValueInfoProto of a tensor (float32 unless told); ``dims`` entries are sizes (int) or symbolic names (str)."""
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in dims)
    tensor_type = _int(1, data_type) + _bytes(2, shape)  # TypeProto.Tensor: elem_type 1, shape 2
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))  # ValueInfoProto: name 1, type 2 (tensor_type 1)


def model(nodes: list[bytes], name: str, inputs: list[bytes], outputs: list[bytes], initializers: list[bytes],
          opset: int, ir_version: int, producer: str) -> bytes:
    """ModelProto (ir_version 1, producer_name 2, graph 7, opset_import 8) of one graph
    (GraphProto: node 1, name 2, initializer 5, input 11, output 12)."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _str(2, name) + b"".join(_bytes(5, t) for t in initializers)
             + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs))
    opset_id = _str(1, "") + _int(2, opset)  # OperatorSetIdProto: domain 1, version 2
    return _int(1, ir_version) + _str(2, producer) + _bytes(7, graph) + _bytes(8, opset_id)
