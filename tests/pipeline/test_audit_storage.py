"""The audit against real object-store servers: gcp-storage-emulator through gcsfs and moto's S3
server through s3fs, with the reports written into the bucket too."""

import csv
import io
import json

import pytest
from audit_trees import plant_tree
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server, snapshot, upload_tree  # noqa: F401

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.report.readback import read_records, read_summary

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def planted(pristine_family, tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-storage")
    return plant_tree(pristine_family, str(base / "tree"), str(base / "registry"))


def remote(planted, url: str, local_path: str) -> str:
    return url + local_path[len(planted.root):]


def read(url: str) -> bytes:
    fs, path = storage.url_to_fs(url)
    return storage.read_bytes(fs, path)


def audit_bucket(planted, bucket: str, *extra) -> tuple:
    root, reports = f"{bucket}/tree", f"{bucket}/reports"
    upload_tree(planted.root, root)
    before = snapshot(bucket)
    code = cli_main(["audit", root, "--report-dir", reports, "--registry", planted.registry, "--min-age", "0", *extra])
    return root, reports, before, code


def check_records(planted, root: str, reports: str, in_place: bool = False) -> dict:
    records = {r.prefix: r for r in read_records(reports)}
    expected = {remote(planted, root, p): v for p, v in planted.expected_for(in_place).items()}
    assert set(records) == set(expected)
    for prefix, (status, kind, words) in expected.items():
        record = records[prefix]
        assert (record.status, record.kind) == (status, kind), (prefix, record.reason)
        assert words in record.source + record.reason
        assert record.root == root
    return records


def test_gcs_emulator_end_to_end(planted, gcs_bucket):  # noqa: F811
    root, reports, before, code = audit_bucket(planted, gcs_bucket, "--direct_running_mode=multi_processing",
                                               "--direct_num_workers=2")
    assert code == 1
    records = check_records(planted, root, reports)
    for local, original in planted.originals.items():
        record = records[remote(planted, root, local)]
        assert record.staged and record.index_path.startswith(f"{reports}/rebuilt/gs/")
        assert read(record.index_path) == original
        assert record.command == f"ckpt-rescue promote {reports} {record.prefix}"
    after = snapshot(gcs_bucket)
    assert {k: v for k, v in after.items() if not k.startswith("reports/")} == before
    summary = read_summary(reports)
    assert summary["exit_code"] == 1 and summary["roots"] == [root] and summary["report_dir"] == reports
    rows = list(csv.reader(io.StringIO(read(f"{reports}/failures.csv").decode())))
    assert rows[0] == ["prefix", "status", "reason"] and len(rows) == 1 + sum(
        r.status in ("unrecoverable", "corrupt", "incomplete") for r in records.values())
    assert b"<table id=\"problems\"" in read(f"{reports}/report.html")


def test_s3_in_place_writes_create_only_and_a_rerun_finds_them_healthy(planted, s3_bucket):  # noqa: F811
    root, reports, before, code = audit_bucket(planted, s3_bucket, "--in-place")
    assert code == 1
    records = check_records(planted, root, reports, in_place=True)
    for local, original in planted.originals.items():
        record = records[remote(planted, root, local)]
        assert not record.staged and record.index_path == record.prefix + ".index"
        assert "written in place" in record.reason
        assert read(record.index_path) == original
    after = snapshot(s3_bucket)
    new = {k for k in after if k not in before and not k.startswith("reports/")}
    assert new == {remote(planted, "tree", p) + ".index" for p in planted.originals}
    assert {k: after[k] for k in before} == before

    assert cli_main(["audit", root, "--report-dir", reports, "--registry", planted.registry, "--in-place",
                     "--min-age", "0", "--direct_running_mode=in_memory"]) == 1
    again = {r.prefix: r for r in read_records(reports)}
    for local in planted.originals:
        assert again[remote(planted, root, local)].status == "healthy"
    assert json.loads(read(f"{reports}/summary.json"))["written_in_place"] == 0
