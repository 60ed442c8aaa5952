"""Does the step in a checkpoint's name agree with the step counter its data holds?

A layout that fits can still be the wrong checkpoint's: zeroed, damaged or mixed-up data of the
right size. Where the name carries a step and the data a counter, they must agree, as the
checkpoints of the same run show how that run names its saves.
"""

import struct

from tfbundle import FormatError, dtype, step_of

from . import storage
from .caches import SharedCache
from .context import OrphanContext
from .healthy import indexed_siblings, locate_tensor
from .layout import SAVE_COUNTER_KEY
from .tensor_roles import COUNTER_KEYS

RUN_SIBLINGS_READ = 2


def check_counter(ctx: OrphanContext, plan) -> str | None:
    """Where the name carries a step and the data a counter, compare them: a refusal reason or None.

    The same rule whatever source gave the layout (a sibling, --template, a registered layout):
    - TF1 Savers name `model.ckpt-N` after the global_step they are given: a global_step that
      contradicts the name refuses, unless the run's other checkpoints disagree with their names too
      (a run that names by epoch).
    - TF2 `CheckpointManager` names ckpt-N after save_counter unless given checkpoint_number=, so a
      mismatch refuses only when another checkpoint of the same run obeys the naming.
    - An asynchronous TF2 save stores save_counter = 0 whatever the step: accepted, with a note,
      unless another checkpoint of the same run holds a counter equal to its step.
    """
    step = step_of(ctx.prefix)
    if step is None:
        return None
    counters = _orphan_counters(ctx, plan)
    if not counters:
        plan.cannot_confirm.append(f"the step {step} in the name: the data holds no save_counter or global_step "
                                   "to compare it with")
        return None
    for key, value in counters:
        if value == step:
            plan.checks.append(f"{_counter_name(key)} = {value}, the step in the name")
            return None
    shown = ", ".join(f"{_counter_name(k)} = {v}" for k, v in counters)
    obeying, disobeying = _run_naming(ctx, [k for k, _ in counters])
    unknown_step = f"the step: {shown} while the name says {step}; nothing else in the data says which step this is"
    if ctx.object_graph is None:   # TF1 Saver data
        if disobeying and not obeying:
            plan.checks.append(f"note: {shown} while the name says {step}, as in {disobeying[0]} of the same run "
                               "(a run that names its checkpoints by something else)")
            plan.cannot_confirm.append(unknown_step)
            return None
        also = f"; {obeying[0]} of the same run holds its own step" if obeying else ""
        return (f"{shown} but the name says {step}: a TF1 Saver names model.ckpt-N after the global_step it saves, so "
                f"this data is not the checkpoint its name claims (damaged, zeroed or mixed up){also}")
    values = dict(counters)
    if values.get(SAVE_COUNTER_KEY) == 0:
        if obeying:
            return (f"save_counter is 0 but the name says {step}, while {obeying[0]} of the same run holds its own "
                    "step: asynchronous saves store 0 in every checkpoint of a run, so this data is not the "
                    "checkpoint its name claims")
        plan.checks.append(f"note: save_counter = 0 while the name says {step}: asynchronous saves "
                           "(CheckpointOptions(experimental_enable_async_checkpoint=True)) store 0 whatever the step")
        plan.cannot_confirm.append(f"the step: save_counter is 0, as an asynchronous save stores it; nothing else in "
                                   f"the data says this is step {step}")
        return None
    if obeying:
        return (f"{shown} but the name says {step}, while {obeying[0]} of the same run holds its own step: this data "
                "is not the checkpoint its name claims")
    plan.checks.append(f"note: {shown} while the name says {step} (runs that pass checkpoint_number= name files by "
                       "step)")
    plan.cannot_confirm.append(unknown_step)
    return None


def _counter_name(key: str) -> str:
    return key.split("/")[0]


def _orphan_counters(ctx: OrphanContext, plan) -> list:
    """(key, value) of every scalar step counter in the orphan's data, in COUNTER_KEYS order."""
    return [(placed.spec.key, value) for placed, value in placed_counters(ctx.fs, plan.placed, plan.shard_paths)]


def placed_counters(fs, placed: list, shard_paths: list) -> list:
    """(PlacedTensor, value) of every scalar step counter among `placed` whose bytes read, in COUNTER_KEYS
    order; `shard_paths[shard]` is where each shard's data is."""
    found = []
    for key in COUNTER_KEYS:
        for tensor in placed:
            spec = tensor.spec
            if spec.key == key and not spec.slice and spec.shape == ():
                value = read_counter(fs, shard_paths[spec.shard], tensor.offset, spec.dtype)
                if value is not None:
                    found.append((tensor, value))
    return found


def _run_naming(ctx: OrphanContext, keys: list) -> tuple[list, list]:
    """The nearest healthy checkpoints of the same run (same name stem, same directory): those whose
    counter equals the step in their name, and those whose counter does not. Cached per process."""
    own = ctx.prefix.rsplit("/", 1)[-1]
    stem = own.rsplit("-", 1)[0]
    step = step_of(ctx.prefix)
    others = []
    for prefix, _ in indexed_siblings(ctx):
        leaf = prefix.rsplit("/", 1)[-1]
        other_step = step_of(prefix)
        if other_step is not None and leaf.rsplit("-", 1)[0] == stem:
            others.append((abs(other_step - step), -other_step, prefix))
    obeying, disobeying = [], []
    for _, _, prefix in sorted(others)[:RUN_SIBLINGS_READ]:
        values = [v for v in (_origin_counter(ctx.fs, prefix, key) for key in keys) if v is not None]
        if not values:
            continue
        label = prefix.rsplit("/", 1)[-1]
        (obeying if step_of(prefix) in values else disobeying).append(label)
    return obeying, disobeying


def read_counter(fs, path: str, offset: int, dtype_number: int) -> int | None:
    fmt = {"int64": "<q", "int32": "<i"}.get(dtype(dtype_number).name)
    if fmt is None:
        return None
    with storage.open_source(fs, path) as source:
        raw = source.read_at(offset, struct.calcsize(fmt))
    return struct.unpack(fmt, raw)[0] if len(raw) == struct.calcsize(fmt) else None


def _origin_counter(fs, prefix: str, key: str) -> int | None:
    """The counter a healthy checkpoint holds under `key`. Read once per process per checkpoint."""
    cache_key = (getattr(fs, "_fs_token", id(fs)), prefix, key)
    return _counters.get_or_compute(cache_key, lambda: _read_origin_counter(fs, prefix, key))


_counters = SharedCache(4096)   # shared by the SDK harness's threads


def _read_origin_counter(fs, prefix: str, key: str) -> int | None:
    try:
        located = locate_tensor(fs, prefix, key)
        if located is None:
            return None
        path, entry = located
        return read_counter(fs, path, entry.offset, entry.dtype)
    except (FormatError, OSError):
        return None
