"""The training objective: masked, label-smoothed cross-entropy, masked accuracy, and the paper's schedule.

Padding (label 0) never counts. The loss is normalised by the number of real target
tokens of the global batch (all replicas together), so one step's gradient is the
same whether the batch runs on one device or is split across several.
"""

import keras
import tensorflow as tf
from keras import ops


def _global_sum(value):
    """Sum of `value` over the replicas of the current strategy (itself without one)."""
    context = tf.distribute.get_replica_context()
    if context is None or tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def smoothed_cross_entropy(labels, logits, label_smoothing):
    """Per-token cross-entropy against (1 - e) one-hot(label) + e / vocab, from logits.

    loss = logsumexp(z) - (1 - e) z[label] - e mean(z), and its gradient is written
    out, softmax(z) - (1 - e) one-hot(label) - e / vocab: a few elementwise passes over
    the [tokens, vocab] logits. TensorFlow's fused sparse kernel is single-threaded on
    CPU, and a gather of log-probabilities back-propagates through a slow segment sum;
    either cost a sixth of a training step of the `small` model.
    """
    smoothing = tf.constant(label_smoothing, logits.dtype)

    @tf.custom_gradient
    def loss(logits):
        vocab_size = tf.cast(tf.shape(logits)[-1], logits.dtype)
        log_normalizer = tf.reduce_logsumexp(logits, axis=-1)
        true_logit = tf.gather(logits, labels, batch_dims=len(labels.shape))
        value = log_normalizer - (1.0 - smoothing) * true_logit - smoothing * tf.reduce_mean(logits, axis=-1)

        def gradient(upstream):
            target = tf.one_hot(labels, tf.shape(logits)[-1], 1.0 - smoothing, 0.0, dtype=logits.dtype)
            softmax = tf.exp(logits - log_normalizer[..., None])
            return upstream[..., None] * (softmax - target - smoothing / vocab_size)

        return value, gradient

    return loss(logits)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class MaskedCrossEntropy(keras.losses.Loss):
    """Sparse categorical cross-entropy over logits, with label smoothing, ignoring label 0.

    Returns per-token losses already divided by the global number of real tokens,
    with a "sum" reduction: each replica's loss is its share of the mean loss per real
    token of the global batch. Keras leaves "sum" losses unscaled and sums gradients
    over replicas, so the step is the same on one device or many.

    Args:
        label_smoothing: mass spread uniformly over the vocabulary, in [0, 1).
    """

    def __init__(self, label_smoothing=0.1, name="masked_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got label_smoothing={label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def call(self, labels, logits):
        labels = ops.cast(labels, "int32")
        logits = ops.cast(logits, "float32")
        losses = smoothed_cross_entropy(labels, logits, self.label_smoothing)
        mask = ops.cast(ops.not_equal(labels, 0), "float32")
        real_tokens = _global_sum(ops.sum(mask))
        return losses * mask / ops.maximum(real_tokens, 1.0)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config["label_smoothing"] = self.label_smoothing
        return config


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class MaskedAccuracy(keras.metrics.Metric):
    """Share of real (non-padding) target tokens whose arg-max prediction is right."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, labels, logits, sample_weight=None):
        labels = ops.cast(labels, "int32")
        mask = ops.cast(ops.not_equal(labels, 0), "float32")
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels), "float32")
        self.correct.assign_add(ops.sum(hits * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)` (Vaswani et al., 5.3).

    Steps count from 1, so the first update already has a small non-zero rate. `step_offset`
    starts the curve further along: a run that continues another one's weights (`training.init_from`)
    goes on at the rate where that run stopped. With `total_steps` and `cooldown_steps`, the rate
    falls linearly to zero over the last `cooldown_steps` of `total_steps` (a "cool-down", as in
    warm-up/stable/decay schedules: the final weights then sit at a minimum instead of bouncing
    around it at a constant rate).
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0, step_offset=0, total_steps=0, cooldown_steps=0):
        if d_model <= 0 or warmup_steps <= 0 or scale <= 0:
            raise ValueError(
                f"d_model, warmup_steps and scale must be positive, got d_model={d_model!r}, "
                f"warmup_steps={warmup_steps!r}, scale={scale!r}"
            )
        if step_offset < 0 or cooldown_steps < 0 or cooldown_steps > total_steps:
            raise ValueError(
                "step_offset must not be negative and cooldown_steps must be in [0, total_steps], got "
                f"step_offset={step_offset!r}, total_steps={total_steps!r}, cooldown_steps={cooldown_steps!r}"
            )
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale
        self.step_offset = step_offset
        self.total_steps = total_steps
        self.cooldown_steps = cooldown_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        shifted = step + (self.step_offset + 1.0)
        rate = (
            self.scale
            * self.d_model**-0.5
            * ops.minimum(ops.rsqrt(shifted), shifted * self.warmup_steps**-1.5)
        )
        if self.cooldown_steps:
            rate = rate * ops.clip((self.total_steps - step) / self.cooldown_steps, 0.0, 1.0)
        return rate

    def get_config(self):
        return {
            "d_model": self.d_model,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
            "step_offset": self.step_offset,
            "total_steps": self.total_steps,
            "cooldown_steps": self.cooldown_steps,
        }
