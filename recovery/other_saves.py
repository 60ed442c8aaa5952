"""Which of an orphan's tensors hold the bytes of another save?

A CRC equal to another step's proves the bytes are that step's, not this one's. Whether that is
confirmation or damage depends on the tensor:
- *frozen*: at least two other saves hold it and agree on its CRC. Equal to them, its bytes are the
  ones every save writes: confirmed.
- *trained*: the run's own saves disagree on its CRC. Equal to one of them while the rest of the
  checkpoint changed since that save (at least as many tensors differ from it as hold its bytes), it
  holds that save's bytes: a shard replaced by another step's (a sync tool, a partial copy), a
  finding, not a confirmation. (Mostly equal to one save with a few tensors changed is that save
  with damage or a change the evidence names: vault/judgement.py, the counters.)
- known to one other save only: equal to it, the bytes are that save's; frozen or not, no third save
  tells, and the evidence says so.
A whole data file whose every tensor equals one save's, while another file changed, is the same
finding, whatever is known of its tensors, unless they are all frozen.

Step counters change at every save and say nothing about this; the object graph is the same in
every save of a run. Both are left out.
"""

from dataclasses import dataclass, field

from tfbundle import OBJECT_GRAPH_KEY, crc_mask

from .layout import reference_key
from .tensor_roles import is_counter


@dataclass
class OtherSaves:
    """What the references of other saves say about the orphan's bytes (indexes into plan.placed)."""

    foreign: dict = field(default_factory=dict)    # save -> trained tensors equal to it while others changed
    shards: dict = field(default_factory=dict)     # save -> shards every tensor of which equals it
    changed: dict = field(default_factory=dict)    # save -> tensors (not counters) that differ from it
    single: list = field(default_factory=list)     # equal to the only save that holds them

    @property
    def found(self) -> bool:
        return bool(self.foreign or self.shards)

    def flagged(self, plan) -> set:
        """Every tensor a finding names: its bytes are another save's."""
        flagged = {i for tensors in self.foreign.values() for i in tensors}
        for save, shards in self.shards.items():
            flagged |= {i for i, p in enumerate(plan.placed) if p.spec.shard in shards and i not in self.changed[save]}
        return flagged


def compare_with_other_saves(plan, crcs: list) -> OtherSaves:
    """The orphan's CRCs (raw, one per placed tensor) against every other save's (plan.references)."""
    result = OtherSaves()
    if plan.exact:
        return result     # the index of these very bytes: every CRC is this save's own
    equal: dict = {}
    for i, (placed, raw) in enumerate(zip(plan.placed, crcs)):
        references = plan.references.get(reference_key(placed.spec))
        if not references or placed.spec.key == OBJECT_GRAPH_KEY or is_counter(placed.spec.key):
            continue
        mine = (placed.size, crc_mask(raw))
        values = {(size, crc) for size, crc, _ in references}
        for size, crc, save in references:
            if (size, crc) == mine:
                equal.setdefault(save, {}).setdefault(i, len(values) > 1)   # trained: the saves disagree
            else:
                result.changed.setdefault(save, set()).add(i)
        if len(references) == 1 and (references[0][0], references[0][1]) == mine:
            result.single.append(i)
    for save, tensors in equal.items():
        changed = result.changed.get(save, set())
        trained = sorted(i for i, is_trained in tensors.items() if is_trained)
        if trained and len(changed) >= len(trained):    # the rest of the checkpoint changed since that save
            result.foreign[save] = trained
        shards = _whole_shards(plan, save, tensors, changed)
        if shards:
            result.shards[save] = shards
    return result


def _whole_shards(plan, save: str, equal: dict, changed: set) -> list:
    """Shards whose every tensor with bytes equals `save`'s (not all of them known frozen), while a
    tensor of another shard changed since that save. Only where the checkpoint has several shards."""
    if len(plan.shard_sizes) < 2 or not changed:
        return []
    frozen = {i for i in equal if _frozen(plan, i)}
    found = []
    for shard in range(len(plan.shard_sizes)):
        tensors = [i for i, p in enumerate(plan.placed) if p.spec.shard == shard and p.size
                   and p.spec.key != OBJECT_GRAPH_KEY and not is_counter(p.spec.key)]
        others_changed = any(plan.placed[i].spec.shard != shard for i in changed)
        if tensors and all(i in equal for i in tensors) and not all(i in frozen for i in tensors) and others_changed:
            found.append(shard)
    return found


def _frozen(plan, i: int) -> bool:
    references = plan.references.get(reference_key(plan.placed[i].spec), [])
    return len(references) >= 2 and len({(size, crc) for size, crc, _ in references}) == 1


def describe(plan, found: OtherSaves) -> str:
    """The finding in words: which tensors or shards hold which save's bytes, and what changed instead."""
    parts = []
    for save, shards in found.shards.items():
        changed = sorted(found.changed[save])
        parts.append(f"every tensor of shard {', '.join(map(str, shards))} has the CRC {save} holds, while "
                     f"{len(changed)} tensor(s) of other shards changed since that save "
                     f"({_names(plan, changed)})")
    for save, tensors in found.foreign.items():
        if save in found.shards:
            continue
        changed = sorted(found.changed[save])
        parts.append(f"{len(tensors)} tensor(s) whose CRC differs between the run's own saves have the CRC {save} "
                     f"holds ({_names(plan, tensors)}), while {len(changed)} other tensor(s) changed since that "
                     f"save ({_names(plan, changed)})")
    return "; ".join(parts)


def _names(plan, indexes: list, limit: int = 3) -> str:
    shown = ", ".join(plan.placed[i].spec.describe() for i in indexes[:limit])
    return shown + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")
