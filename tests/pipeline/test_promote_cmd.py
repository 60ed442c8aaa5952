"""`ckpt-rescue promote` and promote.sh, run from a copy of the report in another directory (what a person
does with a report written to a bucket and read on a laptop): staged indexes are found beside the script,
targets are the audited locations or where --root-map says they are now, --dry-run says exactly what would
happen and writes nothing, and nothing is ever overwritten. On local disk (with ckpt-rescue and with the
script's own shell), and against the GCS emulator and moto's S3 server with the report downloaded."""

import os
import shutil

import pytest
from audit_trees import plant_tree
from command_helpers import NO_TOOL, run_printed, run_script
from source_helpers import tree_digest
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server, snapshot, upload_tree  # noqa: F401

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.records import REBUILT
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def audited(pristine_family, tmp_path_factory):
    base = tmp_path_factory.mktemp("promote")
    planted = plant_tree(pristine_family, str(base / "tree"), str(base / "registry"))
    report = str(base / "report")
    assert cli_main(["audit", planted.root, "--report-dir", report, "--registry", planted.registry, "--min-age", "0",
                     "--direct_running_mode=in_memory"]) == 1
    return planted, report


def moved(planted, report: str, tmp_path) -> tuple[str, str]:
    """The report and the tree copied elsewhere, the originals hidden: nothing may be read from there."""
    tree, copy = str(tmp_path / "mounted" / "tree"), str(tmp_path / "laptop" / "report copy")
    shutil.copytree(planted.root, tree)
    shutil.copytree(report, copy)
    return tree, copy


@pytest.fixture
def hidden_original(audited):
    """The audited tree and report directory renamed while the test runs: a copy must not reach back to them."""
    planted, report = audited
    for path in (planted.root, report):
        os.rename(path, path + ".hidden")
    yield
    for path in (planted.root, report):
        os.rename(path + ".hidden", path)


@pytest.mark.parametrize("mode", ["ckpt-rescue", "shell"])
def test_promote_sh_from_a_copied_report_into_a_moved_tree(audited, tmp_path, mode, hidden_original):
    planted, report = audited
    tree, copy = str(tmp_path / "mounted" / "tree"), str(tmp_path / "laptop" / "report copy")
    shutil.copytree(planted.root + ".hidden", tree)
    shutil.copytree(report + ".hidden", copy)
    env = NO_TOOL if mode == "shell" else {}
    staged = [r for r in read_records(copy) if r.staged and r.status == REBUILT]
    assert len(staged) == len(planted.originals) >= 3
    root_map = f"--root-map={planted.root}={tree}"
    before = tree_digest(tree)

    unmapped = run_script(os.path.join(copy, "promote.sh"), "--dry-run", cwd=str(tmp_path), **env)
    assert unmapped.returncode == 1 and unmapped.stdout.count("FAILED (nothing overwritten)") == len(staged)
    assert "moved? see --root-map" in unmapped.stdout          # the audited tree is not here: it says what to pass

    dry = run_script(os.path.join(copy, "promote.sh"), "--dry-run", root_map, cwd="/", **env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for record in staged:
        target = tree + record.prefix[len(planted.root):] + ".index"
        here = os.path.join(copy, os.path.relpath(record.index_path, report))
        assert f"would promote: {here} -> {target}" in dry.stdout
    assert dry.stdout.splitlines()[-1] == (f"dry run: {len(staged)} would be promoted, 0 already had an index (left "
                                           "alone), 0 need a person, 0 failed")
    assert tree_digest(tree) == before

    taken = tree + staged[0].prefix[len(planted.root):] + ".index"
    with open(taken, "wb") as f:                                # someone wrote an index there meanwhile
        f.write(b"theirs")
    done = run_script(os.path.join(copy, "promote.sh"), "--root-map", f"{planted.root}={tree}", cwd="/", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"left alone (an index is already there): {taken}" in done.stdout
    assert open(taken, "rb").read() == b"theirs"
    for record in staged[1:]:
        target = tree + record.prefix[len(planted.root):] + ".index"
        assert f"promoted: {target}" in done.stdout
        assert open(target, "rb").read() == planted.originals[record.prefix]
    after = tree_digest(tree)
    assert {k: after[k] for k in before} == before             # nothing that was there changed
    assert not [p for p in after if ".ckpt-rescue-" in p]      # no temporary file left beside a target

    again = run_script(os.path.join(copy, "promote.sh"), "--root-map", f"{planted.root}={tree}", **env)
    assert again.returncode == 0 and tree_digest(tree) == after
    assert f"0 promoted, {len(staged)} already had an index" in again.stdout


@pytest.mark.parametrize("mode", ["ckpt-rescue", "shell"])
def test_data_that_changed_since_the_audit_gets_no_index(audited, tmp_path, mode):
    planted, report = audited
    tree, copy = moved(planted, report, tmp_path)
    record = next(r for r in read_records(copy) if r.staged and r.status == REBUILT)
    data = tree + record.prefix[len(planted.root):] + ".data-00000-of-00001"
    with open(data, "ab") as f:
        f.write(b"\0" * 8)
    done = run_script(os.path.join(copy, "promote.sh"), "--root-map", f"{planted.root}={tree}",
                      **(NO_TOOL if mode == "shell" else {}))
    assert done.returncode == 1
    line = next(x for x in done.stdout.splitlines() if x.startswith("FAILED"))
    assert "the data changed since the audit; audit it again" in line and record.prefix[len(planted.root):] in line
    assert not os.path.exists(data[: -len(".data-00000-of-00001")] + ".index")


def test_a_record_command_promotes_one_and_says_what_is_missing(audited, tmp_path):
    planted, report = audited
    record = next(r for r in read_records(report) if r.staged and r.status == REBUILT)
    tree, copy = moved(planted, report, tmp_path)
    assert record.command.startswith("ckpt-rescue promote ")
    assert f" {record.prefix}" in record.command and "--root-map" not in record.command
    printed = run_printed(record.command.replace(report, f"'{copy}'") + f" --root-map {planted.root}={tree}")
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert printed.stdout.splitlines() == [f"promoted: {tree}{record.prefix[len(planted.root):]}.index",
                                           "done: 1 promoted, 0 already had an index (left alone), 0 need a person, "
                                           "0 failed"]
    gone = run_printed(record.command.replace(report, str(tmp_path / "nowhere")))
    assert gone.returncode == 2 and "no finished report at" in gone.stderr and "wherever it is now" in gone.stderr
    typo = run_printed(f"ckpt-rescue promote '{copy}' {record.prefix}x")
    assert typo.returncode == 2 and f"nearest: {record.prefix}" in typo.stderr


@pytest.mark.parametrize("store", ["gs", "s3"])
def test_a_report_written_to_a_bucket_promotes_from_a_download(planted_bucket, tmp_path, store):
    planted, root, reports = planted_bucket(store)
    download = str(tmp_path / "download")
    fs, path = storage.url_to_fs(reports)
    fs.get(path.rstrip("/") + "/", download + "/", recursive=True)
    staged = [r for r in read_records(download) if r.staged and r.status == REBUILT]
    before = snapshot(root)

    shell = run_script(os.path.join(download, "promote.sh"), **NO_TOOL)    # the shell alone cannot reach a bucket
    assert shell.returncode == 1 and shell.stdout.count("a cloud target needs ckpt-rescue") == len(staged)
    dry = run_script(os.path.join(download, "promote.sh"), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count(f"would promote: {download}/rebuilt/") == len(staged)
    assert snapshot(root) == before

    done = run_script(os.path.join(download, "promote.sh"))
    assert done.returncode == 0, done.stdout + done.stderr
    for record in staged:
        assert f"promoted: {record.prefix}.index" in done.stdout
        fs, index = storage.url_to_fs(record.prefix + ".index")
        assert storage.read_bytes(fs, index) == planted.originals[planted.root + record.prefix[len(root):]]
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before

    in_bucket = run_printed(f"ckpt-rescue promote {reports}")     # the report where it was written, too
    assert in_bucket.returncode == 0 and f"0 promoted, {len(staged)} already had an index" in in_bucket.stdout
    assert snapshot(root) == after


@pytest.fixture(scope="module")
def planted_bucket(audited, request):
    """store -> (planted, root URL, report URL): the planted tree uploaded and audited there."""
    planted, _ = audited
    done = {}

    def get(store: str):
        if store not in done:
            bucket = request.getfixturevalue(f"{'gcs' if store == 'gs' else 's3'}_bucket_for_module")
            root, reports = f"{bucket}/tree", f"{bucket}/reports"
            upload_tree(planted.root, root)
            assert cli_main(["audit", root, "--report-dir", reports, "--registry", planted.registry, "--min-age", "0",
                             "--direct_running_mode=in_memory"]) == 1
            done[store] = (planted, root, reports)
        return done[store]

    return get


@pytest.fixture(scope="module")
def gcs_bucket_for_module(gcs_server):  # noqa: F811
    from storage_servers import _new_bucket

    return _new_bucket("gs")


@pytest.fixture(scope="module")
def s3_bucket_for_module(s3_server):  # noqa: F811
    from storage_servers import _new_bucket

    return _new_bucket("s3")


@pytest.mark.parametrize("store", ["gs", "s3"])
def test_replace_keeps_an_unreadable_index_aside_in_a_bucket_and_overwrites_nothing(pristine_family, tmp_path,
                                                                                   store, request):
    """The record of an unreadable index offers `promote ... --replace`: the index is copied aside with the
    store's create-only write, removed only then, and the staged one created; an aside that exists stops it."""
    bucket = request.getfixturevalue(f"{'gcs' if store == 'gs' else 's3'}_bucket_for_module")
    family = pristine_family("keras3_adam")
    root, reports = f"{bucket}/replace", str(tmp_path / "report")
    upload_tree(os.path.dirname(family.prefix), root)
    target = f"{root}/{os.path.basename(family.prefix)}.index"
    fs, path = storage.url_to_fs(target)
    original = storage.read_bytes(fs, path)
    fs.pipe_file(path, original[:-1] + b"\x00")                      # bad magic number
    assert cli_main(["audit", root, "--report-dir", reports, "--min-age", "0",
                     "--direct_running_mode=in_memory"]) == 1
    record = next(r for r in read_records(reports) if r.prefix == target[: -len(".index")])
    assert record.status == "corrupt" and record.staged
    assert record.command.endswith(" --replace")
    assert run_printed(record.command.replace(" --replace", "")).returncode == 1   # never without --replace
    assert storage.read_bytes(fs, path) == original[:-1] + b"\x00"

    fs.pipe_file(path + ".unreadable", b"a person's copy")           # an aside name taken: nothing moves
    refused = run_printed(record.command)
    assert refused.returncode == 1 and "move it away first" in refused.stdout, refused.stdout
    assert storage.read_bytes(fs, path) == original[:-1] + b"\x00"
    fs.rm_file(path + ".unreadable")

    dry = run_printed(record.command + " --dry-run")
    assert dry.returncode == 0 and f"would replace: {target}" in dry.stdout, dry.stdout + dry.stderr
    assert not fs.exists(path + ".unreadable")
    done = run_printed(record.command)
    assert done.returncode == 0 and f"replaced: {target}" in done.stdout, done.stdout + done.stderr
    assert storage.read_bytes(fs, path) == original                 # the index TensorFlow wrote, rebuilt
    assert storage.read_bytes(fs, path + ".unreadable") == original[:-1] + b"\x00"
    again = run_printed(record.command)
    assert again.returncode == 0 and "already had an index" in again.stdout


def test_replace_is_decided_one_prefix_at_a_time(audited):
    _, report = audited
    done = run_printed(f"ckpt-rescue promote '{report}' --replace")
    assert done.returncode == 2 and "--replace takes the PREFIXes" in done.stderr
