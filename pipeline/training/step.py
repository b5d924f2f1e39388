"""The compiled training step: forward, loss with the original's L2 term, gradients and the momentum update."""

import keras
import tensorflow as tf

from pipeline.training.config import TrainingConfig
from pipeline.training.model import weight_decay_variables


def make_train_chunk(model, optimizer, config: TrainingConfig, strategy, kernels: str):
    """Return a compiled function that runs several training steps in one call.

    Each step gathers one global batch; under a MirroredStrategy every replica takes its slice
    of it and Keras' optimizer sums the replicas' gradients, so the update equals the
    single-device one. With ``kernels`` 'fused' (pipeline.training.fused) or 'winograd'
    (pipeline.training.winograd_training), the forward pass and fc1's update go through those
    modules, and every other variable is stepped as with 'stock'.
    """
    trainable = model.trainable_variables
    batch_size = config.batch_size
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    replicas = strategy.num_replicas_in_sync
    single = not loss_scaled and replicas == 1
    # SGD builds one momentum slot per variable, in the order it was built with.
    momentums = list(optimizer.momentums) if single else []
    # With compiled kernels, ``fused`` computes the forward pass and steps fc1's kernel (its
    # momentum update and L2 term in one op); every other variable is stepped below.
    fused = None
    if kernels in ("fused", "winograd"):
        from pipeline.training.fused import SHADOWED_LAYER, FusedTraining
        from pipeline.training.winograd_training import WinogradTraining

        kernel = model.get_layer(SHADOWED_LAYER).kernel
        momentum = momentums[[id(v) for v in trainable].index(id(kernel))]
        if kernels == "fused" or kernel.dtype != model.get_layer(SHADOWED_LAYER).compute_dtype:
            # Mixed bfloat16: the fused step, with conv2 in the Winograd domain for 'winograd'.
            fused = FusedTraining(model, momentum, winograd=kernels == "winograd")
        else:
            fused = WinogradTraining(model, momentum)
        keep = [id(v) != id(kernel) for v in trainable]
        trainable = [v for v, kept in zip(trainable, keep) if kept]
        momentums = [m for m, kept in zip(momentums, keep) if kept]
    # The fused update computes and differentiates fc1 kernel's L2 term itself.
    decayed = [v for v in weight_decay_variables(model) if fused is None or v is not fused.kernel]

    def apply_gradients(gradients):
        if not single:
            optimizer.apply(gradients, trainable)
            return
        # One fused kernel per variable instead of Keras' several ops: the same update and slots
        # as keras.optimizers.SGD (m = momentum*m - lr*g; w += m), about 6% faster a step here.
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        for variable, momentum, gradient in zip(trainable, momentums, gradients):
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=variable.value.handle, accum=momentum.value.handle, lr=learning_rate,
                grad=gradient, momentum=tf.constant(config.momentum, tf.float32), use_nesterov=False)
        optimizer.iterations.assign_add(1)

    def replica_step(x, y):
        share = batch_size // replicas
        first = tf.distribute.get_replica_context().replica_id_in_sync_group * share
        x, y = x[first:first + share], y[first:first + share]
        with tf.GradientTape() as tape:
            if fused is None:
                logits = tf.cast(model(x, training=True), tf.float32)
            else:
                tape.watch(fused.watched)
                logits = tf.cast(fused.logits(x), tf.float32)
            # Summed over this replica's share, divided by the global batch: the replicas' losses
            # (and gradients) add up to the mean over the whole batch.
            cross_entropy = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)) / batch_size
            penalty = tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in decayed])
            loss = cross_entropy + config.weight_decay * penalty / replicas
            objective = optimizer.scale_loss(loss) if loss_scaled else loss
        if fused is None:
            apply_gradients(tape.gradient(objective, trainable))
        else:
            kernel_gradient, *gradients = tape.gradient(objective, [fused.watched, *trainable])
            kernel_penalty = fused.apply(kernel_gradient, tf.cast(optimizer.learning_rate, tf.float32),
                                         config.momentum, config.weight_decay)
            apply_gradients(gradients)
            loss += config.weight_decay * kernel_penalty
        wrong = tf.reduce_sum(tf.cast(tf.not_equal(tf.argmax(logits, axis=1, output_type=tf.int32), y),
                                      tf.float32))
        return loss, wrong

    @tf.function
    def train_chunk(images, labels, order, first_step, num_steps):
        if fused is not None:
            fused.refresh()
        loss_sum = tf.constant(0.0)
        loss = tf.constant(0.0)
        error = tf.constant(0.0)
        for step in tf.range(first_step, first_step + num_steps):
            batch = order[step * batch_size:(step + 1) * batch_size]
            x = tf.cast(tf.gather(images, batch), tf.float32)[..., None]
            y = tf.cast(tf.gather(labels, batch), tf.int32)
            losses, wrong = strategy.run(replica_step, args=(x, y))
            loss = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
            error = 100.0 * strategy.reduce(tf.distribute.ReduceOp.SUM, wrong, axis=None) / batch_size
            loss_sum += loss
        return loss, error, loss_sum

    return train_chunk
