"""What a salvage would keep of the checkpoints classification found incomplete with their index intact
(a shard missing or cut short): assessed on the workers, one prefix each, since it reads their data."""

import dataclasses
import time

import apache_beam as beam

from recovery import storage
from recovery.prefix_steps import AuditSettings, offer_salvage
from recovery.records import Record

from .errors import failures_become_records
from .metrics import counter
from .registry import RegistryLayouts


class AssessIncomplete(RegistryLayouts):
    """Record (incomplete, its index intact) -> the Record with its `salvage` field and reason."""

    def __init__(self, settings: AuditSettings):
        super().__init__(settings)
        self.settings = settings

    @failures_become_records("salvage assessment")
    def process(self, record: Record):
        started = time.monotonic()
        fs, prefix = storage.split_prefix(record.prefix)
        assessed = offer_salvage(fs, prefix, None, record, self.settings, self.registry)
        if assessed.salvage:
            counter("salvageable").inc()
        yield dataclasses.replace(assessed, seconds=round(record.seconds + time.monotonic() - started, 3))


class AssessSalvage(beam.PTransform):
    """Incomplete Records -> the same Records, with what a salvage would keep of them."""

    def __init__(self, settings: AuditSettings):
        super().__init__()
        self.settings = settings

    def expand(self, records):
        return (records
                | "Spread incomplete checkpoints" >> beam.Reshuffle()
                | "Assess salvage" >> beam.ParDo(AssessIncomplete(self.settings)))
