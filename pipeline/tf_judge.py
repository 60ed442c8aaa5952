"""TensorFlow as the final judge of a rebuilt index: does it read every tensor through it?

Runs on the launching machine only. The data files are linked into a scratch directory next to
the new index, so nothing is written beside the user's checkpoint.
"""

import os
import tempfile

from tfbundle import data_filename, index_filename

from .tensorflow_env import INSTALL_HINT, tensorflow_available

__all__ = ["SKIPPED_NOTICE", "tensorflow_available", "tf_reads_every_tensor"]


SKIPPED_NOTICE = f"TensorFlow check skipped: TensorFlow is not installed; {INSTALL_HINT}"


def tf_reads_every_tensor(data_paths: list[str], index_bytes: bytes) -> tuple[bool, str]:
    """(ok, message) after `load_checkpoint` + `get_tensor` of every key (CRC-checked by TF)."""
    from .tensorflow_env import import_tensorflow

    tf = import_tensorflow()

    with tempfile.TemporaryDirectory(prefix="ckpt-rescue-judge-") as scratch:
        prefix = os.path.join(scratch, "judged")
        for shard, path in enumerate(data_paths):
            os.symlink(os.path.abspath(path), data_filename(prefix, shard, len(data_paths)))
        with open(index_filename(prefix), "wb") as f:
            f.write(index_bytes)
        try:
            reader = tf.train.load_checkpoint(prefix)
            dtypes = reader.get_variable_to_dtype_map()
            keys = list(dtypes)
            for key in keys:
                if dtypes[key] == tf.variant:  # the reader cannot hand variants to numpy; RestoreV2 reads them
                    tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key], shape_and_slices=[""],
                                         dtypes=[tf.variant])
                else:
                    reader.get_tensor(key)
        except Exception as exc:  # TF raises many error types; any of them is a verdict
            return False, f"TensorFlow could not read the rebuilt checkpoint: {type(exc).__name__}: {exc}"
    return True, f"TensorFlow {tf.__version__} read all {len(keys)} tensors through the rebuilt index"
