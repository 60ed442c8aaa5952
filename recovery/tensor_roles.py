"""What a tensor is to its run, read from its checkpoint key: a step counter (it changes at every
save), the optimizer's own state (slots, hyperparameters), or one of the model's weights.

A checkpoint records no `trainable` bit, so the keys are read as the savers that write them name
them: `tf.train.Checkpoint` (legacy slots under `.OPTIMIZER_SLOT`), Keras 3 (the model's variables
under `optimizer/_trainable_variables/N`, its slots under `optimizer/_variables/N`), tf_keras
(`optimizer/_variables/N` slots), TF1 Savers with tf.compat.v1 optimizers (`w/Adam`, `w/Adam_1`,
`w/Momentum`, ..., `beta1_power`).
"""

from tfbundle import OBJECT_GRAPH_KEY, dtype

from .layout import SAVE_COUNTER_KEY

# Step counters a name can be compared with (counters.py): save_counter, TF1's global_step.
COUNTER_KEYS = (SAVE_COUNTER_KEY, "global_step", "global_step/.ATTRIBUTES/VARIABLE_VALUE")
# Every tensor that changes at every save or training step.
COUNTER_SUFFIXES = (*COUNTER_KEYS, "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE", "beta1_power", "beta2_power")

_TF1_SLOTS = frozenset(("Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1", "Adagrad", "AdagradDA",
                        "Adadelta", "Adadelta_1", "Ftrl", "Ftrl_1", "ProximalAdagrad", "ExponentialMovingAverage"))
_FLOATS = frozenset(("float16", "bfloat16", "float32", "float64"))
_KERAS_MODEL_VARIABLES = "optimizer/_trainable_variables/"


def is_counter(key: str) -> bool:
    return key.endswith(COUNTER_SUFFIXES)


def is_optimizer_state(key: str) -> bool:
    """Slots and hyperparameters: they change with training, but are not the model."""
    if "/.OPTIMIZER_SLOT/" in key:
        return True
    if key.startswith("optimizer/") and not key.startswith(_KERAS_MODEL_VARIABLES):
        return True
    return key.rsplit("/", 1)[-1] in _TF1_SLOTS


def is_model_weight(key: str, dtype_number: int) -> bool:
    """A float tensor of the model itself: not a counter, not optimizer state, not the object graph."""
    return (dtype(dtype_number).name in _FLOATS and key != OBJECT_GRAPH_KEY and not is_counter(key)
            and not is_optimizer_state(key))
