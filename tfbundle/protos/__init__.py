"""Generated protobuf modules of the project's own .proto files (`make protos` regenerates them).

They import only google.protobuf; decoding goes through tfbundle.schema, which turns a malformed
message or a field with the wrong wire type into a FormatError.
"""
