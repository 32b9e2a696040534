"""A small MobileNet-style Keras model and data for the training suites."""

import keras
import numpy as np
import tensorflow as tf

IMAGE = (16, 16, 3)
CLASSES = 4
BATCH = 8


def data(steps, seed=0):
  """(x, y) for `steps` batches: labels a learnable function of the image."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((steps * BATCH,) + IMAGE).astype("float32")
  y = (np.mean(x[:, :8, :, 0], axis=(1, 2)) > 0).astype("int32") * 2 + (
      np.mean(x[:, :, :8, 1], axis=(1, 2)) > 0).astype("int32")
  return x, y


def mobilenet(depthwise=keras.layers.DepthwiseConv2D,
              separable=keras.layers.SeparableConv2D, batch_norm=True,
              seed=1):
  """Conv, then depthwise/pointwise blocks (strided, multiplier 2, dilated)."""
  keras.utils.set_random_seed(seed)

  def norm(h):
    return keras.layers.BatchNormalization()(h) if batch_norm else h

  inputs = keras.Input(IMAGE)
  h = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(
      inputs)
  h = keras.layers.ReLU(6.0)(norm(h))
  h = depthwise(3, padding="same", use_bias=False)(h)
  h = keras.layers.ReLU(6.0)(norm(h))
  h = keras.layers.Conv2D(16, 1)(h)
  h = depthwise(3, strides=2, padding="same", depth_multiplier=2,
                activation="relu")(h)
  h = separable(16, 3, padding="same", dilation_rate=2, activation="relu")(h)
  h = keras.layers.GlobalAveragePooling2D()(h)
  outputs = keras.layers.Dense(CLASSES)(h)
  return keras.Model(inputs, outputs)


def compile_model(model, jit_compile=False, optimizer=None):
  model.compile(
      optimizer=optimizer or keras.optimizers.SGD(0.05),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      jit_compile=jit_compile)
  return model


def train(model, steps, epochs=1, jit_compile=False, optimizer=None):
  """Fits `steps` batches per epoch, in order; returns the History."""
  compile_model(model, jit_compile, optimizer)
  x, y = data(steps)
  return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
                   verbose=0)


def max_weight_difference(a, b):
  return max(float(np.max(np.abs(np.asarray(u, np.float64) -
                                  np.asarray(v, np.float64))))
             for u, v in zip(a.get_weights(), b.get_weights()))


def uses_filter_op(model):
  """Op types of the gradient of the model's loss, traced in a tf.function."""
  x, y = data(1)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      loss = keras.losses.sparse_categorical_crossentropy(
          y, model(x, training=True), from_logits=True)
    return tape.gradient(loss, model.trainable_variables)

  graph = step.get_concrete_function(tf.constant(x), tf.constant(y)).graph
  return {op.type for op in graph.get_operations()}
