"""What the audit's option values mean: sizes (`256MiB`), minutes, a share of runs (`1/7`). Each is an
argparse type, so a bad value is a usage error before any work starts, named by the type."""

import re

_SIZE_RE = re.compile(r"^(\d+)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """`256MiB`, `1G`, `4096` -> bytes."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    return int(match[1]) * _UNITS[(match[2] or "")[:1].upper()]


byte_size.__name__ = "size"   # argparse names the type in its error message


def minutes(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


def share(text: str) -> int:
    """`1/7` (or `7`) -> 7: the number of runs over which every healthy checkpoint is verified once."""
    numerator, _, denominator = text.strip().partition("/")
    if not denominator:
        numerator, denominator = "1", numerator
    if numerator.strip() != "1" or not denominator.strip().isdigit() or int(denominator) < 1:
        raise ValueError(text)
    return int(denominator)
