"""recovery.listing's split of sibling directories into prefix groups, and group listings on disk."""

import os

from hypothesis import given
from hypothesis import strategies as st

from recovery import storage
from recovery.listing import everything_under_group, sibling_groups

names = st.lists(st.text(alphabet="ab-1_", max_size=5), max_size=60)    # "": objects named `parent//...`


@given(names, st.integers(min_value=1, max_value=80))
def test_each_group_prefix_selects_exactly_its_members_and_groups_partition_the_names(siblings, limit):
    groups = sibling_groups(siblings, limit)
    assert sorted(m for _, members in groups for m in members) == sorted(set(siblings))
    for prefix, members in groups:
        # an object under sibling S is named S/...: the prefix must select S's objects iff S is a member
        assert {s for s in set(siblings) if (s + "/").startswith(prefix)} == set(members)
    if len(set(siblings)) <= limit:
        assert all(len(members) == 1 for _, members in groups)   # few enough: each directory alone


def test_a_thousand_runs_make_about_the_limit_of_groups():
    groups = sibling_groups([f"run-{i:04d}" for i in range(1000)], 64)
    assert len(groups) == 64 and max(len(m) for _, m in groups) == 100


def test_a_group_on_disk_lists_below_its_members_only(tmp_path):
    for relative in ("p/run-1/a.index", "p/run-10/b.index", "p/run-2/c.index", "p/run-1x.index"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"1")
    fs, path = storage.url_to_fs(str(tmp_path / "p"))
    found = everything_under_group(fs, path, "run-1", ("run-1", "run-10"))
    assert sorted(os.path.relpath(f[0], path) for f in found) == ["run-1/a.index", "run-10/b.index"]
