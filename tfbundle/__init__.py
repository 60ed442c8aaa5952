"""TensorFlow's TensorBundle checkpoint format in plain Python: no TensorFlow, no Beam.

Read and write `.index` files byte-identically to TensorFlow, checksum tensor bytes the way
BundleWriter does, and find the object graph at the end of a TF2 data file.
"""

from .crc import combine as crc_combine
from .crc import mask as crc_mask
from .crc import unmask as crc_unmask
from .dtypes import DT_STRING, DT_VARIANT, DType, dtype
from .errors import FormatError
from .index import HEADER_KEY, BundleIndex, read_index, write_index
from .messages import BundleEntry, BundleHeader, TensorSlice
from .naming import (
    INDEX_SUFFIX,
    data_filename,
    index_filename,
    name_stem,
    parse_data_filename,
    shard_coverage,
    split_step,
    step_of,
)
from .object_graph import OBJECT_GRAPH_KEY, ObjectGraph, locate_object_graph, parse_object_graph
from .scan import scan_spans
from .slices import decode_slice_key, encode_slice_key, is_slice_key
from .source import ByteSource
from .tensors import checksummer, measure, num_elements, numeric_size

__all__ = [
    "BundleEntry", "BundleHeader", "BundleIndex", "ByteSource", "DT_STRING", "DT_VARIANT", "DType",
    "FormatError", "HEADER_KEY", "INDEX_SUFFIX", "OBJECT_GRAPH_KEY", "ObjectGraph", "TensorSlice", "checksummer",
    "crc_combine", "crc_mask", "crc_unmask", "data_filename", "decode_slice_key", "dtype",
    "encode_slice_key", "index_filename", "is_slice_key", "locate_object_graph", "measure",
    "name_stem", "num_elements", "numeric_size", "parse_data_filename", "parse_object_graph", "read_index",
    "scan_spans", "shard_coverage", "split_step", "step_of", "write_index",
]
