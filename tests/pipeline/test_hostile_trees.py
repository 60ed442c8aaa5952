"""Hostile trees (issue 14, points 7 and 8): a FIFO named like a checkpoint's data file or index, an
index name taken by a directory or a dangling symbolic link, a data file that cannot be read, on local
disk and (for the read that fails) on the GCS and S3 emulators. Every command (`audit`, `rebuild`,
`inspect`, `salvage`, `register --from-checkpoint`) runs in its own process and must finish: the
process timeout is a hang guard, not a speed assertion. Each ends with a clear message and exit code,
never a traceback; every command `inspect` or a record prints is followed; the TensorFlow-written
checkpoints beside the hostile files keep their verdicts and rebuild byte for byte.
"""

import json
import os
import shlex
import stat
import subprocess
import uuid

import pytest
from hostile_helpers import DATA, HANG_GUARD, IN_PROCESS, run_cli, run_of, run_printed
from source_helpers import orphan
from storage_servers import upload_tree

from recovery import storage
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]

def kinds(root: str) -> dict:
    """relative path -> (file type, bytes of a regular file): read without opening anything else."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            content = None
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    content = f.read()
            found[os.path.relpath(path, root)] = (stat.S_IFMT(mode), content)
    return found


def fifo(path: str) -> None:
    if os.path.lexists(path):
        os.remove(path)
    os.mkfifo(path)


def printed_rebuild(inspected: str) -> str:
    """The rebuild command `inspect` recommends, as printed (after "to rebuild the index ...: ")."""
    line = next(line for line in inspected.splitlines() if line.startswith("to rebuild the index"))
    return line.split(": ", 1)[1].split("; then ", 1)[0]


# --- 7. FIFOs -----------------------------------------------------------------------------------------

@pytest.fixture
def fifo_tree(family_copy, tmp_path):
    """Two runs of keras3_adam under one root. In `a`: ckpt-1's data file and index are FIFOs, ckpt-2 is
    healthy, ckpt-3 lost its index and a FIFO took the name. In `b`: ckpt-1's data file is a FIFO beside
    its real index. Returns (root, a, b, ckpt-3's original index)."""
    root = tmp_path / "tree"
    root.mkdir()
    a, b = run_of(family_copy("keras3_adam"), root / "a"), run_of(family_copy("keras3_adam"), root / "b")
    for path in (a[1] + DATA, a[1] + ".index", b[1] + DATA):
        fifo(path)
    original = orphan(a[3])
    fifo(a[3] + ".index")
    return str(root), a, b, original


def test_fifos_named_like_checkpoint_files_hang_no_command(fifo_tree, tmp_path):
    root, a, b, original = fifo_tree
    before = kinds(root)
    report = str(tmp_path / "report")
    audit = run_cli("audit", root, "--report-dir", report, "--min-age", "0", *IN_PROCESS)
    assert audit.returncode == 1, audit.stderr
    records = {r.prefix: r for r in read_records(report)}
    for path in (a[1] + DATA, a[1] + ".index", b[1] + DATA):
        record = records[path]
        assert (record.kind, record.status) == ("listing", "unrecoverable"), record
        assert record.reason.startswith("a FIFO (named pipe), named like ") and "never opens it" in record.reason
        assert record.command == f"ls -l -- {path}" and run_printed(record.command).returncode == 0
    assert a[1] not in records                      # nothing of it can be read: no checkpoint record
    assert records[a[2]].status == "healthy"        # the neighbours keep their verdicts
    assert records[b[2]].status == records[b[3]].status == "healthy"
    assert records[b[1]].status == "incomplete"     # its one data shard is not a file
    assert "missing" in records[b[1]].reason
    stolen = records[a[3]]
    assert stolen.status == "corrupt" and stolen.staged
    assert "ckpt-3.index is a FIFO (named pipe), not an index file" in stolen.reason
    with open(stolen.index_path, "rb") as f:
        assert f.read() == original                          # rebuilt from ckpt-2, byte for byte
    assert kinds(root) == before                             # the audit changed nothing
    with open(os.path.join(report, "failures.csv")) as f:   # one row per line, every finding in it
        assert len(f.read().splitlines()) == 1 + sum(1 for r in records.values() if r.needs_a_person)
    assert subprocess.run(["sh", "-n", os.path.join(report, "promote.sh")]).returncode == 0
    with open(os.path.join(report, "summary.json")) as f:
        assert json.load(f)["kinds"]["listing"] == 4         # the four FIFOs, each with its own record

    out = tmp_path / "out"
    out.mkdir()
    registry = str(tmp_path / "registry" / "architectures.yaml")
    # a's ckpt-1: nothing readable by that name; every command says so and stops (exit 2: not a prefix)
    for args in (["rebuild", a[1]], ["inspect", a[1]],
                 ["salvage", a[1], "--output", str(out / "a1")],
                 ["register", "a1", "--from-checkpoint", a[1], "--registry", registry]):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "is a FIFO (named pipe), not a file: not read" in result.stderr, (args, result.stderr)
    # a's ckpt-3: real data, a FIFO where its index should be, which no command opens or replaces
    rebuild = run_cli("rebuild", a[3])
    assert rebuild.returncode == 1 and "ckpt-3.index is a FIFO (named pipe), not an index file" in rebuild.stderr
    inspect = run_cli("inspect", a[3])
    assert inspect.returncode == 1 and "ORPHAN" in inspect.stdout
    assert "PROBLEM    ckpt-3.index is a FIFO (named pipe), not a file: not read" in inspect.stdout
    followed = run_printed(printed_rebuild(inspect.stdout))
    assert followed.returncode == 0, followed.stderr
    with open(a[3] + ".index.rebuilt", "rb") as f:
        assert f.read() == original
    salvaged = run_cli("salvage", a[3], "--output", str(out / "a3"))
    assert salvaged.returncode == 0 and "salvaged" in salvaged.stdout, salvaged.stderr
    register = run_cli("register", "a3", "--from-checkpoint", a[3], "--registry", registry)
    assert register.returncode == 2 and f"--from-checkpoint {a[3]} cannot be read: is a FIFO (named pipe), not a " \
        f"regular file; never opened: {a[3]}.index" in register.stderr
    # b's ckpt-1: its index is real, its data a FIFO: the index answers, the data is named
    assert run_cli("rebuild", b[1]).returncode == 0          # the index exists and reads: nothing to do
    inspect = run_cli("inspect", b[1])
    assert inspect.returncode == 1 and f"ckpt-1{DATA} is a FIFO (named pipe), not a file: not read" in inspect.stdout
    salvaged = run_cli("salvage", b[1], "--output", str(out / "b1"))
    assert salvaged.returncode == 1 and "nothing provable" in salvaged.stderr
    register = run_cli("register", "b1", "--from-checkpoint", b[1], "--registry", registry)
    assert register.returncode == 2 and f"is a FIFO (named pipe), not a regular file; never opened: {b[1]}{DATA}" \
        in register.stderr                                     # its object graph is in that data file
    assert {k: v for k, v in kinds(root).items() if not k.endswith(".rebuilt")} == before

    # the audit's own command for ckpt-3 never opens the FIFO: it stops and names it; moved aside by a
    # person, the same command puts the rebuilt index in its place
    refused = run_printed(stolen.command)
    assert refused.returncode == 1 and "not a regular file; never opened" in refused.stdout + refused.stderr
    assert stat.S_ISFIFO(os.lstat(a[3] + ".index").st_mode)
    os.rename(a[3] + ".index", a[3] + ".index.unreadable")
    assert run_printed(stolen.command).returncode == 0
    assert stat.S_ISFIFO(os.lstat(a[3] + ".index.unreadable").st_mode)
    with open(a[3] + ".index", "rb") as f:
        assert f.read() == original


# --- 8. an index name taken, a dangling link, data that cannot be read ---------------------------------

@pytest.fixture
def taken_tree(family_copy, tmp_path):
    """keras3_adam's run with ckpt-3's index replaced by a directory and ckpt-1's data by a dangling
    symbolic link; a second run whose ckpt-3 index is a dangling link. Returns (root, run, other, original)."""
    root = tmp_path / "tree"
    root.mkdir()
    run, other = run_of(family_copy("keras3_adam"), root / "run"), run_of(family_copy("keras3_adam"), root / "other")
    original = orphan(run[3])
    os.mkdir(run[3] + ".index")
    os.remove(run[1] + DATA)
    os.symlink(str(tmp_path / "gone" / "ckpt-1.data"), run[1] + DATA)
    assert orphan(other[3]) == original
    os.symlink(str(tmp_path / "gone" / "ckpt-3.index"), other[3] + ".index")
    return str(root), run, other, original


def test_a_taken_index_name_and_dangling_links_get_messages_not_tracebacks(taken_tree, tmp_path):
    root, run, other, original = taken_tree
    report = str(tmp_path / "report")
    audit = run_cli("audit", root, "--report-dir", report, "--min-age", "0", *IN_PROCESS)
    assert audit.returncode == 1, audit.stderr
    records = {r.prefix: r for r in read_records(report)}
    assert records[run[2]].status == "healthy"
    for prefix, what in ((run[3], "ckpt-3.index is a directory, not an index file"),
                         (other[3], "ckpt-3.index is a dangling symbolic link")):
        record = records[prefix]
        assert record.status == "corrupt" and record.staged and what in record.reason, record.reason
        with open(record.index_path, "rb") as f:
            assert f.read() == original
        assert shlex.split(record.command) == ["ckpt-rescue", "promote", report, prefix, "--replace"]
    dangling = records[run[1] + DATA]
    assert (dangling.kind, dangling.status) == ("listing", "unrecoverable")
    assert "dangling symbolic link" in dangling.reason and "the file it pointed at is gone" in dangling.reason
    assert records[run[1]].status == "incomplete"
    promote = subprocess.run(["sh", os.path.join(report, "promote.sh")], capture_output=True, text=True,
                             timeout=HANG_GUARD)
    assert promote.returncode == 1 and promote.stdout.count("not promoted (its own index is there and is corrupt") == 2
    assert os.path.isdir(run[3] + ".index")      # promote.sh never swaps them

    for prefix, what, unregistered in ((run[3], "is a directory", "cannot be read: is a directory, not a file"),
                                       (other[3], "is a dangling symbolic link", "ckpt-3.index does not exist")):
        rebuild = run_cli("rebuild", prefix)
        assert rebuild.returncode == 1 and f"ckpt-3.index {what}" in rebuild.stderr
        assert "it is never replaced: rebuild with --output FILE" in rebuild.stderr
        inspect = run_cli("inspect", prefix)
        assert inspect.returncode == 1 and f"ckpt-3.index {what}" in inspect.stdout
        followed = run_printed(printed_rebuild(inspect.stdout))     # what inspect recommends works
        assert followed.returncode == 0, followed.stderr
        with open(prefix + ".index.rebuilt", "rb") as f:
            assert f.read() == original
        register = run_cli("register", f"r{uuid.uuid4().hex[:6]}", "--from-checkpoint", prefix, "--registry",
                           str(tmp_path / "registry.yaml"))
        assert register.returncode == 2 and unregistered in register.stderr, register.stderr
        salvage = run_cli("salvage", prefix, "--output", str(tmp_path / "out" / uuid.uuid4().hex[:6]))
        assert salvage.returncode == 0, salvage.stderr
    # the records' own commands, followed: each stops at the odd thing, which it never opens nor moves,
    # and names it; once a person has moved it aside, the same command puts the rebuilt index in its place
    for prefix in (run[3], other[3]):
        refused = run_printed(records[prefix].command)
        assert refused.returncode == 1 and f"{prefix}.index" in refused.stdout + refused.stderr, refused.stdout
        assert "Traceback" not in refused.stdout + refused.stderr and os.path.lexists(prefix + ".index")
        os.rename(prefix + ".index", prefix + ".index.unreadable")
        assert run_printed(records[prefix].command).returncode == 0
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original
        assert os.path.lexists(prefix + ".index.unreadable")

    dangling_data = run[1]
    inspect = run_cli("inspect", dangling_data)
    assert inspect.returncode == 1 and "dangling symbolic link" in inspect.stdout
    assert run_cli("inspect", dangling_data + DATA).returncode == 2      # the link itself: what it is, said
    salvage = run_cli("salvage", dangling_data, "--output", str(tmp_path / "out" / "d1"))
    assert salvage.returncode == 1 and "Traceback" not in salvage.stderr


def test_an_unreadable_data_file_is_a_refusal_with_the_reason(family_copy, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop reads (the emulator tests below refuse the "
                    "read at the storage boundary instead)")
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    os.chmod(family.prefix + DATA, 0)
    try:
        rebuild = run_cli("rebuild", family.prefix)
        assert rebuild.returncode == 1 and "Permission denied" in rebuild.stderr and "nothing written" in rebuild.stderr
        inspect = run_cli("inspect", family.prefix)
        assert inspect.returncode == 1 and "cannot be read: Permission denied" in inspect.stdout
        assert "to rebuild the index" not in inspect.stdout       # no command that would fail
        salvage = run_cli("salvage", family.prefix, "--output", str(tmp_path / "s"))
        assert salvage.returncode == 1 and "Permission denied" in salvage.stderr
        report = str(tmp_path / "report")
        assert run_cli("audit", os.path.dirname(family.prefix), "--report-dir", report, "--min-age", "0",
                       *IN_PROCESS).returncode == 1
        record = {r.prefix: r for r in read_records(report)}[family.prefix]
        assert record.status == "unrecoverable" and "Permission denied" in record.reason
        assert {r.prefix: r for r in read_records(report)}[family.siblings[0]].status == "healthy"
    finally:
        os.chmod(family.prefix + DATA, 0o644)
    assert not os.path.exists(family.prefix + ".index") and original


# The object read of the orphan's data (not its metadata): S3 GET of the key; GCS media download.
DATA_READ = {"s3": r"ckpt-3\.data-00000-of-00001$", "gs": r"ckpt-3\.data-00000-of-00001\?alt=media"}
INDEX_READ = {"s3": r"ckpt-2\.index$", "gs": r"ckpt-2\.index\?alt=media"}


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_a_store_that_refuses_a_read_gets_a_clear_refusal(scheme, request, pristine_family, tmp_path):
    """403 on every read of the orphan's data (and of a sibling's index), at the storage boundary: a
    refusal with the store's words and exit 1 (2 where a healthy prefix was asked for), never a traceback."""
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    family = pristine_family("keras3_adam")
    bucket = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(bucket)
    fs.mkdir(path)
    local = tmp_path / "run"
    local.mkdir()
    for name in os.listdir(os.path.dirname(family.prefix)):
        if name != "ckpt-3.index" and name != "checkpoint":
            with open(os.path.join(os.path.dirname(family.prefix), name), "rb") as f:
                (local / name).write_bytes(f.read())
    upload_tree(str(local), f"{bucket}/run")
    prefix = f"{bucket}/run/ckpt-3"
    proxy.fail(403, times=None, method="GET", path=DATA_READ[scheme])
    proxy.fail(403, times=None, method="GET", path=INDEX_READ[scheme])
    rebuild = run_cli("rebuild", prefix, "--output", str(tmp_path / "ckpt-3.index"))
    assert rebuild.returncode == 1 and rebuild.stderr.startswith(f"refused: {prefix}: "), rebuild.stderr
    assert not (tmp_path / "ckpt-3.index").exists()
    inspect = run_cli("inspect", prefix)
    assert inspect.returncode == 1 and "cannot be read" in inspect.stdout and "to rebuild" not in inspect.stdout
    salvage = run_cli("salvage", prefix, "--output", str(tmp_path / "salvaged"))
    assert salvage.returncode == 1 and "refused:" in salvage.stderr
    register = run_cli("register", "adam", "--from-checkpoint", f"{bucket}/run/ckpt-2", "--registry",
                       str(tmp_path / "registry.yaml"))
    assert register.returncode == 2 and f"--from-checkpoint {bucket}/run/ckpt-2 cannot be read: " in register.stderr
    assert ("Forbidden: " if scheme == "gs" else "PermissionError: ") in register.stderr, register.stderr
    report = str(tmp_path / "report")
    audit = run_cli("audit", f"{bucket}/run", "--report-dir", report, "--min-age", "0", *IN_PROCESS)
    assert audit.returncode == 1, audit.stderr
    records = {r.prefix: r for r in read_records(report)}
    assert records[prefix].status == "unrecoverable" and records[f"{bucket}/run/ckpt-1"].status == "healthy"
    assert proxy.hits() > 0, proxy.log
