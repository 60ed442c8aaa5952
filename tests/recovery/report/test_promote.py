"""recovery.report.promote: promote.sh, rendered from its template, run for real with sh on local files
(its own shell, and handed to ckpt-rescue promote: the same lines): staged indexes are put in place
create-only, names with spaces and quotes stay one argument, an index already there is left alone, an
unreadable one is left for a person, a name with a line break is skipped rather than split."""

import subprocess

import pytest
from command_helpers import NO_TOOL, run_script
from report_helpers import META

from recovery.records import CORRUPT, REBUILT, Record
from recovery.report.files import write_reports
from recovery.report.promote import promote_line

DATA = 12


def index_bytes(name: str) -> bytes:
    """An index TensorFlow could have written for DATA bytes of data (one float32[3] tensor), told apart by name."""
    from tfbundle import BundleEntry, BundleHeader, write_index

    return write_index(BundleHeader(num_shards=1), {name.encode(): BundleEntry(dtype=1, shape=[3], shard_id=0,
                                                                               offset=0, size=DATA, crc32c=7)})


def staged_audit(tmp_path):
    """A tree of data with staged indexes for it, and the records an audit would have written."""
    tree, staged = tmp_path / "tree", tmp_path / "rep" / "rebuilt"
    (tree / "run it's").mkdir(parents=True)
    staged.mkdir(parents=True)
    records = []
    for name, status in (("ckpt-1", REBUILT), ("ckpt 2", REBUILT), ("ckpt-3", REBUILT), ("ckpt-4", CORRUPT)):
        prefix = tree / "run it's" / name
        (staged / f"{name}.index").write_bytes(index_bytes(name))
        (tree / "run it's" / f"{name}.data-00000-of-00001").write_bytes(b"x" * DATA)
        records.append(Record(str(prefix), status, "staged", str(tree), directory=str(prefix.parent), staged=True,
                              index_path=str(staged / f"{name}.index"), data_bytes=DATA))
    (tree / "run it's" / "ckpt-3.index").write_bytes(b"someone else's")      # appeared after the audit
    (tree / "run it's" / "ckpt-4.index").write_bytes(b"unreadable")          # the corrupt one's own index
    return tree / "run it's", records


@pytest.mark.parametrize("env", [{}, NO_TOOL], ids=["ckpt-rescue", "shell"])
def test_promote_sh_promotes_create_only_and_says_what_it_did(tmp_path, env):
    run, records = staged_audit(tmp_path)
    odd = Record(str(run / "ckpt\n5"), REBUILT, "staged", str(run.parent), staged=True,
                 index_path=str(tmp_path / "rep" / "rebuilt" / "ckpt\n5.index"), data_bytes=DATA)
    (tmp_path / "rep" / "rebuilt" / "ckpt\n5.index").write_bytes(index_bytes("ckpt\n5"))
    (run / "ckpt\n5.data-00000-of-00001").write_bytes(b"x" * DATA)
    odd_too = 0 if env else 1                   # a line break in a name: the shell skips it, ckpt-rescue does not
    write_reports(str(tmp_path / "rep"), records + [odd], {**META, "run_id": "promote-1"}, 1_700_000_001.0)
    script = tmp_path / "rep" / "promote.sh"
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n# Written by ckpt-rescue (run promote-1, 2023-11-14T22:13:21+00:00); report "
                           "written to: /rep\n")
    assert "# skipped a name with a line break in it" in text and "ckpt\n5" not in text
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0

    dry = run_script(str(script), "--dry-run", **env)
    assert dry.returncode == 1 and dry.stdout.count("would promote: ") == 2 + odd_too, dry.stdout + dry.stderr
    assert not (run / "ckpt-1.index").exists()

    done = run_script(str(script), **env)
    assert done.returncode == 1, done.stdout + done.stderr          # 1: the corrupt one needs a person
    assert (run / "ckpt-1.index").read_bytes() == index_bytes("ckpt-1")
    assert (run / "ckpt 2.index").read_bytes() == index_bytes("ckpt 2")
    assert (run / "ckpt-3.index").read_bytes() == b"someone else's"
    assert (run / "ckpt-4.index").read_bytes() == b"unreadable"
    assert f"left alone (an index is already there): {run}/ckpt-3.index" in done.stdout
    assert ("not promoted (its own index is there and is corrupt: replacing it is a person's call; see its record's "
            f"command): {run}/ckpt-4.index") in done.stdout
    assert done.stdout.splitlines()[-1] == (f"done: {2 + odd_too} promoted, 1 already had an index (left alone), "
                                            "1 need a person, 0 failed")
    assert (run / "ckpt\n5.index").exists() == bool(odd_too)


def test_both_ways_print_the_same_lines(tmp_path):
    _, records = staged_audit(tmp_path)
    write_reports(str(tmp_path / "rep"), records, {**META, "report_dir": str(tmp_path / "rep")}, 1_700_000_001.0)
    script = str(tmp_path / "rep" / "promote.sh")
    assert run_script(script, "--dry-run").stdout == run_script(script, "--dry-run", **NO_TOOL).stdout
    (tmp_path / "rep" / "rebuilt" / "ckpt-1.index").unlink()      # a staged file lost on the way
    tool, shell = run_script(script, "--dry-run"), run_script(script, "--dry-run", **NO_TOOL)
    assert tool.stdout == shell.stdout and tool.returncode == shell.returncode == 1
    assert "the staged index is not in this report directory" in tool.stdout


def test_a_promote_line_is_one_line_and_quotes_each_name_once():
    record = Record("/d/it's here/ckpt-1", REBUILT, "", "/d", staged=True, index_path="/rep/a b.index", data_bytes=9)
    assert promote_line(record) == "promote rebuilt '/rep/a b.index' '/d/it'\"'\"'s here/ckpt-1.index' 9\n"
    corrupt = Record("/d/ckpt-2", CORRUPT, "", "/d", staged=True, index_path="/rep/ckpt-2.index")
    assert promote_line(corrupt) == "promote corrupt /rep/ckpt-2.index /d/ckpt-2.index 0\n"
    for broken in (Record("/d/a\rb", REBUILT, "", "/d", staged=True, index_path="/rep/x.index"),
                   Record("/d/ok", REBUILT, "", "/d", staged=True, index_path="/rep/x\n.index")):
        assert promote_line(broken).startswith("# skipped") and promote_line(broken).count("\n") == 1
