"""Salvage: keep what survived of a damaged checkpoint, exactly, and say what is lost.

`plan_salvage` decides, tensor by tensor, what can be proven intact (plan.py); `write_salvage`
writes a new checkpoint of those tensors and its manifest, create-only (output.py);
`assess_salvage` is what the audit asks of a prefix it could not rebuild (assess.py). The modules,
by question: damaged.py (what arrived), references.py (CRCs recorded before the damage),
placement.py (where a layout puts tensors in data cut short), scan.py (one pass over the bytes),
verdicts.py (proven, placed, unconfirmed, lost), graph.py (the object graph carried over),
manifest.py (the record of it all).
"""

from .assess import SalvageAssessment, assess_salvage, suggested_output
from .damaged import Refused
from .output import SourceChanged, Written, existing_outputs, output_files, write_salvage
from .plan import SalvagePlan, plan_salvage
from .references import REFERENCE_SOURCES, Reference, ReferenceSource
from .verdicts import LOST, PLACED, PROVEN, UNCONFIRMED, TensorVerdict

__all__ = ["LOST", "PLACED", "PROVEN", "REFERENCE_SOURCES", "UNCONFIRMED", "Reference", "ReferenceSource", "Refused",
           "SalvageAssessment", "SalvagePlan", "SourceChanged", "TensorVerdict", "Written", "assess_salvage",
           "existing_outputs", "output_files", "plan_salvage", "suggested_output", "write_salvage"]
