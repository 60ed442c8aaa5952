"""Decode protobuf messages with the `protobuf` package, and check what it lets through.

A protobuf parser does not reject a field whose wire type disagrees with the schema: it keeps it
among the unknown fields and the declared field reads as its default (a shard id of 0, an empty
shape). That would turn damage into a plausible wrong value, so every message we read is checked:
a declared field number among the unknown fields is an error naming the field, and where the
schema is closed (the messages BundleWriter writes, all of whose fields we declare) any unknown
field is.
"""

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from .errors import FormatError

WIRE_TYPE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "group start", 4: "group end",
                   5: "fixed32"}
_FIXED64 = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64)
_FIXED32 = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32)
_LENGTH = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE)


def message_name(descriptor) -> str:
    """`TensorShapeProto.Dim`: the name TensorFlow's protos use, without our package."""
    return descriptor.full_name.removeprefix(descriptor.file.package + ".")


def expected_wire_type(field) -> str:
    if field.type in _LENGTH:
        return WIRE_TYPE_NAMES[2]
    scalar = WIRE_TYPE_NAMES[1] if field.type in _FIXED64 else WIRE_TYPE_NAMES[5] if field.type in _FIXED32 \
        else WIRE_TYPE_NAMES[0]
    return f"{scalar} or packed (length-delimited)" if field.is_repeated else scalar


def parse(message_class, data: bytes):
    """Parse `data` as `message_class` (in C, once); a malformed message is a FormatError."""
    try:
        return message_class.FromString(data)
    except DecodeError as exc:
        raise FormatError(f"not a valid {message_name(message_class.DESCRIPTOR)} ({exc})") from None


def check(message, closed: bool = False):
    """Raise FormatError if a declared field came with the wrong wire type (or, when `closed`, if
    the message has a field the schema does not declare). Returns the message. Not recursive."""
    unknown = UnknownFieldSet(message)
    if not len(unknown):
        return message
    descriptor = message.DESCRIPTOR
    for item in unknown:
        field = descriptor.fields_by_number.get(item.field_number)
        wire = WIRE_TYPE_NAMES.get(item.wire_type, str(item.wire_type))
        if field is not None:
            raise FormatError(f"field {message_name(descriptor)}.{field.name} (number {item.field_number}) is "
                              f"encoded as {wire}; TensorFlow writes it as {expected_wire_type(field)}")
        if closed:
            raise FormatError(f"{message_name(descriptor)} has a field number {item.field_number} ({wire}) "
                              "that TensorFlow's schema does not have")
    return message


def check_tree(message, closed: bool = False):
    """`check` the message and every message set inside it. Returns the message."""
    check(message, closed)
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        for child in (value if field.is_repeated else (value,)):
            check_tree(child, closed)
    return message

