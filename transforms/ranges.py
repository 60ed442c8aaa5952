"""Spread one checkpoint's byte ranges over the workers and join what they find by prefix.

A planning DoFn yields its plan once, keyed by prefix (PLANS), and the ranges as ByteRange elements
(RANGES): the plan never travels with a range. A range's worker looks its plan up in a side input,
one key at a time (AsMultiMap: no worker holds every plan), and the plan meets every range's
result again in one CoGroupByKey.
"""

import time
from typing import Any, NamedTuple

import apache_beam as beam

from recovery.failures import RangeFailure

from .metrics import counter

PLANS, RANGES = "plans", "ranges"


class ByteRange(NamedTuple):
    prefix: str          # display prefix: the key its plan is found under
    shard: int
    start: int
    end: int
    part: str = ""       # which part of the plan it serves when a plan has several (verify, rehearse)


class RangeResult(NamedTuple):
    byte_range: ByteRange
    value: Any           # what the range function returned, or a RangeFailure
    seconds: float


class Joined(NamedTuple):
    """A plan and the results of all its ranges, in file order."""

    prefix: str
    plan: Any
    results: list

    def failure(self) -> "RangeFailure | None":
        """The first failed range, transient failures first: they mean `error`, not a verdict."""
        failures = [r.value for r in self.results if isinstance(r.value, RangeFailure)]
        return min(failures, key=lambda f: not f.transient, default=None)

    def values(self, part: str = "") -> list:
        return [r.value for r in self.results if r.byte_range.part == part]

    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)


class ReadRange(beam.DoFn):
    """ByteRange -> (prefix, RangeResult), with the plan of its prefix from the side input."""

    def __init__(self, read_range, doing: str, metric: str):
        self.read_range = read_range     # (plan element, ByteRange) -> value; module-level, so it pickles by name
        self.doing = doing
        self.metric = metric

    def process(self, byte_range: ByteRange, plans):
        plan, = plans[byte_range.prefix]
        started = time.monotonic()
        try:
            value = self.read_range(plan, byte_range)
        except Exception as exc:  # noqa: BLE001 - joined with the prefix's other ranges, then a record
            value = RangeFailure.of(f"{self.doing} shard {byte_range.shard} bytes {byte_range.start}-{byte_range.end}",
                                    exc)
        counter(self.metric).inc()
        yield byte_range.prefix, RangeResult(byte_range, value, time.monotonic() - started)


def _joined(prefix: str, grouped: dict) -> Joined:
    plan, = grouped[PLANS]
    results = sorted(grouped[RANGES], key=lambda r: (r.byte_range.part, r.byte_range.shard, r.byte_range.start))
    return Joined(prefix, plan, results)


class SpreadRanges(beam.PTransform):
    """{PLANS: (prefix, plan), RANGES: ByteRange} -> one Joined per prefix."""

    def __init__(self, read_range, doing: str, metric: str):
        super().__init__()
        self.read_range, self.doing, self.metric = read_range, doing, metric

    def expand(self, planned):
        plans = planned[PLANS] | "Key plans" >> beam.Map(lambda kv: kv).with_output_types(tuple[str, Any])
        results = (planned[RANGES]
                   | "Spread ranges" >> beam.Reshuffle()
                   | "Read ranges" >> beam.ParDo(ReadRange(self.read_range, self.doing, self.metric),
                                                 plans=beam.pvalue.AsMultiMap(plans)))
        return ({PLANS: plans, RANGES: results}
                | "Join ranges by prefix" >> beam.CoGroupByKey()
                | "Joined" >> beam.MapTuple(_joined))
