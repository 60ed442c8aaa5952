"""The registry's layouts on the workers: loaded once per worker process in DoFn.setup, from the file
the launcher wrote once (recovery.registry.write_resolved), never pickled into the DoFns."""

import apache_beam as beam

from recovery.prefix_steps import AuditSettings
from recovery.registry import load_resolved


class RegistryLayouts(beam.DoFn):
    """A DoFn whose work may consult the registry: `self.registry` is name -> Layout, or None."""

    def __init__(self, settings: AuditSettings):
        self.resolved = settings.registry
        self.registry = None

    def setup(self):
        self.registry = load_resolved(self.resolved) if self.resolved else None
