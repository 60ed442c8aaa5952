"""recovery.report.promote: promote.sh, rendered from its template, run for real with sh on local files:
staged indexes are put in place create-only, names with spaces and quotes stay one argument, an index
already there is left alone, an unreadable one is left for a person, a name with a line break is
written escaped on one line and promoted to exactly that name."""

import subprocess

from report_helpers import META

from recovery.records import CORRUPT, REBUILT, Record
from recovery.report.files import write_reports
from recovery.report.promote import promote_line


def staged_audit(tmp_path):
    """A tree of data with staged indexes for it, and the records an audit would have written."""
    tree, staged = tmp_path / "tree", tmp_path / "rep" / "rebuilt"
    (tree / "run it's").mkdir(parents=True)
    staged.mkdir(parents=True)
    records = []
    for name, status in (("ckpt-1", REBUILT), ("ckpt 2", REBUILT), ("ckpt-3", REBUILT), ("ckpt-4", CORRUPT)):
        prefix = tree / "run it's" / name
        (staged / f"{name}.index").write_bytes(f"index of {name}".encode())
        records.append(Record(str(prefix), status, "staged", str(tree), directory=str(prefix.parent), staged=True,
                              index_path=str(staged / f"{name}.index")))
    (tree / "run it's" / "ckpt-3.index").write_bytes(b"someone else's")      # appeared after the audit
    (tree / "run it's" / "ckpt-4.index").write_bytes(b"unreadable")          # the corrupt one's own index
    return tree / "run it's", records


def test_promote_sh_promotes_create_only_and_says_what_it_did(tmp_path):
    run, records = staged_audit(tmp_path)
    odd = Record(str(run / "ckpt\n5"), REBUILT, "staged", str(run.parent), staged=True,
                 index_path=str(tmp_path / "rep" / "rebuilt" / "ckpt\n5.index"))
    (tmp_path / "rep" / "rebuilt" / "ckpt\n5.index").write_bytes(b"index of ckpt\n5")
    write_reports(str(tmp_path / "rep"), records + [odd], {**META, "run_id": "promote-1"}, 1_700_000_001.0)
    script = tmp_path / "rep" / "promote.sh"
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n# Written by ckpt-rescue (run promote-1, 2023-11-14T22:13:21+00:00); report: ")
    assert "promote_escaped " in text and "ckpt\n5" not in text        # one line per index, whatever the name
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0

    dry = subprocess.run([str(script), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0 and dry.stdout.count("would promote: ") == 3
    assert not (run / "ckpt-1.index").exists()

    done = subprocess.run([str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (run / "ckpt-1.index").read_bytes() == b"index of ckpt-1"
    assert (run / "ckpt 2.index").read_bytes() == b"index of ckpt 2"
    assert (run / "ckpt\n5.index").read_bytes() == b"index of ckpt\n5"      # the line break kept, nothing split
    assert (run / "ckpt-3.index").read_bytes() == b"someone else's"
    assert (run / "ckpt-4.index").read_bytes() == b"unreadable"
    assert f"left alone (an index is already there): {run}/ckpt-3.index" in done.stdout
    assert f"not promoted (an unreadable index is there; see its record's command): {run}/ckpt-4.index" in done.stdout
    assert done.stdout.splitlines()[-1] == ("promote.sh: 3 promoted, 1 already had an index (left alone), "
                                            "1 need a person, 0 failed")


def test_a_promote_line_is_one_line_and_quotes_each_name_once():
    record = Record("/d/it's here/ckpt-1", REBUILT, "", "/d", staged=True, index_path="/rep/a b.index")
    assert promote_line(record) == "promote '/rep/a b.index' '/d/it'\"'\"'s here/ckpt-1.index'\n"
    corrupt = Record("/d/ckpt-2", CORRUPT, "", "/d", staged=True, index_path="/rep/ckpt-2.index")
    assert promote_line(corrupt) == "leave /rep/ckpt-2.index /d/ckpt-2.index\n"
    for broken, line in ((Record("/d/a\rb", REBUILT, "", "/d", staged=True, index_path="/rep/x.index"),
                          "promote_escaped /rep/x.index '/d/a\\0015b.index'\n"),
                         (Record("/d/o\\k", CORRUPT, "", "/d", staged=True, index_path="/rep/x\n.index"),
                          "leave_escaped '/rep/x\\0012.index' '/d/o\\\\k.index'\n")):
        assert promote_line(broken) == line
