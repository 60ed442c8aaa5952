"""The audit's pipeline with Beam's construction-time type checks on. A run leaves them off
(pipeline/options.py: NO_TYPE_CHECK, a tenth of a second of every audit); the pipeline is the same for
every user, so each shape it takes is built here with them, and a transform whose hints contradict the
one it feeds fails this test rather than no one's run."""

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, TypeOptions

from pipeline import audit_pipeline
from pipeline.options import NO_TYPE_CHECK, audit_flags
from recovery.memory.nightly import Nightly
from recovery.prefix_steps import AuditSettings

SHAPES = {
    "plain": {},
    "checked": {"verify_data": True},
    "rehearsed, in place": {"rehearse": True, "in_place": True},
    "nightly with a vault": {"nightly": True, "verify_data": True},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_of_the_audit_builds_with_beams_type_checks(shape, tmp_path):
    fields = dict(SHAPES[shape])
    meta = {"run_id": "r1", "roots": [str(tmp_path)]}
    if fields.pop("nightly", False):
        vault = str(tmp_path / "vault")
        fields["nightly"] = Nightly("r1", 1.0e9, str(tmp_path / "reports"), vault=vault, compare=vault)
        fields["vault"] = vault
        meta["previous_directories"] = str(tmp_path / "previous-directories.jsonl")
    flags = [f for f in audit_flags([], None) if f != NO_TYPE_CHECK]
    options = PipelineOptions(flags)
    assert options.view_as(TypeOptions).pipeline_type_check
    pipeline = beam.Pipeline(options=options)
    records = audit_pipeline.build(pipeline, [str(tmp_path)], AuditSettings(str(tmp_path / "reports"), **fields),
                                   meta)
    assert "rebuild" in records and ("check" in records) == bool(fields.get("verify_data") or fields.get("rehearse"))


def test_a_run_leaves_them_off_and_a_users_flag_is_not_doubled():
    assert NO_TYPE_CHECK in audit_flags([], None) and NO_TYPE_CHECK in audit_flags([], "portable")
    assert audit_flags([NO_TYPE_CHECK], None).count(NO_TYPE_CHECK) == 1
