"""recovery.report.parts: the lines each record contributes (failures only for what needs attention,
promote lines only for staged indexes, each on one line), written as sorted parts and merged back in
the order of the documented files."""

import csv
import json
import random

import fsspec
from report_helpers import HOSTILE, many_records, sample_records

from recovery.records import CORRUPT, ERROR, HEALTHY, REBUILT, Record
from recovery.report.parts import lines_for, merged_lines, parts_dir, write_part
from recovery.report.schema import FAILURES, PROMOTE, RECORDS, sort_key


def outputs(record) -> dict:
    return {output: line for output, (_, line) in lines_for(record)}


def test_each_record_adds_a_records_line_and_only_what_concerns_it():
    healthy, rebuilt, hostile, _, corrupt_staged, _, _ = sample_records()
    assert set(outputs(healthy)) == {RECORDS}
    assert json.loads(outputs(healthy)[RECORDS])["prefix"] == healthy.prefix
    assert set(outputs(rebuilt)) == {RECORDS, PROMOTE}
    assert set(outputs(hostile)) == {RECORDS, FAILURES}
    assert next(csv.reader([outputs(hostile)[FAILURES]])) == [HOSTILE, hostile.status, hostile.reason]
    assert set(outputs(corrupt_staged)) == {RECORDS, FAILURES, PROMOTE}       # staged, and needs a person
    assert outputs(corrupt_staged)[PROMOTE].startswith("promote corrupt ")
    unchecked = Record("s3://b/ckpt-1", ERROR, "could not check", "s3://b")
    assert set(outputs(unchecked)) == {RECORDS, FAILURES}                     # run again: listed
    in_place = Record("/r/ckpt-3", REBUILT, "rebuilt", "/r", index_path="/r/ckpt-3.index")
    assert set(outputs(in_place)) == {RECORDS}                                # nothing to promote


def test_line_breaks_in_a_record_never_split_its_lines():
    record = Record("/r/a\nb/ckpt-1", CORRUPT, "index unreadable:\r\nbad magic", "/r", staged=True,
                    index_path="/rep/a\nb/ckpt-1.index")
    for output, line in outputs(record).items():
        assert line.endswith("\n") and line.count("\n") == 1 and "\r" not in line, output
    assert next(csv.reader([outputs(record)[FAILURES]])) == ["/r/a b/ckpt-1", CORRUPT, "index unreadable: bad magic"]
    assert outputs(record)[PROMOTE].startswith("# skipped a name with a line break")    # ckpt-rescue promote takes it


def test_parts_written_in_any_order_merge_into_the_files_order():
    fs = fsspec.filesystem("memory")
    directory = parts_dir("/merge-test/rep", "r1")
    assert directory == "/merge-test/rep/parts/r1" and parts_dir("gs://b/rep/", "") == "gs://b/rep/parts/run"
    records = many_records(900)
    random.Random(5).shuffle(records)
    written = {RECORDS: [], FAILURES: [], PROMOTE: []}
    for start in range(0, len(records), 128):            # a worker's bundle: a part per output
        lines = {}
        for record in records[start:start + 128]:
            for output, keyed in lines_for(record):
                lines.setdefault(output, []).append(keyed)
        for output, keyed in lines.items():
            written[output].append(write_part(fs, directory, output, keyed))
    merged = [json.loads(line) for line in merged_lines(fs, written[RECORDS], RECORDS)]
    assert [(m["root"], m["prefix"], m["kind"]) for m in merged] == sorted(sort_key(r) for r in records)
    failures = list(merged_lines(fs, written[FAILURES], FAILURES))
    assert failures == sorted(failures) and len(failures) == sum(FAILURES in outputs(r) for r in records)
    assert len(list(merged_lines(fs, written[PROMOTE], PROMOTE))) == sum(PROMOTE in outputs(r) for r in records)
    fs.rm("/merge-test", recursive=True)


def test_a_part_is_sorted_by_its_keys_not_by_its_text():
    fs = fsspec.filesystem("memory")
    path = write_part(fs, "/part-test", RECORDS, [(("b", "/b/1", ""), "second\n"), (("a", "/z", ""), "first\n")])
    assert path.startswith("/part-test/records-") and path.endswith(".jsonl")
    assert fs.cat_file(path) == b'["a","/z",""]\tfirst\n["b","/b/1",""]\tsecond\n'
    assert list(merged_lines(fs, [path], RECORDS)) == ["first\n", "second\n"]
    fs.rm("/part-test", recursive=True)


def test_a_key_with_tabs_quotes_and_odd_names_comes_back_whole_and_in_order():
    """The key ends at the first tab of a part line: JSON escapes the tabs, quotes and lone surrogates of
    a name, so the key and the record's line after it come back exactly, and merge in tuple order."""
    fs = fsspec.filesystem("memory")
    odd = ["/r/a\tb/ckpt-1", '/r/"quoted"/ckpt-1', "/r/\udcf3/ckpt-1", "/r/a/ckpt-1", "/r/a b/ckpt-1"]
    records = [Record(prefix, HEALTHY, "fine\tstill", "/r") for prefix in odd]
    keyed = [next(k for out, k in lines_for(r) if out == RECORDS) for r in records]
    first, second = write_part(fs, "/odd", RECORDS, keyed[:3]), write_part(fs, "/odd", RECORDS, keyed[3:])
    merged = [json.loads(line) for line in merged_lines(fs, [first, second], RECORDS)]
    assert [m["prefix"] for m in merged] == sorted(odd)
    assert all(m["reason"] == "fine\tstill" for m in merged)
    fs.rm("/odd", recursive=True)
