"""`pip install --no-build-isolation .` builds and installs a working package."""

import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

import testing


class PipInstallTest(absltest.TestCase):

  def test_installed_package_computes_the_gradient(self):
    with tempfile.TemporaryDirectory() as target:
      # CUDA objects are covered by `make build`; skipping them here keeps the
      # test quick. --no-deps: TensorFlow is already in this interpreter.
      env = dict(os.environ, DWOP_CUDA="0")
      subprocess.run(
          [sys.executable, "-m", "pip", "install", "--quiet",
           "--no-build-isolation", "--no-deps", "--target", target,
           testing.ROOT],
          check=True, env=env, cwd=target, capture_output=True, timeout=900)
      self.assertTrue(
          os.path.isfile(os.path.join(target, "dwop", "_dwop_ops.so")))
      # Run from a directory without the source tree on the path, so only
      # the installed copy can be imported.
      result = subprocess.run(
          [sys.executable, "-c", """
import numpy as np, tensorflow as tf, dwop
assert dwop.__file__.startswith(%r), dwop.__file__
x = tf.ones([1, 5, 5, 2])
g = dwop.depthwise_conv2d_backprop_filter(x, [3, 3, 2, 1], x, [1, 1, 1, 1],
                                          "SAME")
print(g[:, :, 0, 0].numpy().tolist())
""" % target],
          env=dict(os.environ, PYTHONPATH=target, TF_CPP_MIN_LOG_LEVEL="2"),
          cwd=target, capture_output=True, text=True, timeout=300)
      self.assertEqual(result.returncode, 0, result.stderr)
      self.assertIn("[[16.0, 20.0, 16.0], [20.0, 25.0, 20.0], "
                    "[16.0, 20.0, 16.0]]", result.stdout)


if __name__ == "__main__":
  absltest.main()
