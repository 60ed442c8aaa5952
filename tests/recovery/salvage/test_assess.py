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
