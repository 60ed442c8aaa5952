"""The audit pipeline, assembled: list -> group by directory -> classify -> rebuild orphans (and
check healthy checkpoints when asked) -> count -> write the reports.

Every stage's failures are records; the records of every stage are counted and reported alike.
"""

import ctypes
import logging
import os

import apache_beam as beam

from recovery.memory.carry_form import FormBatch
from recovery.prefix_steps import AuditSettings
from recovery.records import with_options
from transforms.classify import ORPHANS, TO_CHECK, TO_SALVAGE, ClassifyDirectory
from transforms.collection import collect_less
from transforms.listing import ListFiles
from transforms.memory import CHECK, DIRECTORIES, NIGHT, REBUILD, SALVAGE, GoneDirectories, Remember, directory_key
from transforms.rebuild import RebuildOrphans
from transforms.report import Batched, Tally, WriteReports
from transforms.salvage import AssessSalvage
from transforms.verify import CheckHealthy


def build(pipeline, roots: list[str], settings: AuditSettings, meta: dict):
    """Add the audit to `pipeline`; returns the records by the stage that made them (before the report),
    as batches (lists of records: transforms/report.py).

    The records are counted and reported where they are made, not flattened into one PCollection
    first: the local runner would hold all of them between stages (see WriteReports). With a nightly
    memory (settings.nightly), each stage's records are compared with the previous run's where they
    are made too; only directory keys are joined (the directories gone since the previous run)."""
    check = settings.verify_data or settings.rehearse
    nightly = settings.nightly
    directories, listing_failures = (pipeline
                                     | "Roots" >> beam.Create(roots)
                                     | "List" >> ListFiles(settings.report_dir))
    classify = ClassifyDirectory(check, settings.min_age, settings.in_place, settings.verify_data, settings.now,
                                 nightly)
    found, orphans, to_check, incomplete = {"listing": listing_failures}, [], [], []
    batches, nights, lines, keys = {}, [], [], []     # batches: records that come a directory's batch at a time
    for listed, each in directories.items():     # classified in the stage that listed them
        classified = each | f"Classify ({listed})" >> beam.ParDo(classify).with_outputs(
            ORPHANS, TO_CHECK, TO_SALVAGE, NIGHT, DIRECTORIES, main="records")
        batches[f"classify {listed}"] = classified.records
        orphans.append(classified[ORPHANS])
        to_check.append(classified[TO_CHECK])
        incomplete.append(classified[TO_SALVAGE])
        nights.append(classified[NIGHT])
        lines.append(classified[DIRECTORIES])
        keys.append(each | f"Directory keys ({listed})" >> beam.Map(directory_key))
    rebuilt = tuple(orphans) | "All orphans" >> beam.Flatten() | "Rebuild" >> RebuildOrphans(settings)
    found["rebuild"] = _remembered(rebuilt, nightly, REBUILD, nights)
    salvaged = tuple(incomplete) | "All incomplete" >> beam.Flatten() | "Salvage incomplete" >> AssessSalvage(settings)
    found["salvage"] = _remembered(salvaged, nightly, SALVAGE, nights)
    if check:
        checked = (tuple(to_check) | "All to check" >> beam.Flatten() | "Check healthy" >> CheckHealthy(settings))
        found["check"] = _remembered(checked, nightly, CHECK, nights)
    if nightly is not None and meta.get("previous_directories"):
        gone = (tuple(keys) | "All directory keys" >> beam.Flatten()
                | "Gone directories" >> GoneDirectories(nightly, meta["previous_directories"], meta["roots"]))
        found["gone"] = gone.records
        nights.append(gone[NIGHT])
        lines.append(gone[DIRECTORIES])
    batches.update({source: made | f"Batch ({source})" >> Batched() for source, made in found.items()})
    records = {source: (made | f"Commands ({source})" >> beam.Map(_with_options, settings.command_options)
                        | f"Tally ({source})" >> beam.ParDo(Tally())) for source, made in batches.items()}
    extra = {}
    if nightly is not None:
        extra = {"directories": tuple(lines), "night": tuple(nights)}     # each reported where it is made
    _ = records | "Report" >> WriteReports(settings.report_dir, meta, **extra,
                                           whole_directories=[f"classify {listed}" for listed in directories])
    return records


def _with_options(batch: list, options: tuple) -> list:
    """A carried form's records offer no command to add options to; the batch's other records may."""
    records = [with_options(record, options) for record in batch]
    return FormBatch(records, batch.form) if isinstance(batch, FormBatch) else records


def _remembered(records, nightly, stage: str, nights: list):
    """A stage's records compared with the previous run's and remembered (with a nightly memory)."""
    if nightly is None:
        return records
    remembered = records | f"Remember ({stage})" >> beam.ParDo(Remember(nightly, stage)).with_outputs(
        NIGHT, main="records")
    nights.append(remembered[NIGHT])
    return remembered.records


class _WorkerStartupNoise(logging.Filter):
    """Local worker processes each warn about a missing semi_persistent_directory: harmless, and noisy."""

    def filter(self, record):
        return "semi_persistent_directory" not in record.getMessage()


_WORKER_STARTUP_NOISE = _WorkerStartupNoise()     # one instance: addFilter adds it once however many runs


M_ARENA_MAX = -8          # glibc's mallopt() parameter
MALLOC_ARENAS = "2"


def fewer_malloc_arenas() -> None:
    """glibc gives threads that allocate at once their own heap (up to 8 per core), and Beam's gRPC
    and bundle threads leave freed buffers spread over them. Two heaps, in this process (for threads
    started from now on) and in the worker processes it starts, measured 50-90 MB less per process at
    100k prefixes (BENCHMARKS.md, 2026-12-05). A user's own MALLOC_ARENA_MAX wins."""
    arenas = os.environ.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENAS)
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)     # glibc only
    if mallopt is not None and arenas.isdigit():
        mallopt(M_ARENA_MAX, int(arenas))


def run(roots: list[str], settings: AuditSettings, meta: dict, options, runner=None):
    """Build and run (with `runner`, else the one the options name); returns the PipelineResult after
    the run finishes."""
    fewer_malloc_arenas()
    collect_less()        # the launcher runs the whole audit itself on a small tree
    logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(_WORKER_STARTUP_NOISE)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, roots, settings, meta)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def metrics(result) -> dict:
    """Counters and distributions of our namespace, by name (committed where the runner has them)."""
    from apache_beam.metrics.metric import MetricsFilter

    from transforms.metrics import NAMESPACE

    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    values = {}
    for item in found.get("counters", []):
        value = item.committed if item.committed is not None else item.attempted
        values[item.key.metric.name] = values.get(item.key.metric.name, 0) + (value or 0)
    for item in found.get("distributions", []):
        value = item.committed if item.committed is not None else item.attempted
        if value is None or not value.count:
            continue
        merged = values.setdefault(item.key.metric.name, {"count": 0, "sum": 0, "min": value.min, "max": value.max})
        merged["count"] += value.count
        merged["sum"] += value.sum
        merged["min"], merged["max"] = min(merged["min"], value.min), max(merged["max"], value.max)
    return values
