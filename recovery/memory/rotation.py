"""`--verify-data --verify-share 1/N`: which healthy checkpoints are read in full tonight, so that each
is verified at least once in any N consecutive runs, and what a record says about its last verification.

The share is by run, not by date: run R verifies the prefixes whose hash falls in slot R mod N, and R
is the previous run's plus one (a night skipped, or a run that died before finishing, moves no slot),
so every slot comes round within N runs. Carried directories take part like any other.
"""

import dataclasses
import zlib

from ..records import Record

VERIFIED = "every tensor's bytes match the CRC in its index (--verify-data"   # prefix_steps.finish_check's words
LAST_VERIFIED = "last verified by --verify-data on "
NOT_VERIFIED = "not verified by --verify-data yet"


def slot(prefix: str, share: int) -> int:
    return zlib.crc32(prefix.encode("utf-8", "surrogateescape")) % share


def due(prefix: str, share: int | None, round_: int) -> bool:
    """Is this prefix verified tonight? Every one is, without a share."""
    return share is None or slot(prefix, share) == round_ % share


def runs_until_due(prefix: str, share: int, round_: int) -> int:
    return (slot(prefix, share) - round_) % share


def verified_on(record: Record) -> str | None:
    """When the record's checkpoint was last verified in full, from its own checks (ISO 8601), or None."""
    for line in record.checks:
        if line.startswith(VERIFIED) and line.endswith(")") and ", " in line:
            return line.rsplit(", ", 1)[1][:-1]
        if line.startswith(LAST_VERIFIED):
            return line[len(LAST_VERIFIED):].split(" ", 1)[0]
    return None


def stamped(record: Record, when: str) -> Record:
    """The verification line of a record verified tonight, with tonight's date."""
    checks = tuple(f"{VERIFIED}, {when})" if line == VERIFIED + ")" else line for line in record.checks)
    return dataclasses.replace(record, checks=checks)


def without_verification_notes(record: Record) -> Record:
    """The record with what it said about earlier verifications taken out (it is about to be verified)."""
    checks = tuple(line for line in record.checks
                   if not line.startswith((VERIFIED, LAST_VERIFIED, NOT_VERIFIED)))
    return dataclasses.replace(record, checks=checks)


def not_due_note(record: Record, earlier: Record | None, share: int, round_: int) -> Record:
    """A healthy record not verified tonight says when it was and when it will be."""
    when = verified_on(record) or (verified_on(earlier) if earlier is not None else None)
    wait = runs_until_due(record.prefix, share, round_)
    then = "next run" if wait == 1 else f"in {wait} runs"
    line = (f"{LAST_VERIFIED}{when} (--verify-share 1/{share}: next {then})" if when else
            f"{NOT_VERIFIED} (--verify-share 1/{share}: due {then})")
    record = without_verification_notes(record)
    return dataclasses.replace(record, checks=(*record.checks, line))
