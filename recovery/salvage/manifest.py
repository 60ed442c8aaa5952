"""The manifest of a salvage (`NEW_PREFIX.salvage.json`): what was kept and on what evidence, what is
lost and why, and how to restore what was kept. Plain data; the command prints a summary of it.

TensorFlow restores a partial checkpoint once it has a valid one: a TF2 checkpoint through its object
graph (`tf.train.Checkpoint(...).read(NEW).expect_partial()`), a TF1 checkpoint by variable names
(`tf.compat.v1.train.Saver(var_list=[the surviving variables])`), which are listed here.
"""

import shlex

from tfbundle import dtype

from .verdicts import LOST, PLACED, PROVEN, STATES, UNCONFIRMED

FORMAT = "ckpt-rescue-salvage/1"


def manifest(plan, output: str) -> dict:
    """The manifest of `plan` salvaged into prefix `output` (as the user gave it)."""
    kept = plan.kept
    total_bytes = sum(t.nbytes for t in plan.tensors)
    return {
        "format": FORMAT,
        "prefix": plan.display_prefix,
        "output": output,
        "layout": plan.source,
        "summary": {
            "tensors": len(plan.tensors),
            "kept": len(kept),
            **{state: len(plan.having(state)) for state in STATES},
            "unconfirmed_included": plan.include_unconfirmed,
            "bytes": total_bytes,
            "kept_bytes": sum(t.nbytes for t in kept),
            "in_words": kept_in_words(len(kept), len(plan.tensors), sum(t.nbytes for t in kept), total_bytes),
        },
        "kept": [_tensor(t) for t in kept],
        "unconfirmed": [_tensor(t, included=plan.include_unconfirmed) for t in plan.having(UNCONFIRMED)],
        "lost": [_tensor(t) for t in plan.having(LOST)],
        "object_graph": None if plan.graph is None else {
            "from": plan.graph.origin, "notes": plan.graph.notes, "removed_attributes": plan.graph.removed},
        "checks": plan.checks,
        "cannot_check": plan.cannot_check,
        "restore": restore_instructions(plan, output),
    }


def kept_in_words(kept: int, total: int, kept_bytes: int, total_bytes: int) -> str:
    """"212 of 230 tensors, 93% of bytes" (rounded down: never more than was kept)."""
    share = 100 * kept_bytes // total_bytes if total_bytes else 0
    return f"{kept} of {total} tensors, {share}% of bytes"


def _tensor(t, **extra) -> dict:
    extents = [list(e) if e else None for e in t.spec.slice.extents] if t.spec.slice else None
    return {"key": t.spec.key, "slice": extents, "dtype": dtype(t.spec.dtype).name, "shape": list(t.spec.shape),
            "bytes": t.size if t.size is not None else (t.nbytes or None), "state": t.state, "why": t.why,
            **({"crc32c": t.crc} if t.state in (PROVEN, PLACED, UNCONFIRMED) and t.crc is not None else {}), **extra}


def restore_instructions(plan, output: str) -> dict:
    """How to restore the kept tensors: Python a person can paste, and the variable names it relies on."""
    quoted = repr(output)
    if plan.graph is not None:
        children = [c for c in plan.graph.root_children() if c != "save_counter"]
        arguments = ", ".join(f"{c}={c}" for c in children) or "root"
        return {"tensorflow": "object-based",
                "how": f"tf.train.Checkpoint({arguments}).read({quoted}).expect_partial()  # with the objects "
                       "built as for training: the salvaged variables are restored, the others keep their initial "
                       "values (listed under `lost` and `unconfirmed`)",
                "variables": sorted({t.spec.key for t in plan.kept})}
    names = tf1_variable_names(plan)
    return {"tensorflow": "name-based (TF1 Saver)",
            "how": "names = the `variables` listed here; saver = tf.compat.v1.train.Saver(var_list=[v for v in "
                   "tf.compat.v1.global_variables() if v.op.name in names]); saver.restore(session, "
                   f"{quoted})  # after initializing every variable: the others keep their initial values",
            "variables": names}


def tf1_variable_names(plan) -> list:
    """Op names of the kept TF1 variables: a partitioned variable's parts are `NAME/part_I`, I counting its
    slices in order along the partitioned axis (how tf.compat.v1.get_variable names them)."""
    slices = {}
    for t in plan.tensors:
        if t.spec.slice is not None:
            slices.setdefault(t.spec.key, []).append(t.spec.slice)
    names = []
    for t in plan.kept:
        if t.spec.slice is None:
            names.append(t.spec.key)
            continue
        order = sorted(slices[t.spec.key], key=lambda s: tuple(e[0] if e else 0 for e in s.extents))
        names.append(f"{t.spec.key}/part_{order.index(t.spec.slice)}")
    return names


def salvage_command(prefix: str, output: str, *options: str) -> str:
    """The command that salvages `prefix` into `output`, every argument quoted for a POSIX shell."""
    extra = "".join(f" {option}" for option in options if option)
    return f"ckpt-rescue salvage {shlex.quote(prefix)} --output {shlex.quote(output)}{extra}"
