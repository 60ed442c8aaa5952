"""Staged index paths: always under the report directory, one file per prefix whatever the object
name holds, and the promote command installs exactly the index made for that prefix."""

import os
import posixpath
import shlex
import shutil
import uuid
from urllib.parse import unquote

import pytest
from command_helpers import run_printed
from hypothesis import given, settings
from hypothesis import strategies as st
from source_helpers import orphan

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.report.readback import read_records
from recovery.writeout import staged_path

HOSTILE = ["runs/日本/ckpt-1", "runs/中国/ckpt-1", "../../etc/passwd", "a/../../b", "/abs/ckpt-1", "a//b",
           "a/b", "a/./b", "a/.../b", "a\\..\\b", "100%/x", "100%25/x", "a%2Fb", "a/%2E%2E/b", "trailing/",
           "-rf/ckpt", " sp ace /x", "./x", ".", "..", "", "x/..", "~user/x", "a?b*[c]/x", "new\nline/x"]


def _relative(report_dir: str, staged: str) -> str:
    base = posixpath.join(report_dir, "rebuilt") + "/"
    assert staged.startswith(base)
    return staged[len(base):]


def _assert_contained(report_dir: str, staged: str) -> None:
    relative = _relative(report_dir, staged)
    segments = relative.split("/")
    assert all(s not in ("", ".", "..") for s in segments), staged
    assert "\\" not in relative and "\n" not in relative
    assert posixpath.normpath(staged).startswith(posixpath.join(report_dir, "rebuilt") + "/")


def _decoded(report_dir: str, staged: str) -> str:
    """The prefix back from its staged path: the encoding is percent-encoding, so unquote reverses it."""
    scheme, _, rest = _relative(report_dir, staged).partition("/")
    rest = unquote(rest[: -len(".index")])
    return {"local": "/" + rest, "relative": rest}.get(scheme, f"{unquote(scheme)}://{rest}")


@pytest.mark.parametrize("scheme", ["gs://bucket/", "s3://bucket/", "/", ""])
def test_hostile_names_stay_under_the_report_dir_and_decode_to_their_prefix(scheme):
    report = "/reports/today"
    staged = {}
    for name in HOSTILE:
        prefix = scheme + name
        path = staged_path(report, prefix)
        _assert_contained(report, path)
        assert _decoded(report, path) == prefix
        staged[path] = prefix
    assert len(staged) == len(HOSTILE)          # no two prefixes share a staged file


def test_the_reported_collision_is_gone():
    assert staged_path("r", "gs://b/runs/日本/ckpt-1") != staged_path("r", "gs://b/runs/中国/ckpt-1")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab./\\%日 -~2EF"), max_size=12), min_size=2, max_size=2,
                unique=True), st.sampled_from(["gs://b/", "s3://b/", "/", ""]))
def test_any_two_names_map_to_two_contained_paths(names, scheme):
    first, second = (staged_path("/rep", scheme + n) for n in names)
    assert first != second
    for name, path in zip(names, (first, second)):
        _assert_contained("/rep", path)
        assert _decoded("/rep", path) == scheme + name


@pytest.fixture(scope="module")
def hostile_tree(pristine_family, tmp_path_factory):
    """The same orphan (keras3_adam's latest, index removed) under directory names that collided or
    could escape before: (root, {prefix: original index bytes})."""
    family = pristine_family("keras3_adam")
    root = str(tmp_path_factory.mktemp("hostile") / "tree")
    originals = {}
    for name in ("日本", "中国", "100%", "a\\b", "-n", "x%2F..", "..."):
        directory = os.path.join(root, "runs", name)
        shutil.copytree(os.path.dirname(family.prefix), directory)
        prefix = os.path.join(directory, os.path.basename(family.prefix))
        originals[prefix] = orphan(prefix)
    return root, originals


@pytest.mark.tf
@pytest.mark.slow
def test_local_audit_stages_each_hostile_prefix_apart_and_promotes_exactly_it(hostile_tree, tmp_path):
    root, originals = hostile_tree
    work = str(tmp_path / "tree")
    shutil.copytree(root, work)
    report = str(tmp_path / "report")
    code = cli_main(["audit", work, "--min-age", "0", "--report-dir", report, "--direct_running_mode=in_memory"])
    records = {r.prefix: r for r in read_records(report)}
    # Exit 1 only because `checkpoint` state files name the orphans: latest_checkpoint() waits for promotion.
    assert code == (1 if any(r.kind == "state-file" and r.status == "incomplete" for r in records.values()) else 0)
    assert all(r.status in ("healthy", "rebuilt") for r in records.values() if r.kind == "checkpoint")
    staged = set()
    for prefix, original in originals.items():
        prefix = work + prefix[len(root):]
        record = records[prefix]
        assert record.status == "rebuilt" and record.staged, record.reason
        _assert_contained(report, record.index_path)
        assert _decoded(report, record.index_path) == prefix
        staged.add(record.index_path)
        done = run_printed(record.command)                           # exactly what a person would paste
        assert done.returncode == 0, done.stdout + done.stderr
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original, prefix
        again = run_printed(record.command)                          # create-only: never replaces it
        assert again.returncode == 0 and "0 promoted, 1 already had an index" in again.stdout, again.stdout
        assert open(prefix + ".index", "rb").read() == original
    assert len(staged) == len(originals)


@pytest.mark.tf
@pytest.mark.slow
def test_gcs_objects_with_dot_dot_and_double_slash_stage_apart(hostile_tree, faulty_gcs, tmp_path):
    """Object names may hold `..` and `//` segments (fake-gcs-server keeps them, as GCS does); each
    prefix is staged under the local report dir, apart from the others."""
    root, originals = hostile_tree
    family_dir = os.path.dirname(next(iter(originals)))
    names = ["runs/../x", "runs//y", "runs/日本", "runs/中国", "runs/%2E%2E"]
    gcs_bucket = f"gs://ckpt-{uuid.uuid4().hex[:12]}"
    fs, bucket_path = storage.url_to_fs(gcs_bucket)
    fs.mkdir(bucket_path)
    expected = {}
    for name in names:
        for entry in os.listdir(family_dir):
            with open(os.path.join(family_dir, entry), "rb") as f:
                fs.pipe_file(f"{bucket_path}/{name}/{entry}", f.read())
        prefix = f"{gcs_bucket}/{name}/{os.path.basename(next(iter(originals)))}"
        expected[prefix] = originals[next(iter(originals))]
    report = str(tmp_path / "report")
    cli_main(["audit", gcs_bucket, "--min-age", "0", "--report-dir", report, "--direct_running_mode=in_memory"])
    records = {r.prefix: r for r in read_records(report)}
    staged = set()
    for prefix, original in expected.items():
        record = records[prefix]
        assert record.status == "rebuilt" and record.staged, (prefix, record.reason)
        _assert_contained(report, record.index_path)
        assert _decoded(report, record.index_path) == prefix
        with open(record.index_path, "rb") as f:
            assert f.read() == original
        assert shlex.split(record.command) == ["ckpt-rescue", "promote", report, prefix]
        staged.add(record.index_path)
    assert len(staged) == len(expected)
    for prefix, original in expected.items():      # each printed command puts exactly its own index in place
        done = run_printed(records[prefix].command)
        assert done.returncode == 0 and "1 promoted" in done.stdout, done.stdout + done.stderr
        assert fs.cat_file(prefix.split("://", 1)[1] + ".index") == original, prefix


LONG_NAMES = ["ü" * 100, "ü" * 99 + "ö", "a" * 240, "a" * 239 + "b", "日" * 80 + "/" + "日" * 80, "x/" * 900 + "ckpt-1",
              "x/" * 900 + "ckpt-2", "%" * 100]


@pytest.mark.parametrize("scheme", ["gs://bucket/", "s3://bucket/", "/", ""])
def test_long_names_are_staged_within_the_limits_and_apart(scheme):
    """A segment past the file name limit keeps its head and a hash; a path past the OS's path limit
    becomes one such name under `%-long/`. Neither decodes back (the record names the target), and
    none is another prefix's staged file, short or long."""
    report = "/reports/today"
    staged = {staged_path(report, scheme + name) for name in LONG_NAMES + HOSTILE}
    assert len(staged) == len(LONG_NAMES) + len(HOSTILE)
    for path in staged:
        _assert_contained(report, path)
        assert all(len(segment.encode()) <= 255 for segment in path.split("/")) and len(path.encode()) < 3000
    for name in HOSTILE:                                   # short names keep their readable, reversible form
        assert _decoded(report, staged_path(report, scheme + name)) == scheme + name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("aü/%日-~"), min_size=120, max_size=600), min_size=2, max_size=2,
                unique=True))
def test_any_two_long_names_stage_apart_and_fit(names):
    first, second = (staged_path("/rep", "gs://b/" + n) for n in names)
    assert first != second
    for path in (first, second):
        _assert_contained("/rep", path)
        assert all(len(segment.encode()) <= 255 for segment in path.split("/"))
