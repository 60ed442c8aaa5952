"""TensorFlow is optional: find whichever build is installed, and import it without its start-up noise.

The core (audit, rebuild, inspect, rehearse) never needs TensorFlow. Registry builders, the final
TensorFlow read of a rebuilt index and the demo use the `tensorflow` module that is importable,
whichever distribution provides it (tensorflow, tensorflow-cpu, tf-nightly, a GPU build), and
say what is skipped, and how to enable it, when there is none.

TF 2.21 prints oneDNN and CUDA notices from C++ before absl logging is initialised, which
TF_CPP_MIN_LOG_LEVEL does not reach; a user of `make demo` should not have to read them. They all
come during the import, so stderr's file descriptor is pointed at /dev/null for just that long.
Import errors still surface: they are Python exceptions, raised after stderr is restored.
"""

import importlib.util
import os

INSTALL_HINT = ("`pip install 'ckpt-rescue[tensorflow]'` adds tensorflow-cpu; any TensorFlow 2 build "
                "(tensorflow, tf-nightly, a GPU build) works as well")


class TensorFlowMissing(ImportError):
    """A feature that needs TensorFlow was asked for where none is installed."""


def tensorflow_available() -> bool:
    """True when a `tensorflow` module is importable (found without importing it: that takes seconds)."""
    return importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(feature: str) -> None:
    """Raise TensorFlowMissing naming `feature` and how to enable it, unless TensorFlow is installed."""
    if not tensorflow_available():
        raise TensorFlowMissing(f"{feature} needs TensorFlow, which is not installed here: {INSTALL_HINT}")


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    require_tensorflow("this step")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
