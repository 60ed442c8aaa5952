"""transforms.listing alone: each DoFn and ListFiles in a TestPipeline on real directories and real
emulators; a root whose one child holds everything is listed by many elements, with the same files
as one recursive listing of the root (what the audit listed before the split)."""

import os
import posixpath
import uuid
from collections import defaultdict

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from storage_servers import upload_tree

from recovery import storage
from recovery.discovery import checkpoint_directory
from recovery.listing import everything_under
from recovery.records import ERROR, LISTING, UNRECOVERABLE
from transforms.listing import (
    DEEPER,
    GROUPS,
    RECORDS,
    SPLIT_INTO,
    WHOLE,
    DirectoryFiles,
    Expand,
    ListDirectory,
    ListFiles,
    ListGroup,
    SiblingGroup,
)
from transforms.metrics import NAMESPACE

RUNS, SAVES = 100, 2      # more runs than SPLIT_INTO: they are listed in groups


def write(root, relative: str, data: bytes = b"x") -> None:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def huge_child(tmp_path_factory) -> str:
    """A root holding one directory `all`, which holds RUNS runs of SAVES checkpoint prefixes each
    (one of them mid-merge in a `_temp` directory), plus a file of the root's own."""
    root = str(tmp_path_factory.mktemp("huge-child"))
    write(root, "checkpoint", b'model_checkpoint_path: "all/run-000/ckpt-1"\n')
    for run in range(RUNS):
        for step in range(1, SAVES + 1):
            write(root, f"all/run-{run:03d}/ckpt-{step}.index", b"i" * step)
            write(root, f"all/run-{run:03d}/ckpt-{step}.data-00000-of-00001", b"d" * run)
    write(root, "all/run-007/ckpt-4_temp/part-00000-of-00002.data-00000-of-00001")
    return root


def one_recursive_listing(root: str) -> dict:
    """directory -> sorted (path, size) as a single recursive listing of the root gives them."""
    fs, path = storage.url_to_fs(root)
    found = defaultdict(list)
    for name, size, _, _ in everything_under(fs, path):
        found[checkpoint_directory(name)].append((name, size))
    return {directory: sorted(files) for directory, files in found.items()}


def as_listing(elements) -> dict:
    return {e.directory: sorted((f.path, f.size) for f in e.files) for e in elements}


def run_listing(root: str, report_dir: str, expected: dict, failed: dict | None = None) -> dict:
    """ListFiles on one root in a local Beam run, checked against `expected` (directory -> files) and
    `failed` (directory -> status of its failure record); returns the listing counters."""
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    directories, failures = pipeline | beam.Create([root]) | ListFiles(report_dir)
    grouped = tuple(directories.values()) | beam.Flatten()
    assert_that(grouped | beam.Map(lambda e: (isinstance(e, DirectoryFiles) and e.root, e.directory,
                                             sorted((f.path, f.size) for f in e.files))),
                equal_to([(root, directory, files) for directory, files in expected.items()]), label="files")
    assert_that(failures | beam.Map(lambda r: (r.prefix, r.status, r.kind, "could not check" in r.reason)),
                equal_to([(prefix, status, LISTING, status == ERROR) for prefix, status in (failed or {}).items()]),
                label="failures")
    result = pipeline.run()
    result.wait_until_finish()
    counters = defaultdict(int)           # summed over the steps that count
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[counter.key.metric.name] += counter.committed
    return counters


def test_a_root_whose_one_child_holds_everything_is_split_and_lists_the_same_files(huge_child, tmp_path):
    expected = one_recursive_listing(huge_child)
    temp_file = os.path.join(huge_child, "all/run-007/ckpt-4_temp/part-00000-of-00002.data-00000-of-00001")
    assert temp_file in {path for path, _ in expected[os.path.join(huge_child, "all/run-007")]}  # joins its parent
    counters = run_listing(huge_child, str(tmp_path / "report"), expected)
    assert counters["directories_expanded"] == 2          # the root, then `all`
    assert counters["listing_groups"] == SPLIT_INTO       # `all`'s runs, listed by that many elements
    assert counters["files_listed"] == sum(len(files) for files in expected.values())


def _bucket(scheme: str) -> str:
    url = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(url)
    fs.mkdir(path)
    return url


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_on_an_object_store_the_huge_child_is_split_by_name_prefix(scheme, huge_child, request, tmp_path):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    bucket = _bucket(scheme)
    root = f"{bucket}/tree"
    upload_tree(huge_child, root)
    expected = one_recursive_listing(root)
    proxy.log.clear()
    counters = run_listing(root, f"{bucket}/report", expected)
    assert counters["directories_expanded"] == 2 and counters["listing_groups"] == SPLIT_INTO
    listings = [path for method, path, _ in proxy.log if method == "GET"]
    assert len(listings) < RUNS, listings    # runs in groups, one prefix listing each, not one per run


def test_a_listing_that_keeps_failing_gives_error_records_for_its_directories(huge_child, faulty_s3, monkeypatch,
                                                                              tmp_path):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")      # botocore's own retries, fewer to keep the test short
    bucket = _bucket("s3")
    root = f"{bucket}/tree"
    upload_tree(huge_child, root)
    expected = one_recursive_listing(root)
    faulty_s3.fail(500, times=None, method="GET", path=r"prefix=tree/all/run-01")
    run_listing(root, f"{bucket}/report", {d: files for d, files in expected.items() if "/all/run-01" not in d},
                failed={f"{root}/all/run-{run:03d}": ERROR for run in range(10, 20)})
    assert faulty_s3.hits() >= 10


def test_list_directory_expands_few_children_and_groups_many(huge_child, tmp_path):
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        listed = (pipeline
                  | beam.Create([Expand(huge_child, "", SPLIT_INTO), Expand(huge_child, f"{huge_child}/all", 8)])
                  | beam.ParDo(ListDirectory(str(tmp_path / "report"), last=False)).with_outputs(
                      DEEPER, GROUPS, RECORDS, main="files"))
        assert_that(listed.files | beam.Map(lambda e: (e.directory, [f.path for f in e.files])),
                    equal_to([(huge_child, [f"{huge_child}/checkpoint"])]), label="own files")
        assert_that(listed[DEEPER], equal_to([Expand(huge_child, f"{huge_child}/all", SPLIT_INTO)]), label="deeper")
        assert_that(listed[GROUPS] | beam.Map(lambda g: (g.prefix, len(g.members))),
                    equal_to([(f"run-0{tens}", 10) for tens in range(10)]), label="ten prefixes of ten runs")
        assert_that(listed[RECORDS], equal_to([]), label="no failures")


def test_list_directory_turns_an_unlistable_root_into_a_record(tmp_path):
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        listed = (pipeline
                  | beam.Create([Expand("nosuchscheme://bucket/runs", "", SPLIT_INTO)])
                  | beam.ParDo(ListDirectory(str(tmp_path / "report"), last=False)).with_outputs(
                      DEEPER, GROUPS, RECORDS, main="files"))
        assert_that(listed[RECORDS] | beam.Map(lambda r: (r.prefix, r.status, "listing failed" in r.reason)),
                    equal_to([("nosuchscheme://bucket/runs", UNRECOVERABLE, True)]))
        assert_that(listed.files, equal_to([]), label="no files")


def test_list_group_lists_its_members_only_and_a_failure_is_a_record_per_member(huge_child, tmp_path):
    """Members' directories come out whole, in path order; a merge temp directory among the members
    belongs to the parent, whose own listing joins it."""
    members = tuple(f"run-00{ones}" for ones in range(10))
    temp_of_run_7 = f"{huge_child}/all/run-007/ckpt-4_temp"
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        listed = (pipeline
                  | beam.Create([SiblingGroup(huge_child, f"{huge_child}/all", "run-00", members[:5]),
                                 SiblingGroup(huge_child, f"{huge_child}/all/run-007", "ckpt-4_temp/",
                                              ("ckpt-4_temp",)),
                                 SiblingGroup("nosuchscheme://b", "b/all", "run-00", members[:2])])
                  | beam.ParDo(ListGroup(str(tmp_path / "report"))).with_outputs(RECORDS, WHOLE, main="files"))
        assert_that(listed[WHOLE] | beam.Map(lambda e: (e.directory, len(e.files), list(e.files) == sorted(e.files))),
                    equal_to([(f"{huge_child}/all/{m}", 2 * SAVES, True) for m in members[:5]]))
        assert_that(listed.files | beam.Map(lambda e: (e.directory, sorted({posixpath.dirname(f.path)
                                                                             for f in e.files}))),
                    equal_to([(f"{huge_child}/all/run-007", [temp_of_run_7])]), label="joined with its parent")
        assert_that(listed[RECORDS] | beam.Map(lambda r: r.prefix), equal_to([f"b/all/{m}" for m in members[:2]]),
                    label="one record per member")


@pytest.mark.slow
def test_the_audit_says_a_listing_that_keeps_failing_is_an_error_and_exits_3(faulty_s3, monkeypatch, tmp_path):
    """Runs that hold no checkpoint (event files only): nothing needs a person, so exit 3 is the listing's."""
    from pipeline.cli import main as cli_main
    from recovery.report.readback import read_records, read_summary

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    for run in range(RUNS):
        write(str(tmp_path / "tree"), f"all/run-{run:03d}/events.out.tfevents.1")
    root = f"{_bucket('s3')}/tree"
    upload_tree(str(tmp_path / "tree"), root)
    faulty_s3.fail(500, times=None, method="GET", path=r"prefix=tree/all/run-01")
    report = str(tmp_path / "report")
    code = cli_main(["audit", root, "--min-age", "0", "--report-dir", report, "--direct_running_mode=in_memory"])
    listing = {r.prefix: r.status for r in read_records(report) if r.kind == LISTING}
    assert listing == {f"{root}/all/run-{run:03d}": ERROR for run in range(10, 20)}
    assert code == 3 and read_summary(report)["exit_code"] == 3
