"""Writing a salvaged checkpoint: one data file, its index and the manifest of what is lost, each
created, never replaced (local: a temp file hard-linked into place; GCS/S3: a create-only upload
streamed part by part through storage.write_new_from), and the original never touched.

The data file holds the kept tensors in their original order, then the object graph; the index is
what TensorFlow's BundleWriter writes for that file, built with tfbundle's writer, with the CRC each
tensor was judged by. Every kept tensor is checksummed again as it is copied and must give that CRC
(its source did not change in between), or nothing more is written. The index is written last: until
it exists TensorFlow sees no checkpoint, so an interrupted salvage never looks like a finished one.
"""

import json
import os
import tempfile
import uuid
from dataclasses import dataclass, replace
from types import SimpleNamespace

from tfbundle import (
    DT_STRING,
    OBJECT_GRAPH_KEY,
    BundleHeader,
    checksummer,
    crc_mask,
    crc_unmask,
    data_filename,
    index_filename,
    read_index,
    write_index,
)

from .. import storage
from ..fitting import PlacedTensor
from ..layout import TensorSpec
from ..rebuild import build_entries
from .graph import tensor_crc
from .manifest import manifest
from .plan import SalvagePlan

MANIFEST_SUFFIX = ".salvage.json"


class SourceChanged(OSError):
    """A tensor's bytes gave another CRC while being copied than when they were judged: nothing more is written."""


@dataclass
class Written:
    prefix: str            # the salvaged checkpoint, as the user gave it
    data_path: str         # display paths of what was created
    index_path: str
    manifest_path: str
    data_bytes: int
    index_bytes: int


def output_files(out_path: str) -> tuple:
    """(data file, index, manifest) paths of a salvaged checkpoint at prefix `out_path`."""
    return data_filename(out_path, 0, 1), index_filename(out_path), out_path + MANIFEST_SUFFIX


def existing_outputs(fs, out_path: str) -> list:
    """The output files that already exist (display paths): salvage never writes over them."""
    return [storage.display(fs, p) for p in output_files(out_path) if storage.fresh_exists(fs, p)]


def write_salvage(plan: SalvagePlan, out_url: str) -> Written:
    """Create the salvaged checkpoint at prefix `out_url`. FileExistsError (nothing written) when any of
    its files exists; SourceChanged when the damaged checkpoint changed since it was judged."""
    fs, out_path = storage.split_prefix(out_url)
    taken = existing_outputs(fs, out_path)
    if taken:
        raise FileExistsError(f"{', '.join(taken)} already exist(s) and is never overwritten; choose another prefix")
    data_path, index_path, manifest_path = output_files(out_path)
    local = storage.is_local(fs)
    if local:
        os.makedirs(os.path.dirname(data_path) or ".", exist_ok=True)
    scratch = os.path.dirname(data_path) if local else None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(data_path)}.ckpt-rescue-{uuid.uuid4().hex}", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out:
            placed, crcs = _copy_kept(plan, out)
            out.flush()
            os.fsync(out.fileno())
        index_bytes = _index_for(placed, crcs)
        data_bytes = os.path.getsize(tmp)
        _create_from(fs, data_path, tmp, local)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    doc = manifest(plan, storage.display(fs, out_path))
    storage.write_new(fs, manifest_path, (json.dumps(doc, indent=1) + "\n").encode())
    storage.write_new(fs, index_path, index_bytes)
    return Written(storage.display(fs, out_path), storage.display(fs, data_path), storage.display(fs, index_path),
                   storage.display(fs, manifest_path), data_bytes, len(index_bytes))


def _copy_kept(plan: SalvagePlan, out) -> tuple:
    """Copy every kept tensor's bytes into `out`, checksumming them again; then the object graph.
    Returns (PlacedTensor in the new file, masked CRCs)."""
    placed, crcs, offset = [], [], 0
    ctx = plan.ctx
    for shard in sorted({t.spec.shard for t in plan.kept}):
        with storage.open_source(ctx.fs, ctx.shard_path(shard), ctx.shard_size(shard)) as source:
            for tensor in (t for t in plan.kept if t.spec.shard == shard):
                summer = checksummer(tensor.spec.dtype, tensor.spec.stored_shape,
                                     None if tensor.spec.dtype == DT_STRING else tensor.size)
                for chunk in source.iter_range(tensor.offset, tensor.size):
                    summer.feed(chunk)
                    out.write(chunk)
                if not summer.done or crc_mask(summer.crc) != tensor.crc:
                    raise SourceChanged(f"{tensor.spec.describe()} in {ctx.shard_name(shard)} reads differently now "
                                        "than when it was checked: the checkpoint changed during the salvage; nothing "
                                        "more was written (run it again)")
                placed.append(PlacedTensor(replace(tensor.spec, shard=0), offset, tensor.size))
                crcs.append(tensor.crc)
                offset += tensor.size
    if plan.graph is not None:
        data = plan.graph.tensor_bytes()
        out.write(data)
        placed.append(PlacedTensor(TensorSpec(OBJECT_GRAPH_KEY, DT_STRING, ()), offset, len(data)))
        crcs.append(tensor_crc(data))
    return placed, crcs


def _index_for(placed: list, crcs: list) -> bytes:
    """The index TensorFlow writes for a one-shard bundle holding `placed`, read back to check it."""
    entries = build_entries(SimpleNamespace(placed=placed), [crc_unmask(c) for c in crcs])
    index_bytes = write_index(BundleHeader(num_shards=1), entries)
    reread = read_index(index_bytes)
    written = {(k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k): e for k, e in entries.items()}
    if {k: e.encode() for k, e in reread.entries.items()} != {k: e.encode() for k, e in written.items()}:
        raise ValueError("the salvaged index does not read back as written")
    return index_bytes


def _create_from(fs, path: str, tmp: str, local: bool) -> None:
    """Create `path` with the bytes of local file `tmp`: a hard link beside it locally (never replaces),
    a create-only upload streamed part by part elsewhere (storage.write_new_from)."""
    if local:
        os.link(tmp, path)
        return
    with open(tmp, "rb") as f:
        storage.write_new_from(fs, path, f, os.path.getsize(tmp))
