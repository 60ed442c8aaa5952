"""pipeline/viewed_options.py: one view per options class, read and written like Beam's own."""

import pickle

from apache_beam.options.pipeline_options import (
    DebugOptions,
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    TypeOptions,
)

from pipeline.options import audit_flags, pipeline_options

FLAGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2",
         "--no_pipeline_type_check", "--experiments=a", "--experiments=b"]


def test_every_view_reads_what_beams_own_options_read():
    ours, beams = pipeline_options(FLAGS), PipelineOptions(FLAGS)
    for cls in (StandardOptions, DirectOptions, TypeOptions, DebugOptions):
        assert ours.view_as(cls).get_all_options() == beams.view_as(cls).get_all_options()
    assert ours.get_all_options() == beams.get_all_options()


def test_a_view_is_made_once_and_a_value_set_through_it_is_seen_everywhere():
    options = pipeline_options(FLAGS)
    standard = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is standard
    standard.runner = "DataflowRunner"
    debug = options.view_as(DebugOptions)
    debug.add_experiment("c")
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.get_all_options()["runner"] == "DataflowRunner"
    assert options.view_as(DebugOptions).experiments == ["a", "b", "c"]


def test_pickled_options_keep_their_values_and_not_their_views():
    options = pipeline_options(audit_flags([], None))
    options.view_as(StandardOptions).runner = "FnApiRunner"
    copy = pickle.loads(pickle.dumps(options))
    assert "_views" not in copy.__dict__
    assert copy.view_as(DirectOptions).direct_num_workers == options.view_as(DirectOptions).direct_num_workers
    assert copy.get_all_options() == options.get_all_options()
