"""Beam options for an audit: a runner profile (pipeline/resources/runners, shipped in the package),
the user's own flags on top, and local defaults that run hermetically (no Prism download, one
worker process per core).

Since Beam 2.68 the DirectRunner first tries to download Prism; its batch engine is the
FnApiRunner, which is what we ask for directly, in multi-processing mode by default.
"""

import difflib
import os
import string
from pathlib import Path

import yaml

from .cli import UsageError
from .resources import RUNNER_PROFILES_DIR

PROFILES_DIR = RUNNER_PROFILES_DIR
# Beam checks the type hints of connected transforms while it builds a pipeline. The audit's pipeline is
# the same for every user (nothing a user passes adds a transform), so tests/pipeline/test_pipeline_types.py
# builds every shape of it with the check on; a run skips it (0.1-0.2 s of every audit, before any work).
NO_TYPE_CHECK = "--no_pipeline_type_check"
LOCAL_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "FnApiRunner")


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> list[str]:
    """Beam flags of a profile: a name in pipeline/resources/runners/ or a path to a YAML file.

    `${VAR}` in a flag is taken from the environment; a missing variable is a usage error.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"no runner profile {name!r} (known: {', '.join(profile_names())})")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"runner profile {path}: {exc}") from None
    flags = doc.get("beam_args", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise UsageError(f"runner profile {path}: beam_args must be a list of strings")
    expanded = []
    for flag in flags:
        try:
            expanded.append(string.Template(flag).substitute(os.environ))
        except KeyError as exc:
            raise UsageError(f"runner profile {path.stem} needs the environment variable {exc.args[0]} "
                             f"(for {flag})") from None
    return expanded


def _flag_value(flags: list[str], name: str) -> str | None:
    """The last value given for `--name` (as `--name=v` or `--name v`)."""
    value = None
    for i, flag in enumerate(flags):
        if flag == f"--{name}" and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith(f"--{name}="):
            value = flag.split("=", 1)[1]
    return value


def check_known(flags: list[str]) -> None:
    """Beam silently drops flags it does not know; a typo in a nightly job must fail loudly instead.

    Beam's public hook for runners that add options (`get_all_options(add_extra_args_fn=...)`) is
    handed the parser of every option Beam knows; it is asked which of the flags it cannot parse."""
    from apache_beam.options.pipeline_options import PipelineOptions

    found = {}

    def look(parser):
        found["unknown"] = [u for u in parser.parse_known_args(flags)[1] if u.startswith("-")]
        found["known"] = [f"--{name}" for name in vars(parser.parse_known_args([])[0])]

    PipelineOptions(flags).get_all_options(add_extra_args_fn=look, retain_unknown_options=True)
    if "unknown" not in found:
        raise RuntimeError("apache_beam no longer calls get_all_options(add_extra_args_fn=...): the flags cannot "
                           "be checked")
    if found["unknown"]:
        hints = []
        for flag in found["unknown"]:
            close = difflib.get_close_matches(flag.split("=", 1)[0], found["known"], n=1)
            hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        raise UsageError(f"unknown option(s): {', '.join(hints)}")


ENGINE_FLAGS = ("runner", "direct_running_mode", "direct_num_workers")


def engine_chosen(beam_args: list[str], profile: str | None) -> bool:
    """Did the user pick the runner, its mode or its workers (directly or through a profile)?"""
    return bool(profile) or any(_flag_value(beam_args, name) is not None for name in ENGINE_FLAGS)


def audit_flags(beam_args: list[str], profile: str | None, in_memory_storage: bool = False,
                small_tree: bool = False) -> list[str]:
    """The Beam flags to run with: profile, then the user's flags, then local defaults where unset.

    Locally the default is one worker process per core; memory:// and, unless the user chose the
    runner, its mode or its workers, a small tree run in this process instead (`in_memory`):
    workers take seconds to start, more than a small tree takes to audit.
    """
    flags = (load_profile(profile) if profile else []) + list(beam_args)
    runner = _flag_value(flags, "runner")
    if runner is None or runner in LOCAL_RUNNERS:
        one_process = in_memory_storage or (small_tree and not engine_chosen(beam_args, profile))
        flags.append("--runner=FnApiRunner")
        mode = _flag_value(flags, "direct_running_mode")
        if mode is None:
            # memory:// lives in one process: workers in other processes would see an empty filesystem
            mode = "in_memory" if one_process else "multi_processing"
            flags.append(f"--direct_running_mode={mode}")
        if _flag_value(flags, "direct_num_workers") is None:
            flags.append(f"--direct_num_workers={1 if mode == 'in_memory' else os.cpu_count() or 1}")
    if NO_TYPE_CHECK not in flags:
        flags.append(NO_TYPE_CHECK)
    check_known(flags)
    return flags


def pipeline_options(flags: list[str]):
    from .viewed_options import OptionsViewedOnce

    return OptionsViewedOnce(flags)


def describe(flags: list[str]) -> str:
    runner = _flag_value(flags, "runner") or "DirectRunner"
    if runner == "FnApiRunner":
        mode = _flag_value(flags, "direct_running_mode") or "in_memory"
        workers = _flag_value(flags, "direct_num_workers") or "1"
        return f"DirectRunner engine (FnApiRunner, {mode}, {os.cpu_count() if workers == '0' else workers} worker(s))"
    return runner
