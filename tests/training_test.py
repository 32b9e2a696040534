"""tf.distribute: MirroredStrategy over two logical CPU devices trains with
dwop and matches single-device training.

Logical devices must be configured before TensorFlow initialises its
devices, so the training runs in a fresh interpreter.
"""

import json

from absl.testing import absltest

import testing

_SCRIPT = """
import json
from unittest import mock

import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import dwop
from dwop import _grad
import dwop.layers
import grad_models

STEPS = 10


def fit(route, strategy):
  with strategy.scope():
    if route == "dwop_layers":
      model = grad_models.mobilenet(dwop.layers.DepthwiseConv2D,
                                    dwop.layers.SeparableConv2D,
                                    batch_norm=False)
    else:
      model = grad_models.mobilenet(batch_norm=False)
    with mock.patch.object(_grad, "filter_grad",
                           wraps=_grad.filter_grad) as spy:
      if route == "enabled":
        with dwop.enabled():
          history = grad_models.train(model, STEPS)
      else:
        history = grad_models.train(model, STEPS)
  return model, spy.call_count, history.history["loss"]


single = tf.distribute.OneDeviceStrategy("/cpu:0")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
baseline, _, _ = fit("stock", single)
out = {"replicas": mirrored.num_replicas_in_sync}
for route in ("enabled", "dwop_layers"):
  for name, strategy in (("single", single), ("mirrored", mirrored)):
    model, calls, loss = fit(route, strategy)
    out[f"{route}_{name}"] = {
        "calls": calls,
        "loss": loss,
        "difference": grad_models.max_weight_difference(baseline, model),
    }
out["moved"] = grad_models.max_weight_difference(
    baseline, grad_models.mobilenet(batch_norm=False))
print("RESULT" + json.dumps(out))
"""


class MirroredStrategyTest(absltest.TestCase):

  def test_mirrored_matches_single_device(self):
    result = testing.run_python(_SCRIPT)
    self.assertEqual(result.returncode, 0, result.stderr[-4000:])
    out = json.loads(result.stdout.split("RESULT")[-1])
    self.assertEqual(out["replicas"], 2)
    self.assertGreater(out["moved"], 1e-2)
    for route in ("enabled", "dwop_layers"):
      for name in ("single", "mirrored"):
        run = out[f"{route}_{name}"]
        self.assertGreater(run["calls"], 0, (route, name))
        self.assertLess(run["difference"], 1e-4, (route, name, run))


if __name__ == "__main__":
  absltest.main()
