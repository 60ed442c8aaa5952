"""The index vault: a copy of every index an audit saw healthy, with the identity of the data files
it described, so a lost index can come back as it was (docs/vault.md).

`Vault.open(url)` / `vault_for(url)` check the marker; `keep`, `entries`, `directory_entries`,
`read_index`, `remove`, `prune_prefix` and `usage` are all the audit needs. `recovery/sources/vault.py`
is what a rebuild asks of it; `judgement.py` what the rebuilt index is then checked against.
"""

from .entry import (
    EARLIER_SAVE,
    ORIGIN_REBUILT,
    ORIGIN_SEEN_HEALTHY,
    OTHER_BYTES,
    SAME_FILES,
    ShardRecord,
    VaultEntry,
    identity_of,
    relation,
    shard_records,
)
from .tree import Kept, Vault, VaultDamaged, VaultError, VaultUsage, keep_checkpoint, vault_for

__all__ = ["EARLIER_SAVE", "ORIGIN_REBUILT", "ORIGIN_SEEN_HEALTHY", "OTHER_BYTES", "SAME_FILES", "Kept",
           "ShardRecord", "Vault", "VaultDamaged", "VaultEntry", "VaultError", "VaultUsage", "identity_of",
           "keep_checkpoint", "relation", "shard_records", "vault_for"]
