"""What the audit will say of a prefix it could not rebuild: what a salvage keeps, and the command,
which must work exactly as printed. Assessing writes nothing."""

import os
import shlex

import pytest
from salvage_checkpoints import data_path, offset_of, orphan, read_manifest, truncate
from source_helpers import tree_digest

from pipeline.cli import main
from recovery import storage
from recovery.salvage import assess_salvage

pytestmark = pytest.mark.tf

TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"


def assess(prefix: str, **options):
    fs, path = storage.split_prefix(prefix)
    return assess_salvage(fs, path, **options)


def test_an_unrecoverable_orphan_is_assessed_and_the_command_works_as_printed(keras_run, run_copy, capsys):
    run = run_copy(keras_run)
    end = offset_of(run.latest, TRAINED) + 1000
    orphan(run.latest)
    truncate(data_path(run.latest), end)
    before = tree_digest(run.directory)
    found = assess(run.latest)
    assert tree_digest(run.directory) == before
    assert found.salvageable and (found.kept, found.total, found.unconfirmed) == (11, 17, 0)
    assert found.summary == "salvageable: 11 of 17 tensors, 64% of bytes"
    assert found.command == f"ckpt-rescue salvage {run.latest} --output {run.directory}/salvaged/ckpt-3"
    assert main(shlex.split(found.command)[1:]) == 0
    assert read_manifest(f"{run.directory}/salvaged/ckpt-3")["summary"]["in_words"] == "11 of 17 tensors, 64% of bytes"
    assert "salvaged" in capsys.readouterr().out


def test_the_command_names_the_registry_when_the_layout_comes_from_it(keras_run, run_copy, tmp_path):
    from pipeline.builders import resolve_registry

    run = run_copy(keras_run)
    registry = str(tmp_path / "my registry" / "architectures.yaml")
    assert main(["register", "net", "--from-checkpoint", run.prefixes[1], "--registry", registry]) == 0
    for prefix in run.prefixes[:2]:
        os.remove(prefix + ".index")
    end = offset_of(run.latest, TRAINED) + 1000
    orphan(run.latest)
    truncate(data_path(run.latest), end)
    found = assess(run.latest, registry_layouts=resolve_registry(registry), registry_path=registry)
    assert found.command == (f"ckpt-rescue salvage {run.latest} --output {run.directory}/salvaged/ckpt-3 "
                             f"--registry '{registry}'")
    assert main(shlex.split(found.command)[1:]) == 0


def test_a_prefix_nothing_can_be_salvaged_from_says_why(keras_run, run_copy):
    run = run_copy(keras_run)
    truncate(data_path(run.latest), 4)
    found = assess(run.latest)
    assert not found.salvageable and found.command == ""
    assert found.summary.startswith("not salvageable: nothing provable: none of its 17 tensors")


def test_with_the_audits_vault_the_command_names_it_and_proves_as_much(keras_run, run_copy, tmp_path, monkeypatch):
    from recovery.vault import ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint

    run = run_copy(keras_run)
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    keep_checkpoint(vault, run.latest, ORIGIN_SEEN_HEALTHY, 1764901800.0, "night-1")
    end = offset_of(run.latest, TRAINED) + 1000
    orphan(run.latest)
    truncate(data_path(run.latest), end)
    found = assess(run.latest, vault=vault, damaged_only=True)
    assert found.salvageable and found.damaged and found.bytes_read == os.path.getsize(data_path(run.latest))
    assert found.command == (f"ckpt-rescue salvage {run.latest} --output {run.directory}/salvaged/ckpt-3 "
                             f"--vault {tmp_path}/vault")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(shlex.split(found.command)[1:]) == 0
    manifest = read_manifest(f"{run.directory}/salvaged/ckpt-3")
    assert {item["state"] for item in manifest["kept"]} == {"proven"}


def test_asked_about_damage_only_an_undamaged_prefix_reads_nothing(keras_run, run_copy):
    """The rebuild refused for a reason other than damage (here a counter that contradicts the name): no
    shard is cut or missing, so the assessment stops before reading any data."""
    import shutil

    run = run_copy(keras_run)
    for suffix in (".index", ".data-00000-of-00001"):
        os.remove(run.latest + suffix)
        shutil.copyfile(run.prefixes[0] + suffix, run.latest + suffix)    # ckpt-1's data named ckpt-3
    orphan(run.latest)
    found = assess(run.latest, damaged_only=True)
    assert not found.salvageable and not found.damaged and found.bytes_read == 0
    assert found.record_field() == {}
