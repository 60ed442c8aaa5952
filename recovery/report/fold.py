"""Records folded into the report's aggregates in one process (write_reports): the same keys
(aggregates.keys_of) and the same latest_checkpoint() join (latest.py) the Beam pipeline spreads over
workers (transforms/report.py); and the counters each record adds to the console's metrics (`tally`)."""

from collections import Counter

from .aggregates import KINDS, RUN, Overview, keys_of
from .latest import join_items, resolved_runs


class Fold:
    """Every aggregate of one report by key, and the join items; `overview()` once all are in."""

    def __init__(self):
        self.aggregates = {}
        self.joins = {}

    def add(self, record) -> "Fold":
        for key in keys_of(record):
            aggregate = self.aggregates.get(key)
            if aggregate is None:
                aggregate = self.aggregates[key] = KINDS[key[0]]()
            aggregate.add(record)
        for prefix, item in join_items(record):
            self.joins.setdefault(prefix, []).append(item)
        return self

    def overview(self) -> Overview:
        for run, resolution in resolved_runs(self.joins):
            self.aggregates.setdefault((RUN, *run), KINDS[RUN]()).merge([resolution])
        self.joins = {}
        overview = Overview()
        for keyed in self.aggregates.items():
            overview.add(keyed)
        return overview


def tally(records, counts: Counter) -> Counter:
    """The console's counters of `records` added to `counts` (transforms/report.py's Tally, and a carried
    form made ahead): per status, per kind, the records and the data bytes they read, as summary.json
    sums them."""
    for record in records:
        counts[f"status_{record.status}"] += 1
        counts[f"kind_{record.kind}"] += 1
        counts["bytes_scanned"] += record.bytes_scanned
    counts["records"] += len(records)
    return counts
