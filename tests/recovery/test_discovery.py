"""Discovery: a flat listing grouped into checkpoint prefixes, leftovers and state files; root listing."""

import os
import posixpath

import fsspec
import pytest

from recovery import storage
from recovery.discovery import (
    checkpoint_directory,
    group_directory,
    parse_state_file,
    resolve_state_name,
)
from recovery.listed import Listed
from recovery.listing import BadRoot, check_root, distinct_roots, everything_under, top_level
from tfbundle import FormatError


def listing_of(root: str) -> list:
    """Every file under root (Listed), as a recursive fsspec listing gives them."""
    fs, path = storage.url_to_fs(root)
    return everything_under(fs, path)


def test_temp_directories_belong_to_the_directory_of_their_checkpoint():
    assert checkpoint_directory("/r/run/ckpt-3.index") == "/r/run"
    assert checkpoint_directory("/r/run/ckpt-3_temp/part-00000-of-00001.index") == "/r/run"
    assert checkpoint_directory("/r/run/model.ckpt-9_temp_" + "a" * 32 + "/part-00000-of-00002.index") == "/r/run"
    assert checkpoint_directory("/r/run/not_a_temp_dir/x.index") == "/r/run/not_a_temp_dir"


def test_grouping_many_files_by_directory_gives_each_its_checkpoint_directory():
    """The grouping a listing uses (one question per parent) puts every file where checkpoint_directory
    says, in the order given: merge inputs under their parent, a file in a temp directory that is not a
    merge input, a user's directory named like one, files at the top of a bucket."""
    from recovery.discovery import by_checkpoint_directory

    paths = ["/r/run/ckpt-3.index", "/r/run/ckpt-3_temp/part-00000-of-00001.index",
             "/r/run/ckpt-3_temp/notes.txt", "/r/run/bert_temp/ckpt-1.index", "/r/run/ckpt-3.data-00000-of-00001",
             "/r/run/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001", "top.index", "/ckpt-1.index",
             "gs-bucket/x_temp_" + "b" * 32 + "/part-00001-of-00002.index",
             "/r/run/bert_temp/part-00000-of-00001.index"]
    grouped = by_checkpoint_directory([(p, i) for i, p in enumerate(paths)], lambda item: item[0])
    expected: dict = {}
    for i, path in enumerate(paths):
        expected.setdefault(checkpoint_directory(path), []).append((path, i))
    assert grouped == expected and list(grouped) == list(expected)
    assert grouped["/r/run"][1][0].endswith("part-00000-of-00001.index") and "/r/run/ckpt-3_temp" in grouped


def test_grouping_separates_checkpoints_leftovers_and_state_files():
    d = "/b/run"
    files = [
        (f"{d}/ckpt-1.index", 100), (f"{d}/ckpt-1.data-00000-of-00001", 4000),
        (f"{d}/ckpt-2.data-00000-of-00002", 10), (f"{d}/ckpt-2.data-00001-of-00002", 20),
        (f"{d}/ckpt-3_temp/part-00000-of-00001.index", 90),
        (f"{d}/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001", 4000),
        (f"{d}/ckpt-4.data-00000-of-00001.tempstate123456789", 55),
        (f"{d}/ckpt-5_temp/part-00000-of-00001.index.tempstate42", 3),
        (f"{d}/s3ckpt.part-00000-of-00001.index", 80),
        (f"{d}/s3ckpt.part-00000-of-00001.data-00000-of-00001", 800),
        (f"{d}/checkpoint", 120), (f"{d}/checkpoint.tmp0123abcd", 120),
        (f"{d}/events.out.tfevents.1", 5), (f"{d}/model.ckpt-1.meta", 5),
    ]
    contents = group_directory(d, [Listed(*f) for f in files])

    assert sorted(contents.checkpoints) == [f"{d}/ckpt-1", f"{d}/ckpt-2"]
    assert contents.checkpoints[f"{d}/ckpt-1"].index_size == 100
    assert contents.checkpoints[f"{d}/ckpt-2"].index_size is None
    assert contents.checkpoints[f"{d}/ckpt-2"].data_bytes == 30
    assert contents.state_files == [(f"{d}/checkpoint", 120)]
    assert contents.others == [(f"{d}/events.out.tfevents.1", 5), (f"{d}/model.ckpt-1.meta", 5)]
    in_d = {p for p, _ in files if p.rsplit("/", 1)[0] == d}    # like `ls`: subdirectories as entries
    assert {e["name"] for e in contents.listing()} == in_d | {f"{d}/ckpt-3_temp", f"{d}/ckpt-5_temp"}
    leftovers = {(x.name, x.what, x.belongs_to, x.complete) for x in contents.leftovers}
    assert leftovers == {
        (f"{d}/ckpt-3_temp/part-00000-of-00001", "merge input", f"{d}/ckpt-3", True),
        (f"{d}/s3ckpt.part-00000-of-00001", "merge input", f"{d}/s3ckpt", True),
        (f"{d}/ckpt-4.data-00000-of-00001.tempstate123456789", "unrenamed write", f"{d}/ckpt-4", False),
        (f"{d}/ckpt-5_temp/part-00000-of-00001.index.tempstate42", "unrenamed write", f"{d}/ckpt-5", False),
        (f"{d}/checkpoint.tmp0123abcd", "state file temp", "", False),
    }


def test_a_merge_input_missing_a_data_file_is_not_complete():
    d = "/b/run"
    contents = group_directory(d, [Listed(f"{d}/p_temp/part-00001-of-00002.index", 9),
                                   Listed(f"{d}/p_temp/part-00001-of-00002.data-00000-of-00002", 9)])
    (leftover,) = contents.leftovers
    assert leftover.belongs_to == f"{d}/p" and not leftover.complete


def test_listing_is_shaped_like_ls_with_temp_directories_as_entries():
    d = "/b/run"
    contents = group_directory(d, [Listed(f"{d}/ckpt-3.data-00000-of-00001", 7),
                                   Listed(f"{d}/ckpt-3_temp/part-00000-of-00001.index", 9)])
    assert contents.listing() == [
        {"name": f"{d}/ckpt-3.data-00000-of-00001", "size": 7, "type": "file"},
        {"name": f"{d}/ckpt-3_temp", "size": 0, "type": "directory"},
    ]


def test_state_file_text_proto_with_escapes():
    text = ('model_checkpoint_path: "ckpt-3"\n'
            'all_model_checkpoint_paths: "ckpt-2"\n'
            'all_model_checkpoint_paths: "dir with \\"quotes\\"/ckpt-\\303\\274"\n'
            'all_model_checkpoint_timestamps: 1700000000.5\n'
            'last_preserved_timestamp: 1699999999.0\n')
    state = parse_state_file(text)
    assert state.latest == "ckpt-3"
    assert state.all_paths == ["ckpt-2", 'dir with "quotes"/ckpt-\u00fc']
    assert state.names() == ["ckpt-3", "ckpt-2", 'dir with "quotes"/ckpt-\u00fc']


def test_state_file_with_fields_this_schema_does_not_know_still_parses():
    """A newer TensorFlow may add fields (a timestamp, a message): the paths are still read."""
    text = ('model_checkpoint_path: "ckpt-9"\n'
            'all_model_checkpoint_paths: "ckpt-8"\n'
            'all_model_checkpoint_paths: "ckpt-9"\n'
            'all_model_checkpoint_timestamps: 1700000000.5\n'
            'future_save_time_seconds: 1700000001\n'
            'future_options { keep: true name: "x" }\n'
            'last_preserved_timestamp: 1699999999.0\n')
    state = parse_state_file(text)
    assert state.latest == "ckpt-9" and state.all_paths == ["ckpt-8", "ckpt-9"]


@pytest.mark.parametrize("text", ['model_checkpoint_path: "ckpt-3', "model_checkpoint_path ckpt-3\n",
                                  "\x00\x01garbage{"])
def test_state_file_that_is_not_a_text_proto_is_a_format_error(text):
    with pytest.raises(FormatError, match="not a CheckpointState text proto"):
        parse_state_file(text)


def test_empty_state_file_names_nothing():
    state = parse_state_file("")
    assert state.latest is None and state.names() == []


def test_state_names_resolve_relative_absolute_and_urls():
    gcs = fsspec.get_filesystem_class("gs").protocol      # a class attribute: no client, no credentials
    assert resolve_state_name("/r/run", "ckpt-3", gcs) == "/r/run/ckpt-3"
    assert resolve_state_name("/r/run", "../other/ckpt-3", gcs) == "/r/other/ckpt-3"
    assert resolve_state_name("/r/run", "/abs/ckpt-3", gcs) == "/abs/ckpt-3"
    assert resolve_state_name("b/run", "gs://b/run/ckpt-3", gcs) == "b/run/ckpt-3"
    assert resolve_state_name("b/run", "gcs://b/run/dir/", gcs) == "b/run/dir/"
    # a URL of another store names no file of this one: kept as written, so it is reported as missing
    assert resolve_state_name("b/run", "s3://b/run/ckpt-3", gcs) == "s3://b/run/ckpt-3"
    assert resolve_state_name("/r/run", "file:///abs/ckpt-3", fsspec.get_filesystem_class("file").protocol) == (
        "/abs/ckpt-3")


@pytest.mark.tf
def test_grouping_a_real_checkpoint_manager_directory(pristine_family):
    family = pristine_family("keras3_adam")
    directory = os.path.dirname(family.prefix)
    contents = group_directory(directory, listing_of(directory))
    assert sorted(contents.checkpoints) == sorted([family.prefix, *family.siblings])
    for found in contents.checkpoints.values():
        assert found.index_size == os.path.getsize(found.index_path)
        assert [p for p, _ in found.data] == [found.prefix + ".data-00000-of-00001"]
    assert [p for p, _ in contents.state_files] == [os.path.join(directory, "checkpoint")]
    assert contents.leftovers == []
    state = parse_state_file(open(os.path.join(directory, "checkpoint")).read())
    assert resolve_state_name(directory, state.latest, "file") == family.prefix


def test_root_listing_fans_out_and_leaves_out_the_report_directory(tmp_path):
    for relative in ("a/x.index", "a/deep/y.data-00000-of-00001", "b/z.index", "top.index", "reports/rebuilt/q.index"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"12345")
    fs, root = storage.url_to_fs(str(tmp_path))
    files, children, _ = top_level(fs, root, exclude=f"{root}/reports")
    assert [(f.path, f.size) for f in files] == [(f"{root}/top.index", 5)]
    assert sorted(children) == [f"{root}/a", f"{root}/b"]
    below = sorted(f.path for child in children for f in everything_under(fs, child))
    assert below == [f"{root}/a/deep/y.data-00000-of-00001", f"{root}/a/x.index", f"{root}/b/z.index"]


def test_bad_roots_are_usage_errors_and_nested_roots_are_dropped(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "file").write_text("x")
    check_root(str(tmp_path))
    with pytest.raises(BadRoot, match="does not exist"):
        check_root(str(tmp_path / "missing"))
    with pytest.raises(BadRoot, match="is a file"):
        check_root(str(tmp_path / "file"))
    roots = [str(tmp_path / "sub"), str(tmp_path), str(tmp_path) + "/", "memory://elsewhere"]
    assert distinct_roots(roots) == [str(tmp_path), "memory://elsewhere"]


def test_only_tensorflow_s_own_merge_inputs_belong_to_the_directory_above_a_temp_directory():
    """`P_temp/part-NNNNN-of-NNNNN.*` (and `P_temp_<hex>/`) is a merge in progress of P, judged with P;
    anything else in a directory whose name ends in `_temp` (a user's `bert_temp/`) is that directory's own."""
    assert checkpoint_directory("/r/ckpt-3_temp/part-00000-of-00002.index") == "/r"
    assert checkpoint_directory("/r/ckpt-3_temp/part-00001-of-00002.data-00000-of-00001") == "/r"
    assert checkpoint_directory(f"/r/ckpt-3_temp_{'ab' * 16}/part-00000-of-00001.index") == "/r"
    assert checkpoint_directory("/r/ckpt-3_temp/part-00000-of-00001.index.tempstate123") == "/r"
    for own in ("/r/bert_temp/ckpt-1.index", "/r/bert_temp/ckpt-1.data-00000-of-00001", "/r/bert_temp/checkpoint",
                "/r/bert_temp/part-00000-of-00001.index.bak", "/r/x_temp/part-0-of-1.index"):
        assert checkpoint_directory(own) == posixpath.dirname(own), own
    contents = group_directory("/r/bert_temp", [Listed("/r/bert_temp/ckpt-1.index", 9),
                                                Listed("/r/bert_temp/ckpt-1.data-00000-of-00001", 9)])
    assert list(contents.checkpoints) == ["/r/bert_temp/ckpt-1"] and not contents.leftovers
