"""Keras: dwop's layers, stock layers under dwop.enable(), model.fit, XLA,
mixed precision, and saving (.keras and SavedModel)."""

import contextlib
import json
import os
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import dwop
from dwop import _grad
import dwop.layers
import grad_models
import grad_test
import testing

DWOP_OP = "Dwop>DepthwiseConv2dBackpropFilter"
TF_FILTER_OP = "DepthwiseConv2dNativeBackpropFilter"

LAYER_CONFIGS = [
    ("same", {"kernel_size": 3, "padding": "same"}),
    ("valid_s2_m2_bias", {"kernel_size": 3, "strides": 2, "padding": "valid",
                          "depth_multiplier": 2, "activation": "relu"}),
    ("same_d2", {"kernel_size": 3, "padding": "same", "dilation_rate": 2}),
    ("same_s2_d2", {"kernel_size": (3, 2), "strides": 2, "padding": "same",
                    "dilation_rate": (2, 1)}),
    ("valid_s2x1_d1x2", {"kernel_size": 3, "strides": (2, 1),
                         "padding": "valid", "dilation_rate": (1, 2)}),
    ("channels_first", {"kernel_size": 3, "padding": "same",
                        "data_format": "channels_first",
                        "depth_multiplier": 2}),
    ("channels_first_s2_d2", {"kernel_size": 3, "strides": 2,
                              "padding": "same", "dilation_rate": 2,
                              "data_format": "channels_first"}),
]


def _spy():
  return mock.patch.object(_grad, "filter_grad", wraps=_grad.filter_grad)


class KerasTestCase(grad_test.DwopTestCase):

  def setUp(self):
    super().setUp()
    self.addCleanup(keras.mixed_precision.set_global_policy, "float32")


class LayerTest(KerasTestCase):
  """dwop.layers are drop-ins for Keras' layers."""

  @parameterized.named_parameters(
      (f"{kind}_{name}", kind, config)
      for kind in ("depthwise", "separable") for name, config in LAYER_CONFIGS)
  def test_matches_keras(self, kind, config):
    if kind == "separable":
      config = dict(config, filters=5)
      stock_class, dwop_class = (keras.layers.SeparableConv2D,
                                 dwop.layers.SeparableConv2D)
    else:
      stock_class, dwop_class = (keras.layers.DepthwiseConv2D,
                                 dwop.layers.DepthwiseConv2D)
    channels_first = config.get("data_format") == "channels_first"
    shape = (2, 3, 11, 10) if channels_first else (2, 11, 10, 3)
    x = tf.constant(np.random.default_rng(0).standard_normal(shape),
                    tf.float32)
    stock = stock_class(**config, bias_initializer="glorot_uniform")
    ours = dwop_class(**config, bias_initializer="glorot_uniform")
    stock.build(shape)
    ours.build(shape)
    ours.set_weights(stock.get_weights())

    def grads(layer):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.sin(y))
      return y, tape.gradient(loss, [x] + layer.trainable_weights)

    expected_y, expected = grads(stock)
    with _spy() as spy:
      y, got = grads(ours)
    self.assertGreater(spy.call_count, 0)
    self.assertAllClose(expected_y, y, rtol=1e-6, atol=1e-6)
    for e, g in zip(expected, got):
      self.assertAllClose(e, g, rtol=1e-5, atol=1e-5)

    self.assertEqual(stock.get_config() | {"name": None},
                     ours.get_config() | {"name": None})
    serialized = keras.saving.serialize_keras_object(ours)
    self.assertEqual(serialized["registered_name"],
                     f"dwop>{dwop_class.__name__}")
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized)))
    self.assertIsInstance(restored, dwop_class)
    self.assertEqual(ours.get_config(), restored.get_config())


class TrainingTest(KerasTestCase):
  """model.fit with and without dwop reaches the same weights."""

  STEPS = 20

  def _fit(self, route, jit_compile=False):
    if route == "dwop_layers":
      model = grad_models.mobilenet(dwop.layers.DepthwiseConv2D,
                                    dwop.layers.SeparableConv2D)
    else:
      model = grad_models.mobilenet()
    with _spy() as spy:
      if route == "enabled":
        with dwop.enabled():
          history = grad_models.train(model, self.STEPS,
                                      jit_compile=jit_compile)
      else:
        history = grad_models.train(model, self.STEPS, jit_compile=jit_compile)
    self.assertTrue(np.isfinite(history.history["loss"]).all())
    return model, spy.call_count

  def test_same_weights_with_and_without_dwop(self):
    baseline, calls = self._fit("stock")
    self.assertEqual(calls, 0)
    for route in ("enabled", "dwop_layers"):
      model, calls = self._fit(route)
      self.assertGreater(calls, 0, route)
      self.assertLess(grad_models.max_weight_difference(baseline, model), 1e-4,
                      route)
      self.assertGreater(grad_models.max_weight_difference(
          baseline, grad_models.mobilenet()), 1e-2)  # training moved them

  @parameterized.named_parameters(("enabled", "enabled"),
                                  ("dwop_layers", "dwop_layers"))
  def test_jit_compile_falls_back(self, route):
    baseline, _ = self._fit("stock", jit_compile=True)
    model, _ = self._fit(route, jit_compile=True)
    self.assertTrue(model.jit_compile)
    self.assertLess(grad_models.max_weight_difference(baseline, model), 1e-4)

  @parameterized.named_parameters(
      (f"{policy}_{route}", policy, route)
      for policy in ("mixed_float16", "mixed_bfloat16")
      for route in ("enabled", "dwop_layers"))
  def test_mixed_precision(self, policy, route):
    keras.mixed_precision.set_global_policy(policy)
    if route == "dwop_layers":
      model = grad_models.mobilenet(dwop.layers.DepthwiseConv2D,
                                    dwop.layers.SeparableConv2D)
    else:
      model = grad_models.mobilenet()
    scope = dwop.enabled() if route == "enabled" else contextlib.nullcontext()
    with _spy() as spy, scope:
      history = grad_models.train(model, 5, epochs=4,
                                  optimizer=keras.optimizers.Adam(1e-2))
    loss = history.history["loss"]
    self.assertTrue(np.isfinite(loss).all(), loss)
    self.assertLess(loss[-1], loss[0])
    compute = policy.split("_")[1]
    self.assertIn(compute, {c.args[0].dtype.name for c in spy.call_args_list})


class SavingTest(KerasTestCase):
  """A model of dwop layers saves as .keras and SavedModel and trains on."""

  def test_keras_format(self):
    model = grad_models.mobilenet(dwop.layers.DepthwiseConv2D,
                                  dwop.layers.SeparableConv2D)
    grad_models.train(model, 2)
    x, _ = grad_models.data(1)
    path = os.path.join(self.get_temp_dir(), "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    types = {type(layer) for layer in restored.layers}
    self.assertContainsSubset(
        {dwop.layers.DepthwiseConv2D, dwop.layers.SeparableConv2D}, types)
    self.assertNotIn(keras.layers.DepthwiseConv2D, types)
    self.assertAllClose(model.predict(x, verbose=0),
                        restored.predict(x, verbose=0))
    before = restored.get_weights()
    history = restored.fit(*grad_models.data(3), batch_size=grad_models.BATCH,
                           verbose=0)
    self.assertTrue(np.isfinite(history.history["loss"]).all())
    self.assertGreater(max(np.abs(a - b).max() for a, b in
                           zip(before, restored.get_weights())), 0)
    self.assertIn(DWOP_OP, grad_models.uses_filter_op(restored))

  def test_saved_model(self):
    model = grad_models.mobilenet(dwop.layers.DepthwiseConv2D,
                                  dwop.layers.SeparableConv2D)
    grad_models.train(model, 2)
    x, y = grad_models.data(4)
    path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "saved")
    model.export(path, verbose=False)
    expected = model.predict(x[:8], verbose=0)
    np.save(path + "_x.npy", x)
    np.save(path + "_y.npy", y)
    np.save(path + "_expected.npy", expected)
    # A fresh process: TensorFlow refuses the graph until dwop's library is
    # loaded, then the restored model predicts the same and trains on.
    result = testing.run_python(f"""
        import json
        import numpy as np
        import tensorflow as tf
        import dwop
        path = {path!r}
        out = {{}}
        try:
          tf.saved_model.load(path)
          out["without_library"] = "loaded"
        except Exception as e:  # pylint: disable=broad-except
          out["without_library"] = str(e)[:200]
        dwop.load_library()
        restored = tf.saved_model.load(path)
        x = tf.constant(np.load(path + "_x.npy"))
        y = tf.constant(np.load(path + "_y.npy"))
        expected = np.load(path + "_expected.npy")
        out["predict_error"] = float(
            np.abs(restored.serve(x[:8]).numpy() - expected).max())
        variables = restored.trainable_variables

        @tf.function
        def step(x, y):
          with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(
                    y, restored.serve(x), from_logits=True))
          grads = tape.gradient(loss, variables)
          for v, g in zip(variables, grads):
            v.assign_sub(0.05 * g)
          return loss

        concrete = step.get_concrete_function(x[:8], y[:8])
        types = {{op.type for op in concrete.graph.get_operations()}}
        for f in concrete.graph._functions.values():
          types.update(n.op for n in f.definition.node_def)
        out["dwop_op"] = {DWOP_OP!r} in types
        out["tf_filter_op"] = {TF_FILTER_OP!r} in types
        out["losses"] = [float(step(x[:16], y[:16])) for _ in range(8)]
        print("RESULT" + json.dumps(out))
        """)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    out = json.loads(result.stdout.split("RESULT")[-1])
    self.assertIn("Op type not registered", out["without_library"])
    self.assertLess(out["predict_error"], 1e-5)
    self.assertTrue(out["dwop_op"])
    self.assertFalse(out["tf_filter_op"])
    self.assertTrue(np.isfinite(out["losses"]).all())
    self.assertLess(out["losses"][-1], out["losses"][0])


if __name__ == "__main__":
  absltest.main()
