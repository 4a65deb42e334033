"""Adam with its whole update compiled by XLA, for models that train without XLA.

Keras applies Adam variable by variable, a dozen small TensorFlow ops each: for the
`small` preset's 105 variables that is about 1,500 ops per training step, each
reading and writing whole tensors. Mixed-bfloat16 training on CPU runs fastest
without XLA (oneDNN's bfloat16 matrix products beat XLA's), yet its optimizer
step is pure element-wise work, which XLA fuses into a few loops. `FusedAdam`
compiles the update of every variable into one XLA function called from the
ordinary training step (its measurement: docs/design.md).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`, its update of all variables one XLA-compiled call.

    Same arguments, same arithmetic and the same slot variables as Keras' Adam.
    The fused update applies when each variable has a single local copy (no
    strategy, or a one-device one, which is how training runs on one CPU machine);
    under a strategy that mirrors variables across devices or workers, the update
    is Keras' own, variable by variable.

    Args:
        fuse_update: False gives Keras' update everywhere (for comparison).
        **kwargs: as for `keras.optimizers.Adam`.
    """

    def __init__(self, *args, fuse_update=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fuse_update = fuse_update
        self._fused_update = None

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        mirrored = any(isinstance(var, tf.distribute.DistributedValues) for _, var in grads_and_vars)
        if not self.fuse_update or mirrored or distribution.num_replicas_in_sync != 1:
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        if self._fused_update is None:
            # Made once, so each training function traces it and not a new function per call.
            self._fused_update = tf.function(self._update_all, jit_compile=True, autograph=False)
        grads, variables = zip(*grads_and_vars)
        self._fused_update(list(grads), list(variables), learning_rate)

    def _update_all(self, grads, variables, learning_rate):
        for grad, variable in zip(grads, variables):
            self.update_step(grad, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "fuse_update": self.fuse_update}
