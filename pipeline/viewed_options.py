"""Beam's PipelineOptions with one view per options class.

Beam asks the pipeline's options for a view (`view_as`) several times for every transform it applies,
and each view parses every flag again with a new argparse parser: a thousand views, 0.45 s of the
launcher's time before the audit starts (BENCHMARKS.md, 2026-12-07). Views of one options object share
their values (`_all_options`), so a view made once answers every later ask the same.
"""

from apache_beam.options.pipeline_options import PipelineOptions


class OptionsViewedOnce(PipelineOptions):
    def view_as(self, cls):
        views = self.__dict__.get("_views")
        if views is None:
            views = {}
            object.__setattr__(self, "_views", views)     # PipelineOptions.__setattr__ takes only options
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self):
        """Pickled as Beam's own (the views are made again where it is unpickled)."""
        state = super().__getstate__()
        return {name: value for name, value in state.items() if name != "_views"}
