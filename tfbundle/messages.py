"""BundleHeaderProto, BundleEntryProto and TensorSliceProto as plain values, coded by `protobuf`.

Serialization is protobuf's (fields in number order, proto3 zero scalars omitted), which is what
TensorFlow's C++ writes; `shape` is always present because BundleWriter sets it through
`mutable_shape()`. These messages are closed (every field BundleWriter may write is declared), so
decoding rejects both a wrong wire type and a field TensorFlow does not write, in every part read.
"""

from dataclasses import dataclass, field

from .errors import FormatError
from .protos import tensor_bundle_pb2 as pb
from .schema import check, check_tree, parse


@dataclass(frozen=True)
class TensorSlice:
    """One stored slice: per dimension (start, length), or None where the slice spans the whole dim."""

    extents: tuple

    def to_proto(self, proto: pb.TensorSliceProto | None = None) -> pb.TensorSliceProto:
        proto = pb.TensorSliceProto() if proto is None else proto
        for extent in self.extents:
            item = proto.extent.add()
            if extent is not None:
                item.start, item.length = extent
        return proto

    @classmethod
    def from_proto(cls, proto: pb.TensorSliceProto) -> "TensorSlice":
        check(proto, closed=True)
        return cls(tuple((e.start, e.length) if check(e, closed=True).HasField("length") else None
                         for e in proto.extent))

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString()

    @classmethod
    def decode(cls, buf: bytes) -> "TensorSlice":
        return cls.from_proto(parse(pb.TensorSliceProto, buf))

    def shape_within(self, full_shape) -> tuple:
        return tuple(full if ext is None else ext[1] for ext, full in zip(self.extents, full_shape))


@dataclass
class BundleEntry:
    dtype: int
    shape: tuple
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0          # masked, exactly as stored
    slices: tuple = field(default_factory=tuple)

    def encode(self) -> bytes:
        proto = pb.BundleEntryProto(dtype=self.dtype, shard_id=self.shard_id, offset=self.offset, size=self.size,
                                    crc32c=self.crc32c)
        proto.shape.SetInParent()
        proto.shape.dim.extend(pb.TensorShapeProto.Dim(size=size) for size in self.shape)
        for piece in self.slices:
            piece.to_proto(proto.slices.add())
        return proto.SerializeToString()

    @classmethod
    def decode(cls, buf: bytes) -> "BundleEntry":
        proto = check(parse(pb.BundleEntryProto, buf), closed=True)   # its parts are checked as they are read
        return cls(
            dtype=proto.dtype,
            shape=shape_of(proto.shape),
            shard_id=proto.shard_id,
            offset=proto.offset,
            size=proto.size,
            crc32c=proto.crc32c,
            slices=tuple(TensorSlice.from_proto(s) for s in proto.slices),
        )


@dataclass
class BundleHeader:
    num_shards: int = 1
    endianness: int = 0      # 0 little, 1 big
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: tuple = ()

    def encode(self) -> bytes:
        proto = pb.BundleHeaderProto(num_shards=self.num_shards, endianness=self.endianness)
        proto.version.SetInParent()
        proto.version.producer, proto.version.min_consumer = self.producer, self.min_consumer
        proto.version.bad_consumers.extend(self.bad_consumers)
        return proto.SerializeToString()

    @classmethod
    def decode(cls, buf: bytes) -> "BundleHeader":
        proto = check_tree(parse(pb.BundleHeaderProto, buf), closed=True)
        return cls(
            num_shards=proto.num_shards,
            endianness=proto.endianness,
            producer=proto.version.producer,
            min_consumer=proto.version.min_consumer,
            bad_consumers=tuple(proto.version.bad_consumers),
        )


def shape_of(proto: pb.TensorShapeProto) -> tuple:
    check(proto, closed=True)
    if proto.unknown_rank:
        raise FormatError("tensor shape of unknown rank in a checkpoint entry")
    return tuple(check(dim, closed=True).size for dim in proto.dim)
