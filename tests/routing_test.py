"""dwop.enable() routes every Keras 3/tf.nn depthwise convolution to dwop (#16).

Each case is traced as a training step (a tf.function holding the forward
and a GradientTape) and its graph, with every function it calls, is
inspected: routed, it holds dwop's three ops and none of TensorFlow's
depthwise or grouped-Conv2D ops; the values equal stock TensorFlow's.
Also: layers built before enable(), disable() restoring the very same
functions, XLA fallback, mixed precision, MirroredStrategy, SavedModel,
.keras, dwop.layers' 1-D layers, pfor (vectorized_map, jacobian) and a
smoke run of python/bench_e2e.py.
"""

import json
import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import dwop
from dwop import _routing
import dwop.layers
import grad_test
import testing

DWOP_OPS = {"Dwop>DepthwiseConv2dNative", "Dwop>DepthwiseConv2dBackpropInput",
            "Dwop>DepthwiseConv2dBackpropFilter"}
TF_DEPTHWISE_OPS = {"DepthwiseConv2dNative",
                    "DepthwiseConv2dNativeBackpropInput",
                    "DepthwiseConv2dNativeBackpropFilter"}
TF_CONV_OPS = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}


def graph_ops(fn, *args):
  """Op types of a tf.function's concrete graph and every function it calls."""
  graph_def = fn.get_concrete_function(*args).graph.as_graph_def()
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types |= {node.op for node in function.node_def}
  return types


def _layer(kind, config):
  return {
      "depthwise2d": keras.layers.DepthwiseConv2D,
      "separable2d": keras.layers.SeparableConv2D,
      "depthwise1d": keras.layers.DepthwiseConv1D,
      "separable1d": keras.layers.SeparableConv1D,
      "conv2d": keras.layers.Conv2D,
      "conv1d": keras.layers.Conv1D,
  }[kind](**config)


# (name, kind, config, input shape, has a pointwise conv)
LAYERS = [
    ("depthwise2d_same", "depthwise2d", {"kernel_size": 3, "padding": "same"},
     (2, 9, 8, 4), False),
    ("depthwise2d_valid_s2_m2", "depthwise2d",
     {"kernel_size": 3, "strides": 2, "depth_multiplier": 2,
      "activation": "relu"}, (2, 9, 8, 4), False),
    ("depthwise2d_d2", "depthwise2d",
     {"kernel_size": 3, "padding": "same", "dilation_rate": 2},
     (2, 9, 8, 4), False),
    ("depthwise2d_s2_d2", "depthwise2d",
     {"kernel_size": 3, "padding": "same", "strides": 2, "dilation_rate": 2},
     (2, 11, 10, 4), False),
    ("depthwise2d_channels_first", "depthwise2d",
     {"kernel_size": 3, "padding": "same", "data_format": "channels_first"},
     (2, 4, 9, 8), False),
    ("separable2d", "separable2d",
     {"filters": 5, "kernel_size": 3, "padding": "same", "strides": 2},
     (2, 9, 8, 4), True),
    ("separable2d_d2_m2", "separable2d",
     {"filters": 5, "kernel_size": 3, "dilation_rate": 2,
      "depth_multiplier": 2}, (2, 9, 8, 4), True),
    ("depthwise1d_same", "depthwise1d", {"kernel_size": 5, "padding": "same"},
     (2, 12, 4), False),
    ("depthwise1d_s2_m3", "depthwise1d",
     {"kernel_size": 3, "strides": 2, "depth_multiplier": 3},
     (2, 12, 4), False),
    ("depthwise1d_channels_first", "depthwise1d",
     {"kernel_size": 3, "dilation_rate": 2, "data_format": "channels_first"},
     (2, 4, 12), False),
    ("separable1d", "separable1d",
     {"filters": 6, "kernel_size": 3, "padding": "same"}, (2, 12, 4), True),
    ("conv2d_groups_m1", "conv2d",
     {"filters": 4, "kernel_size": 7, "groups": 4, "padding": "same"},
     (2, 9, 8, 4), False),
    ("conv2d_groups_m2_s2", "conv2d",
     {"filters": 8, "kernel_size": 3, "groups": 4, "strides": 2,
      "padding": "same"}, (2, 9, 8, 4), False),
    ("conv2d_groups_m3_d2", "conv2d",
     {"filters": 12, "kernel_size": (3, 2), "groups": 4, "dilation_rate": 2},
     (2, 9, 8, 4), False),
    ("conv2d_groups_channels_first", "conv2d",
     {"filters": 8, "kernel_size": 3, "groups": 4, "padding": "same",
      "data_format": "channels_first"}, (2, 4, 9, 8), False),
    ("conv1d_groups_causal", "conv1d",
     {"filters": 8, "kernel_size": 3, "groups": 4, "padding": "causal"},
     (2, 12, 4), False),
    ("conv1d_groups_s2", "conv1d",
     {"filters": 4, "kernel_size": 3, "groups": 4, "strides": 2},
     (2, 12, 4), False),
]


def _random(shape, seed=0, dtype=tf.float32):
  return tf.constant(np.random.default_rng(seed).standard_normal(shape), dtype)


def _step(fn, variables):
  """A training step: outputs and the gradients of sum(y^2) wrt (x, vars)."""
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = fn(x)
      loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    return [y] + tape.gradient(loss, [x] + list(variables))
  return step


def _functional_cases():
  """(name, fn(x, w...), input shape, filter shapes, has pointwise)."""
  def keras_depthwise(x, w):
    return keras.ops.depthwise_conv(x, w, strides=2, padding="same")

  def keras_separable(x, w, p):
    return keras.ops.separable_conv(x, w, p, padding="same", dilation_rate=2)

  def keras_conv_grouped(x, w):
    return keras.ops.conv(x, w, padding="same")

  def keras_depthwise_no_dilation(x, w):  # None: as TensorFlow takes it, 1
    return keras.ops.depthwise_conv(x, w, padding="same", dilation_rate=None)

  def tf_depthwise(x, w):
    return tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=[2, 1])

  def tf_separable(x, w, p):
    return tf.nn.separable_conv2d(x, w, p, [1, 2, 2, 1], "VALID")

  def tf_v1_depthwise(x, w):  # (the v1 API's dilations may be `rate`)
    return tf.compat.v1.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME",
                                            rate=[2, 1])

  def tf_v1_separable(x, w, p):
    return tf.compat.v1.nn.separable_conv2d(x, w, p, [1, 1, 1, 1], "SAME",
                                            rate=[1, 2])

  return [
      ("keras_ops_depthwise_conv", keras_depthwise, (2, 9, 8, 4),
       [(3, 3, 4, 2)], False),
      ("keras_ops_separable_conv", keras_separable, (2, 9, 8, 4),
       [(3, 3, 4, 1), (1, 1, 4, 6)], True),
      ("keras_ops_conv_groups", keras_conv_grouped, (2, 9, 8, 4),
       [(3, 3, 1, 8)], False),
      ("keras_ops_depthwise_conv_dilation_none", keras_depthwise_no_dilation,
       (2, 9, 8, 4), [(3, 3, 4, 1)], False),
      ("tf_nn_depthwise_conv2d", tf_depthwise, (2, 9, 8, 4),
       [(3, 3, 4, 2)], False),
      ("tf_nn_separable_conv2d", tf_separable, (2, 9, 8, 4),
       [(3, 3, 4, 2), (1, 1, 8, 5)], True),
      ("tf_compat_v1_depthwise_conv2d", tf_v1_depthwise, (2, 9, 8, 4),
       [(3, 3, 4, 2)], False),
      ("tf_compat_v1_separable_conv2d", tf_v1_separable, (2, 9, 8, 4),
       [(3, 3, 4, 2), (1, 1, 8, 5)], True),
  ]


class RoutingTestCase(grad_test.DwopTestCase):

  def setUp(self):
    super().setUp()
    self.addCleanup(keras.mixed_precision.set_global_policy, "float32")

  def assertRouted(self, types, pointwise):
    self.assertContainsSubset(DWOP_OPS, types)
    self.assertEmpty(types & TF_DEPTHWISE_OPS)
    self.assertNotIn("XlaLaunch", types)
    if not pointwise:  # no grouped Conv2D (nor any other conv)
      self.assertEmpty(types & TF_CONV_OPS)

  def assertStock(self, types):
    self.assertEmpty({t for t in types if t.startswith("Dwop>")})


class LayerRoutingTest(RoutingTestCase):
  """Every Keras depthwise layer runs forward and both gradients on dwop."""

  @parameterized.named_parameters(
      (name, kind, config, shape, pointwise)
      for name, kind, config, shape, pointwise in LAYERS)
  def test_routed_and_equal_to_stock(self, kind, config, shape, pointwise):
    layer = _layer(kind, dict(config, bias_initializer="glorot_uniform")
                   if kind != "separable1d" and kind != "separable2d" else
                   config)
    layer.build(shape)  # built before enable(): routed all the same
    x = _random(shape)
    step = _step(layer, layer.trainable_variables)
    stock_values = step(x)
    self.assertStock(graph_ops(tf.function(step), x))
    with dwop.enabled():
      self.assertTrue(_routing.is_routed())
      routed_values = step(x)
      self.assertRouted(graph_ops(tf.function(step), x), pointwise)
    self.assertFalse(_routing.is_routed())
    self.assertStock(graph_ops(tf.function(step), x))
    for stock, routed in zip(stock_values, routed_values):
      self.assertAllClose(stock, routed, atol=1e-4, rtol=1e-4)

  @parameterized.named_parameters(
      (name, fn, shape, filters, pointwise)
      for name, fn, shape, filters, pointwise in _functional_cases())
  def test_functions_routed(self, fn, shape, filters, pointwise):
    x = _random(shape)
    weights = [tf.Variable(_random(s, seed=i + 1)) for i, s in
               enumerate(filters)]
    step = _step(lambda x: fn(x, *weights), weights)
    stock_values = step(x)
    dwop.enable()
    routed_values = step(x)
    self.assertRouted(graph_ops(tf.function(step), x), pointwise)
    dwop.disable()
    self.assertStock(graph_ops(tf.function(step), x))
    for stock, routed in zip(stock_values, routed_values):
      self.assertAllClose(stock, routed, atol=1e-4, rtol=1e-4)

  @parameterized.named_parameters(
      ("channel_mismatch", lambda x, w: keras.ops.depthwise_conv(x, w),
       (3, 3, 5, 1)),
      ("channel_mismatch_separable",
       lambda x, w: keras.ops.separable_conv(x, w, tf.ones((1, 1, 5, 2))),
       (3, 3, 5, 1)),
      ("causal", lambda x, w: keras.ops.conv(x, w, padding="causal"),
       (3, 3, 1, 8)),
  )
  def test_keras_errors_as_stock(self, fn, kernel_shape):
    # Keras' own checks raise ValueError before any op runs; routed too.
    x, w = _random((2, 9, 8, 4)), _random(kernel_shape)
    with self.assertRaises(ValueError) as stock:
      fn(x, w)
    with dwop.enabled(), self.assertRaises(ValueError) as routed:
      fn(x, w)
    self.assertEqual(type(stock.exception), type(routed.exception))

  @parameterized.named_parameters(
      ("groups_1", {"filters": 8, "kernel_size": 3, "groups": 1}),
      ("groups_2_of_4", {"filters": 8, "kernel_size": 3, "groups": 2}),
      ("one_channel", {"filters": 8, "kernel_size": 3, "groups": 1}, 1),
  )
  def test_other_convs_stay_stock(self, config, channels=4):
    layer = keras.layers.Conv2D(**config)
    x = _random((2, 9, 8, channels))
    layer.build(x.shape)
    step = _step(layer, layer.trainable_variables)
    stock = step(x)
    with dwop.enabled():
      self.assertStock(graph_ops(tf.function(step), x))
      for a, b in zip(stock, step(x)):
        self.assertAllEqual(a, b)

  def test_grouped_kernel_channel_order(self):
    # Output channel c*M + m of Conv2D(groups=C) reads input channel c with
    # kernel[..., 0, c*M + m]: one-hot input channels show the mapping.
    channels, multiplier = 3, 2
    layer = keras.layers.Conv2D(channels * multiplier, 1, groups=channels,
                                use_bias=False)
    layer.build((1, 1, 1, channels))
    kernel = np.arange(1, channels * multiplier + 1, dtype="float32")
    layer.kernel.assign(kernel.reshape(1, 1, 1, -1))
    with dwop.enabled():
      for c in range(channels):
        x = np.zeros((1, 1, 1, channels), "float32")
        x[..., c] = 1
        y = layer(x).numpy().ravel()
        expected = np.zeros_like(kernel)
        expected[c * multiplier:(c + 1) * multiplier] = kernel[
            c * multiplier:(c + 1) * multiplier]
        self.assertAllEqual(y, expected)


class SwitchTest(RoutingTestCase):
  """enable()/disable()/enabled() put dwop's functions in and the stock back."""

  def test_disable_restores_the_same_objects(self):
    import keras.src.backend.tensorflow.nn as keras_nn  # pylint: disable=g-import-not-at-top
    before = {
        "keras_depthwise": keras_nn.depthwise_conv,
        "keras_separable": keras_nn.separable_conv,
        "keras_conv": keras_nn.conv,
        "tf_depthwise": tf.nn.depthwise_conv2d,
        "tf_separable": tf.nn.separable_conv2d,
        "tf_v1_depthwise": tf.compat.v1.nn.depthwise_conv2d,
        "tf_v1_separable": tf.compat.v1.nn.separable_conv2d,
    }

    def now():
      return {
          "keras_depthwise": keras_nn.depthwise_conv,
          "keras_separable": keras_nn.separable_conv,
          "keras_conv": keras_nn.conv,
          "tf_depthwise": tf.nn.depthwise_conv2d,
          "tf_separable": tf.nn.separable_conv2d,
          "tf_v1_depthwise": tf.compat.v1.nn.depthwise_conv2d,
          "tf_v1_separable": tf.compat.v1.nn.separable_conv2d,
      }

    dwop.enable()
    dwop.enable()  # idempotent
    for name, fn in now().items():
      self.assertIsNot(fn, before[name], name)
    self.assertTrue(dwop.is_enabled())
    dwop.disable()
    for name, fn in now().items():
      self.assertIs(fn, before[name], name)
    with dwop.enabled():
      with dwop.enabled():
        self.assertTrue(_routing.is_routed())
      self.assertTrue(_routing.is_routed())
    self.assertFalse(_routing.is_routed())
    for name, fn in now().items():
      self.assertIs(fn, before[name], name)

  def test_keras_ops_resolve_the_backend_at_call_time(self):
    # keras.src.ops.nn calls backend.nn.<name>: the module enable() patches.
    from keras.src import backend  # pylint: disable=g-import-not-at-top
    import keras.src.backend.tensorflow.nn as keras_nn  # pylint: disable=g-import-not-at-top
    self.assertIs(backend.nn, keras_nn)
    with dwop.enabled():
      self.assertIs(backend.nn.depthwise_conv, _routing._keras_depthwise_conv)  # pylint: disable=protected-access

  def test_model_built_before_enable(self):
    model = keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.Conv2D(8, 3, groups=4, padding="same"),
        keras.layers.SeparableConv2D(4, 3, padding="same"),
    ])
    x = _random((2, 8, 8, 4))
    stock = model(x)
    dwop.enable()
    self.assertAllClose(stock, model(x), atol=1e-5)
    self.assertRouted(graph_ops(tf.function(
        _step(model, model.trainable_variables)), x), pointwise=True)


class XlaTest(RoutingTestCase):
  """Under XLA every routed call falls back to TensorFlow's ops."""

  @parameterized.named_parameters(
      (name, kind, config, shape)
      for name, kind, config, shape, _ in LAYERS
      if name in ("depthwise2d_valid_s2_m2", "separable2d",
                  "depthwise1d_same", "conv2d_groups_m2_s2",
                  "conv1d_groups_causal"))
  def test_jit_compile(self, kind, config, shape):
    layer = _layer(kind, config)
    layer.build(shape)
    x = _random(shape)
    step = _step(layer, layer.trainable_variables)
    stock = step(x)
    with dwop.enabled():
      compiled = tf.function(step, jit_compile=True)
      self.assertStock(graph_ops(compiled, x))
      for a, b in zip(stock, compiled(x)):
        self.assertAllClose(a, b, atol=1e-4, rtol=1e-4)

  def test_dwop_layers_jit_compile(self):
    layer = dwop.layers.DepthwiseConv1D(3, padding="same")
    layer.build((2, 10, 4))
    x = _random((2, 10, 4))
    compiled = tf.function(_step(layer, layer.trainable_variables),
                           jit_compile=True)
    self.assertStock(graph_ops(compiled, x))
    compiled(x)

  def test_model_fit_jit_compile(self):
    model = _small_model()
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x, y = _random((8, 12, 12, 4)), _random((8, 3), seed=1)
    with dwop.enabled():
      history = model.fit(x, y, batch_size=4, verbose=0)
    self.assertTrue(np.isfinite(history.history["loss"]).all())


def _small_model(seed=1):
  """Stock Keras layers of every routed kind (ConvNeXt-style grouped conv)."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((12, 12, 4))
  h = keras.layers.Conv2D(8, 7, groups=4, padding="same")(inputs)
  h = keras.layers.LayerNormalization()(h)
  h = keras.layers.DepthwiseConv2D(3, strides=2, padding="same",
                                   activation="relu")(h)
  h = keras.layers.SeparableConv2D(8, 3, padding="same")(h)
  h = keras.layers.Reshape((36, 8))(h)
  h = keras.layers.DepthwiseConv1D(3, padding="same")(h)
  h = keras.layers.SeparableConv1D(6, 3, padding="same")(h)
  h = keras.layers.GlobalAveragePooling1D()(h)
  outputs = keras.layers.Dense(3)(h)
  return keras.Model(inputs, outputs)


class MixedPrecisionTest(RoutingTestCase):

  @parameterized.named_parameters(("float16", "mixed_float16"),
                                  ("bfloat16", "mixed_bfloat16"))
  def test_mixed_precision(self, policy):
    keras.mixed_precision.set_global_policy(policy)
    model = _small_model()
    x = _random((4, 12, 12, 4))
    step = _step(model, model.trainable_variables)
    stock = step(x)
    with dwop.enabled():
      routed = step(x)
      self.assertRouted(graph_ops(tf.function(step), x), pointwise=True)
    tol = 2e-2 if policy == "mixed_float16" else 1e-1
    for a, b in zip(stock, routed):
      a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
      self.assertAllClose(a, b, atol=tol * (np.abs(a).max() + 1e-3),
                          rtol=tol)


_MIRRORED = """
import json
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from unittest import mock
import keras
import dwop
from dwop import _ops
import routing_test

x = np.random.default_rng(0).standard_normal((16, 12, 12, 4)).astype("f4")
y = np.random.default_rng(1).standard_normal((16, 3)).astype("f4")


def fit(strategy, enable):
  with strategy.scope():
    model = routing_test._small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse",
                  jit_compile=False)
  if enable:
    dwop.enable()
  with mock.patch.object(_ops, "depthwise_conv2d",
                         wraps=_ops.depthwise_conv2d) as spy:
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
  dwop.disable()
  return model, spy.call_count


single = tf.distribute.OneDeviceStrategy("/cpu:0")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
base, out = fit(single, False)
out = {"replicas": mirrored.num_replicas_in_sync, "stock_calls": out}
for name, strategy in (("single", single), ("mirrored", mirrored)):
  model, out[name + "_calls"] = fit(strategy, True)
  out[name] = max(float(np.abs(a - b).max()) for a, b in
                  zip(base.get_weights(), model.get_weights()))
out["moved"] = max(float(np.abs(a - b).max()) for a, b in
                   zip(base.get_weights(),
                       routing_test._small_model().get_weights()))
print("RESULT" + json.dumps(out))
"""


class DistributeTest(absltest.TestCase):

  def test_mirrored_strategy(self):
    result = testing.run_python(_MIRRORED)
    self.assertEqual(result.returncode, 0, result.stderr[-4000:])
    out = json.loads(result.stdout.split("RESULT")[-1])
    self.assertEqual(out["replicas"], 2)
    self.assertGreater(out["moved"], 1e-3)
    self.assertLess(out["single"], 1e-4)
    self.assertLess(out["mirrored"], 1e-4)
    self.assertEqual(out["stock_calls"], 0)
    self.assertGreater(out["single_calls"], 0)
    self.assertGreater(out["mirrored_calls"], 0)


class SavingTest(RoutingTestCase):

  def test_keras_format(self):
    model = _small_model()
    x = _random((2, 12, 12, 4))
    path = os.path.join(self.get_temp_dir(), "routed.keras")
    with dwop.enabled():
      expected = model(x)
      model.save(path)
      restored_routed = keras.models.load_model(path)
      self.assertAllClose(expected, restored_routed(x), atol=1e-5)
    restored = keras.models.load_model(path)
    self.assertAllClose(expected, restored(x), atol=1e-5)

  def test_saved_model_export(self):
    model = _small_model()
    x = _random((4, 12, 12, 4))
    expected = model(x).numpy()
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    routed, stock = os.path.join(root, "routed"), os.path.join(root, "stock")
    with dwop.enabled():
      model.export(routed, verbose=False)
    model.export(stock, verbose=False)
    np.save(os.path.join(root, "x.npy"), x.numpy())
    result = testing.run_python(f"""
        import json
        import numpy as np
        import tensorflow as tf
        root = {root!r}
        x = tf.constant(np.load(root + "/x.npy"))
        out = {{}}
        stock = tf.saved_model.load(root + "/stock")
        out["stock"] = stock.serve(x).numpy().tolist()
        try:
          tf.saved_model.load(root + "/routed")
          out["without_dwop"] = "loaded"
        except Exception as e:  # pylint: disable=broad-except
          out["without_dwop"] = str(e)[:400]
        import dwop
        dwop.load_library()
        routed = tf.saved_model.load(root + "/routed")
        out["routed"] = routed.serve(x).numpy().tolist()
        print("RESULT" + json.dumps(out))
        """)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    out = json.loads(result.stdout.split("RESULT")[-1])
    self.assertAllClose(out["stock"], expected, atol=1e-5)
    self.assertAllClose(out["routed"], expected, atol=1e-5)
    # TensorFlow's refusal names the op, whose "Dwop>" prefix names dwop.
    self.assertIn("Op type not registered 'Dwop>", out["without_dwop"])


class LayersTest(RoutingTestCase):
  """dwop.layers' 1-D layers: drop-ins on dwop's ops without enable()."""

  @parameterized.named_parameters(
      ("depthwise1d", dwop.layers.DepthwiseConv1D,
       keras.layers.DepthwiseConv1D,
       {"kernel_size": 3, "strides": 2, "depth_multiplier": 2}, False),
      ("depthwise1d_same_d2", dwop.layers.DepthwiseConv1D,
       keras.layers.DepthwiseConv1D,
       {"kernel_size": 3, "padding": "same", "dilation_rate": 2}, False),
      ("depthwise1d_channels_first", dwop.layers.DepthwiseConv1D,
       keras.layers.DepthwiseConv1D,
       {"kernel_size": 3, "data_format": "channels_first"}, False),
      ("separable1d", dwop.layers.SeparableConv1D,
       keras.layers.SeparableConv1D,
       {"filters": 5, "kernel_size": 3, "padding": "same",
        "activation": "relu"}, True),
      ("separable1d_s2_d2", dwop.layers.SeparableConv1D,
       keras.layers.SeparableConv1D,
       {"filters": 5, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
       True),
      ("depthwise2d", dwop.layers.DepthwiseConv2D,
       keras.layers.DepthwiseConv2D,
       {"kernel_size": 3, "padding": "same", "depth_multiplier": 2}, False),
  )
  def test_matches_keras(self, ours_class, stock_class, config, pointwise):
    channels_first = config.get("data_format") == "channels_first"
    rank = 1 if "1D" in ours_class.__name__ else 2
    shape = ((2, 4) + (13,) * rank if channels_first else
             (2,) + (13,) * rank + (4,))
    ours, stock = ours_class(**config), stock_class(**config)
    ours.build(shape)
    stock.build(shape)
    ours.set_weights(stock.get_weights())
    x = _random(shape)
    ours_step = _step(ours, ours.trainable_variables)
    for a, b in zip(_step(stock, stock.trainable_variables)(x), ours_step(x)):
      self.assertAllClose(a, b, atol=1e-4, rtol=1e-4)
    self.assertRouted(graph_ops(tf.function(ours_step), x), pointwise)
    clone = ours_class.from_config(ours.get_config())
    self.assertEqual(clone.get_config(), ours.get_config())
    self.assertIsInstance(clone, ours_class)

  def test_keras_save_and_load(self):
    inputs = keras.Input((16, 4))
    h = dwop.layers.DepthwiseConv1D(3, padding="same")(inputs)
    outputs = dwop.layers.SeparableConv1D(6, 3)(h)
    model = keras.Model(inputs, outputs)
    path = os.path.join(self.get_temp_dir(), "layers1d.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    self.assertContainsSubset(
        {dwop.layers.DepthwiseConv1D, dwop.layers.SeparableConv1D},
        {type(layer) for layer in restored.layers})
    x = _random((2, 16, 4))
    self.assertAllClose(model(x), restored(x))


class PforTest(RoutingTestCase):
  """vectorized_map and jacobian over dwop's ops vectorize (no while_loop)."""

  def assertVectorized(self, types):
    self.assertEmpty({t for t in types if "While" in t})

  @parameterized.named_parameters(("nhwc", "channels_last"),
                                  ("nchw", "channels_first"))
  def test_per_example_gradients(self, data_format):
    layer = dwop.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                        data_format=data_format)
    shape = (5, 3, 7, 6) if data_format == "channels_first" else (5, 7, 6, 3)
    if data_format == "channels_first":
      # NCHW stays NCHW only off CPU-only machines; here the transposes go
      # around dwop's op: still vectorized.
      pass
    layer.build(shape)
    x = _random(shape)

    def per_example(xi):
      with tf.GradientTape() as tape:
        y = layer(xi[None])
        loss = tf.reduce_sum(y * y)
      return tape.gradient(loss, layer.trainable_variables)

    vectorized = tf.function(lambda x: tf.vectorized_map(per_example, x))
    types = graph_ops(vectorized, x)
    self.assertContainsSubset({"Dwop>DepthwiseConv2dNative",
                               "Dwop>DepthwiseConv2dBackpropFilter"}, types)
    self.assertVectorized(types)
    got = vectorized(x)
    for i in range(shape[0]):
      for g, e in zip(got, per_example(x[i])):
        self.assertAllClose(g[i], e, atol=1e-5, rtol=1e-5)

  @parameterized.named_parameters(("nhwc", "NHWC"), ("nchw", "NCHW"))
  def test_filter_varies_too(self, data_format):
    shape = (4, 3, 7, 7) if data_format == "NCHW" else (4, 7, 7, 3)
    x = _random(shape)
    w = _random((4, 3, 3, 3, 2), seed=1)

    def one(args):
      xi, wi = args
      with tf.GradientTape() as tape:
        tape.watch([xi, wi])
        y = dwop.depthwise_conv2d(xi[None], wi, [1, 1, 1, 1], "VALID",
                                  data_format=data_format)
        loss = tf.reduce_sum(y * y)
      return [y] + tape.gradient(loss, [xi, wi])

    vectorized = tf.function(lambda x, w: tf.vectorized_map(one, (x, w)))
    types = graph_ops(vectorized, x, w)
    self.assertContainsSubset(DWOP_OPS, types)
    self.assertVectorized(types)
    got = vectorized(x, w)
    for i in range(shape[0]):
      for g, e in zip(got, one((x[i], w[i]))):
        self.assertAllClose(g[i], e, atol=1e-5, rtol=1e-5)

  def test_jacobian(self):
    x = _random((2, 5, 5, 3))
    w = _random((3, 3, 3, 1), seed=1)

    def jacobian(x):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = dwop.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME")
      return tape.jacobian(y, x)

    vectorized = tf.function(jacobian)
    types = graph_ops(vectorized, x)
    self.assertIn("Dwop>DepthwiseConv2dBackpropInput", types)
    self.assertVectorized(types)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(x)
      y = tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME")
    expected = tape.jacobian(y, x, experimental_use_pfor=False)
    self.assertAllClose(vectorized(x), expected, atol=1e-6)


class BenchE2eTest(absltest.TestCase):
  """python/bench_e2e.py --quick runs (tiny sizes) and writes its outputs."""

  def test_quick(self):
    out = tempfile.mkdtemp()
    result = testing.run_python(f"""
        import sys
        import bench_e2e
        sys.exit(bench_e2e.main(["--quick", "--models",
                                 "replknet,mobilenetv3small",
                                 "--size", "32", "--no-torch",
                                 "--out", {out!r}]))
        """)
    self.assertEqual(result.returncode, 0, result.stderr[-4000:])
    self.assertIn("replknet", result.stdout)
    self.assertIn("mobilenetv3small", result.stdout)  # an extra model
    with open(os.path.join(out, "results.json")) as f:
      all_results = json.load(f)["results"]
    for results in all_results.values():
      self.assertGreater(results["speedup"], 0)
      self.assertContainsSubset(DWOP_OPS, set(results["dwop_ops"]))
      self.assertEmpty(set(results["dwop_ops"]) & TF_DEPTHWISE_OPS)
    self.assertTrue(os.path.exists(os.path.join(out, "e2e.png")))


if __name__ == "__main__":
  absltest.main()
