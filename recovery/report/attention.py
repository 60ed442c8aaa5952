"""What a person must read before anything else in a report (summary.json's `warnings`, the first
lines of the audit's output and of report.html), and whether it means "nothing was checked" (exit 4):
a root that does not exist, is empty, or held records in the previous run and holds none now, a run
that judged nothing, or one that deferred most of what it found. A nightly job must never end quietly
when it could not check."""

from ..records import DELETED, IN_PROGRESS

LOOKED_FOR = "looked at every depth for `*.index`, `*.data-NNNNN-of-NNNNN` and `checkpoint` state files"


def warnings_and_silence(per_root: dict, counts: dict, meta: dict, vault_failed: int = 0) -> tuple[list, bool]:
    """(warnings in the order to read them, whether the run checked too little to be quiet).

    `per_root`: summary.json's; `meta`: the launcher's (missing_roots: root -> what is near,
    previous_run's `live` per root, min_age_minutes, and warnings found before the run)."""
    warnings = list(meta.get("warnings", ()))
    silent = False
    missing = dict(meta.get("missing_roots", {}))
    previous = dict(meta.get("previous_live", {}))
    live_total = sum(counts.values()) - counts.get(DELETED, 0)
    deferred = counts.get(IN_PROGRESS, 0)
    if live_total - deferred <= 0:
        warnings.insert(0, "nothing was judged: " + ("every record is in progress (files younger than --min-age); run "
                                                     "with --min-age 0 after a copy" if deferred else
                                                     "no root holds a checkpoint"))
        silent = True
    elif deferred * 2 > live_total:
        warnings.insert(0, f"most prefixes were deferred ({deferred} of {live_total} in progress: files younger than "
                           f"--min-age {meta.get('options', {}).get('min_age_minutes', 10):g} min): run with "
                           "--min-age 0 after a copy")
        silent = True
    for root, entry in per_root.items():
        live = entry.get("records", 0) - entry.get("counts", {}).get(DELETED, 0)
        if root in missing:
            warnings.append(f"root {root} does not exist{missing[root]}")
            silent = True
        elif live <= 0 and previous.get(root, 0) > 0:
            warnings.append(f"root {root} held {previous[root]} record(s) in the previous run and holds none now "
                            "(each is a `deleted` record)")
            silent = True
        elif live <= 0:
            warnings.append(f"no checkpoint found under {root} ({LOOKED_FOR})")
            silent = True
    if vault_failed:
        warnings.append(f"the vault did not take {vault_failed} index(es) or directory snapshot(s) (the log says why); "
                        "they are kept on a later night")
    return warnings, silent
