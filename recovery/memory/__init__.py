"""The nightly audit's memory: what an audit remembers from one night to the next, through the index
vault (docs/vault.md, "Memory") or an earlier report (`--previous`).

By question: `nightly.py` what a run knows about itself and its predecessor, and what it counts;
`digest.py` when a directory is unchanged; `snapshots.py` where a directory's judged records are
kept and how they are read back; `changes.py` new, persists, resolved and deleted; `rotation.py`
which healthy checkpoints `--verify-share` verifies tonight; `carry.py` records carried forward from
an unchanged directory; `directory.py` one directory's night (judge or carry, compare, keep);
`runs.py` the runs the vault remembers and the previous run; `previous.py` an earlier report as
memory. Plain Python: no Beam.
"""
