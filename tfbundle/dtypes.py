"""TensorFlow DataType numbers, names and element sizes (checked against TF's types.proto in tests)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    number: int
    name: str                # TensorFlow's Python name, e.g. "float32"
    itemsize: int | None     # bytes per element; None where the size is data-dependent
    float_exponent_mask: int = 0  # bits that are all ones for Inf/NaN, per `itemsize` word


_TABLE = [
    DType(1, "float32", 4, 0x7F800000),
    DType(2, "float64", 8, 0x7FF0000000000000),
    DType(3, "int32", 4),
    DType(4, "uint8", 1),
    DType(5, "int16", 2),
    DType(6, "int8", 1),
    DType(7, "string", None),
    DType(8, "complex64", 8),
    DType(9, "int64", 8),
    DType(10, "bool", 1),
    DType(11, "qint8", 1),
    DType(12, "quint8", 1),
    DType(13, "qint32", 4),
    DType(14, "bfloat16", 2, 0x7F80),
    DType(15, "qint16", 2),
    DType(16, "quint16", 2),
    DType(17, "uint16", 2),
    DType(18, "complex128", 16),
    DType(19, "float16", 2, 0x7C00),
    DType(20, "resource", None),
    DType(21, "variant", None),
    DType(22, "uint32", 4),
    DType(23, "uint64", 8),
    DType(24, "float8_e5m2", 1),
    DType(25, "float8_e4m3fn", 1),
    DType(26, "float8_e4m3fnuz", 1),
    DType(27, "float8_e4m3b11fnuz", 1),
    DType(28, "float8_e5m2fnuz", 1),
    DType(29, "int4", 1),
    DType(30, "uint4", 1),
    DType(31, "int2", 1),
    DType(32, "uint2", 1),
    DType(33, "float4_e2m1fn", 1),
]

BY_NUMBER = {d.number: d for d in _TABLE}
BY_NAME = {d.name: d for d in _TABLE}
BY_NAME.update({"half": BY_NAME["float16"], "float": BY_NAME["float32"], "double": BY_NAME["float64"]})

DT_STRING = 7
DT_RESOURCE = 20
DT_VARIANT = 21


def dtype(number_or_name) -> DType:
    """Look up a dtype by enum number or TF name; unknown numbers get a placeholder, not a crash."""
    if isinstance(number_or_name, str):
        try:
            return BY_NAME[number_or_name]
        except KeyError:
            raise ValueError(f"unknown TensorFlow dtype name {number_or_name!r}") from None
    return BY_NUMBER.get(number_or_name) or DType(number_or_name, f"dtype_{number_or_name}", None)


def complex_part_mask(dt: DType) -> tuple[int, int] | None:
    """Complex numbers are two floats: (part size, exponent mask) for finiteness checks."""
    if dt.name == "complex64":
        return 4, 0x7F800000
    if dt.name == "complex128":
        return 8, 0x7FF0000000000000
    return None
