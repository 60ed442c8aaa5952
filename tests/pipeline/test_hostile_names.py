"""Hostile names and directories (issue 14, points 9 to 11), on checkpoints TensorFlow wrote in this
session: a prefix with a line break in its name (locally and on the GCS emulator), names whose staged
path or temp file would pass the file name limit, a user's directory called `bert_temp/` or `rebuilt/`
(beside a training job's own `summary.json` and `records.jsonl`), and symbolic links to directories.
Each is audited like any other checkpoint, and every line-based output stays one line per entry.
"""

import csv
import os
import shlex
import shutil
import subprocess

import pytest
from hostile_helpers import DATA, HANG_GUARD, IN_PROCESS, run_cli, run_of, run_printed
from source_helpers import orphan
from storage_servers import upload_tree

from recovery import storage
from recovery.report.readback import read_records, read_summary
from recovery.stores.names import NAME_MAX
from recovery.vault import Vault
from recovery.vault.entry import ORIGIN_SEEN_HEALTHY
from recovery.vault.tree import keep_checkpoint

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def rename_prefix(old: str, new: str) -> None:
    """Give checkpoint `old`'s files the prefix `new` (the index and data bytes never name their prefix)."""
    directory = os.path.dirname(old)
    for name in os.listdir(directory):
        if name.startswith(os.path.basename(old) + "."):
            os.rename(os.path.join(directory, name), new + name[len(os.path.basename(old)):])


def audit(root: str, report: str, *extra) -> tuple:
    result = run_cli("audit", root, "--report-dir", report, "--min-age", "0", *IN_PROCESS, *extra)
    return result, {r.prefix: r for r in read_records(report)}


def tensorflow_reads(prefix: str) -> int:
    """How many tensors TensorFlow itself reads through `prefix`'s index."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)
    return len(reader.get_variable_to_shape_map())


# --- 9. a line break in a name ---------------------------------------------------------------------------

@pytest.fixture
def broken_names(family_copy, tmp_path):
    """keras3_adam's run with ckpt-1 renamed `ck\\npt-1` (healthy) and ckpt-3 renamed `ck\\npt-3` with its
    index lost; ckpt-2 keeps its name. Returns (run directory, healthy, orphan, the orphan's index)."""
    run = run_of(family_copy("keras3_adam"), tmp_path / "tree" / "run")
    healthy, lost = os.path.join(run.directory, "ck\npt-1"), os.path.join(run.directory, "ck\npt-3")
    rename_prefix(run[1], healthy)
    rename_prefix(run[3], lost)
    return run.directory, healthy, lost, orphan(lost)


def test_a_name_with_a_line_break_is_healthy_rebuilt_and_promoted_locally(broken_names, tmp_path):
    directory, healthy, lost, original = broken_names
    report = str(tmp_path / "report")
    result, records = audit(directory, report)
    assert result.returncode == 0, result.stderr
    assert records[healthy].status == "healthy", records[healthy].reason       # not "incomplete" any more
    assert records[os.path.join(directory, "ckpt-2")].status == "healthy"
    rebuilt = records[lost]
    assert rebuilt.status == "rebuilt" and rebuilt.staged and "\n" not in rebuilt.index_path
    with open(rebuilt.index_path, "rb") as f:
        assert f.read() == original
    with open(os.path.join(report, "failures.csv"), newline="") as f:
        assert list(csv.reader(f)) == [["prefix", "status", "reason"]]
    with open(os.path.join(report, "promote.sh")) as f:
        script = f.read()
    assert "# skipped a name with a line break in it" in script and "ck\npt" not in script   # never split
    promoted = run_printed(rebuilt.command)         # ckpt-rescue promote REPORT PREFIX: the name whole
    assert promoted.returncode == 0 and "1 promoted" in promoted.stdout, promoted.stdout + promoted.stderr
    with open(lost + ".index", "rb") as f:
        assert f.read() == original                 # at exactly its name, line break included
    assert tensorflow_reads(lost) == tensorflow_reads(healthy) > 0
    inspect = run_cli("inspect", healthy)
    assert inspect.returncode == 0 and inspect.stdout.startswith(f"checkpoint {healthy}: healthy")
    result, records = audit(directory, str(tmp_path / "again"))
    assert result.returncode == 0 and records[lost].status == "healthy"


def test_line_breaks_in_refused_names_keep_failures_csv_one_row_per_line(broken_names, tmp_path):
    """Refused orphans with line breaks in their names: one row of failures.csv each, on one line, and
    each record's command works as printed."""
    directory, healthy, lost, original = broken_names
    os.remove(os.path.join(directory, "ckpt-2.index"))
    os.remove(healthy + ".index")                   # no sibling left: nothing describes it
    report = str(tmp_path / "report")
    result, records = audit(directory, report)
    assert result.returncode == 1
    with open(os.path.join(report, "failures.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + sum(1 for r in records.values() if r.needs_a_person) == 4
    assert {row[0] for row in rows[1:]} == {p.replace("\n", " ") for p in (healthy, lost)} | {
        os.path.join(directory, "ckpt-2")}
    with open(os.path.join(report, "failures.csv"), "rb") as f:
        assert f.read().count(b"\n") == len(rows)   # one line per row
    inspected = run_printed(records[lost].command)
    assert inspected.returncode == 1 and f"checkpoint {lost}: ORPHAN" in inspected.stdout


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_a_name_with_a_line_break_in_a_bucket(scheme, request, broken_names, tmp_path):
    directory, healthy, lost, original = broken_names
    bucket = request.getfixturevalue("gcs_bucket" if scheme == "gs" else "s3_bucket")
    fs, path = storage.url_to_fs(bucket)
    try:
        fs.pipe_file(f"{path}/probe/a\nb", b"x")
    except FileNotFoundError:
        pytest.skip(f"this {scheme} emulator refuses an object name with a line break (moto's S3 server answers a "
                    "PUT of such a key with 404); real S3 accepts any UTF-8 key")
    upload_tree(directory, f"{bucket}/run")
    report = str(tmp_path / "report")
    result, records = audit(f"{bucket}/run", report)
    assert result.returncode == 0, result.stderr
    remote = f"{bucket}/run/{os.path.basename(healthy)}"
    assert records[remote].status == "healthy", records[remote].reason
    rebuilt = records[f"{bucket}/run/{os.path.basename(lost)}"]
    assert rebuilt.status == "rebuilt" and rebuilt.staged
    with open(rebuilt.index_path, "rb") as f:
        assert f.read() == original


# --- 10. names past the file name limit ------------------------------------------------------------------

LONG = "ü" * 100                 # 200 bytes: its data file fits (220), its percent-encoded staged name (600) does not
LONG_TOO = "ü" * 99 + "ö"        # the same first 198 bytes: its staged name must not be LONG's
ASCII = "a" * 229                # its index (235 bytes) fits; a temp name beside it that repeats it did not


@pytest.fixture
def long_names(family_copy, tmp_path):
    """keras3_adam's run with ckpt-3's data copied to three orphans with long names, ckpt-3 itself gone:
    (run directory, {prefix: the index TensorFlow wrote})."""
    run = run_of(family_copy("keras3_adam"), tmp_path / "tree" / "run")
    original = orphan(run[3])
    prefixes = [os.path.join(run.directory, name) for name in (LONG, LONG_TOO, ASCII)]
    for prefix in prefixes:
        shutil.copy(run[3] + DATA, prefix + DATA)
    os.remove(run[3] + DATA)
    return run.directory, {prefix: original for prefix in prefixes}


def test_long_names_stage_apart_within_the_limit_and_promote_to_their_place(long_names, tmp_path):
    directory, originals = long_names
    report = str(tmp_path / "report")
    result, records = audit(directory, report)
    assert result.returncode == 0, result.stderr
    staged = {records[p].index_path for p in originals}
    assert len(staged) == len(originals)                            # two long names never share a staged file
    for prefix, original in originals.items():
        record = records[prefix]
        assert record.status == "rebuilt" and record.staged, record.reason
        assert all(len(segment.encode()) <= NAME_MAX for segment in record.index_path.split("/"))
        with open(record.index_path, "rb") as f:
            assert f.read() == original
    first = records[os.path.join(directory, LONG)]
    assert shlex.split(first.command)[-1] == first.prefix          # the full target, recorded
    assert run_printed(first.command).returncode == 0               # the record's command puts it in place
    promoted = subprocess.run(["sh", os.path.join(report, "promote.sh")], capture_output=True, text=True,
                              timeout=HANG_GUARD)
    assert promoted.returncode == 0 and "2 promoted, 1 already had an index" in promoted.stdout, promoted.stdout
    for prefix, original in originals.items():
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original
    assert tensorflow_reads(os.path.join(directory, LONG)) > 0

    # their indexes kept in a vault (as a nightly audit keeps them); `rebuild --vault` brings each back in place
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    for prefix in originals:
        assert keep_checkpoint(vault, prefix, ORIGIN_SEEN_HEALTHY, 1_796_600_000.0).created
    for prefix, original in originals.items():
        orphan(prefix)
        rebuild = run_cli("rebuild", prefix, "--vault", vault.url)    # in place: a temp name beside it, then a link
        assert rebuild.returncode == 0 and "by the index as it was on" in rebuild.stdout, rebuild.stderr
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original
    assert not [name for name in os.listdir(directory) if ".ckpt-rescue-" in name]   # no temp file left behind


def test_a_long_output_name_salvages_and_rebuilds(long_names, tmp_path):
    directory, originals = long_names
    prefix = os.path.join(directory, ASCII)
    out = tmp_path / "out"
    out.mkdir()
    rebuilt = run_cli("rebuild", prefix, "--output", str(out / (ASCII + ".index")))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (out / (ASCII + ".index")).read_bytes() == originals[prefix]
    salvaged = run_cli("salvage", prefix, "--output", str(out / ("b" * 229)))
    assert salvaged.returncode == 0, salvaged.stderr
    assert tensorflow_reads(str(out / ("b" * 229))) > 0
    assert not [name for name in os.listdir(out) if ".ckpt-rescue-" in name]


# --- 11. directories that look like TensorFlow's or like an earlier report -------------------------------

def test_a_user_directory_named_like_a_temp_or_a_report_is_audited(family_copy, tmp_path):
    root = tmp_path / "tree"
    bert = run_of(family_copy("keras3_adam"), root / "exp" / "bert_temp")
    kept = run_of(family_copy("keras3_adam"), root / "exp" / "rebuilt")
    for name in ("summary.json", "records.jsonl"):                  # the training job's own files
        (root / "exp" / name).write_text("{}\n")
    original = orphan(bert[3])
    report = str(root / "audit-1")                                 # a report of this tool, inside the root
    result, records = audit(str(root), report)
    assert result.returncode == 0, result.stderr
    assert records[bert[3]].status == "rebuilt" and records[bert[3]].directory == bert.directory
    with open(records[bert[3]].index_path, "rb") as f:
        assert f.read() == original
    assert records[bert[1]].status == records[bert[2]].status == "healthy"
    assert all(records[kept[n]].status == "healthy" for n in (1, 2, 3))   # not taken for an earlier report

    # the real thing still groups: TensorFlow's part index of ckpt-2 in `ckpt-2_temp/` belongs to ckpt-2
    part = bert[2] + "_temp"
    os.mkdir(part)
    shutil.copy(bert[2] + ".index", os.path.join(part, "part-00000-of-00001.index"))
    result, records = audit(str(root), str(tmp_path / "again"))
    merge = records[os.path.join(part, "part-00000-of-00001")]
    assert merge.kind == "leftover" and merge.directory == bert.directory and "merge input" in merge.reason
    # and the first audit's report, now inside the root, keeps its staged index to itself: its marker decides
    assert os.path.exists(os.path.join(report, ".ckpt-rescue-report"))
    assert not [p for p in records if p.startswith(report)]


def test_symbolic_links_to_directories_are_counted_and_named(family_copy, tmp_path):
    root, outside = tmp_path / "tree", tmp_path / "elsewhere"
    run = run_of(family_copy("keras3_adam"), root / "runs" / "real")
    away = run_of(family_copy("keras3_adam"), outside / "run7")
    os.symlink(away.directory, root / "runs" / "latest")          # checkpoints only reachable through it
    os.symlink(run.directory, root / "runs" / "alias")            # a second way to checkpoints audited anyway
    report = str(tmp_path / "report")
    result, records = audit(str(root), report)
    assert result.returncode == 0, result.stderr
    link = records[str(root / "runs" / "latest")]
    assert (link.kind, link.status, link.source) == ("listing", "healthy", away.directory)
    assert "not followed, so checkpoints reached only through it were not audited" in link.reason
    alias = records[str(root / "runs" / "alias")]
    assert alias.source == "" and "audited under their own path" in alias.reason
    assert all(records[run[n]].status == "healthy" for n in (1, 2, 3))
    assert not [p for p in records if p.startswith(str(root / "runs" / "latest") + "/")]
    assert read_summary(report)["not_followed"] == {"count": 1, "where": [f"{root}/runs/latest -> {away.directory}"]}
    assert "not followed: 1 symbolic link(s) to directories outside their root" in result.stdout
    assert f"  {root}/runs/latest -> {away.directory}" in result.stdout

    only = tmp_path / "only-links"
    only.mkdir()
    os.symlink(away.directory, only / "latest")
    result, records = audit(str(only), str(tmp_path / "report-only"))
    assert list(records) == [str(only / "latest")] and "not followed: 1 symbolic link(s)" in result.stdout
    assert "looked at every depth" not in result.stderr             # the root did hold something: a link
