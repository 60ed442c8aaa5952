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


def test_an_index_vault_inside_a_root_is_never_listed(tmp_path):
    """Its .index files have no data beside them: the vault is left out by its marker, whether a directory
    listing or a recursive group listing comes to it, and a vault-looking folder without one is not."""
    from recovery.listing import everything_under, top_level
    from recovery.vault import ORIGIN_SEEN_HEALTHY, ShardRecord, Vault

    (tmp_path / "root" / "run").mkdir(parents=True)
    (tmp_path / "root" / "run" / "ckpt-1.data-00000-of-00001").write_bytes(b"x")
    from tfbundle import BundleHeader, write_index

    index = write_index(BundleHeader(num_shards=1), {})
    vault = Vault.open(str(tmp_path / "root" / "keep" / "vault"), create=True)
    vault.keep(str(tmp_path / "root" / "run" / "ckpt-1"), index, [ShardRecord("ckpt-1.data-00000-of-00001", 1)],
               ORIGIN_SEEN_HEALTHY, 1_796_500_000.0)
    (tmp_path / "root" / "keep" / "not-a-vault" / "v1").mkdir(parents=True)
    (tmp_path / "root" / "keep" / "not-a-vault" / "v1" / "x.index").write_bytes(index)
    fs, root = storage.url_to_fs(str(tmp_path / "root"))
    found = sorted(os.path.relpath(f.path, root) for f in everything_under(fs, root))
    assert found == ["keep/not-a-vault/v1/x.index", "run/ckpt-1.data-00000-of-00001"]
    assert top_level(fs, str(tmp_path / "root" / "keep" / "vault")) == ([], [])
    assert everything_under_group(fs, f"{root}/keep", "", ("not-a-vault", "vault")) == [
        f for f in everything_under(fs, f"{root}/keep")]
