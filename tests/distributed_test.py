"""Multi-worker training with dwop's layers: two workers on 127.0.0.1
(python/multiworker_example.py under MultiWorkerMirroredStrategy, a custom
training loop) end with identical weights. Marked slow: two TensorFlow
processes and a gRPC cluster on loopback ports."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np
import pytest

import testing
import multiworker_example  # python/, on the path through testing

STEPS = 6


@pytest.mark.slow
class MultiWorkerTest(absltest.TestCase):

  def test_two_localhost_workers_agree(self):
    configs = multiworker_example.worker_environments(2)
    for config in configs:
      for address in json.loads(config)["cluster"]["worker"]:
        self.assertTrue(address.startswith("127.0.0.1:"), address)
    with tempfile.TemporaryDirectory() as tmp:
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
      env["PYTHONPATH"] = os.pathsep.join(
          [testing.ROOT, env.get("PYTHONPATH", "")])
      outs = [os.path.join(tmp, f"worker{i}.npz") for i in range(2)]
      procs = [subprocess.Popen(
          [sys.executable,
           os.path.join(testing.ROOT, "python", "multiworker_example.py"),
           "--steps", str(STEPS), "--out", out],
          env=dict(env, TF_CONFIG=config), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True)
               for config, out in zip(configs, outs)]
      try:
        logs = [p.communicate(timeout=600)[0] for p in procs]
      finally:
        for p in procs:
          if p.poll() is None:
            p.kill()
      for p, log in zip(procs, logs):
        self.assertEqual(p.returncode, 0, log[-4000:])
      first, second = (dict(np.load(out)) for out in outs)
    weights = sorted(k for k in first if k.startswith("w"))
    self.assertNotEmpty(weights)
    for key in weights:
      # Bitwise: both workers apply the same all-reduced gradients.
      np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    # Training happened: the weights moved, identically on both workers.
    moved = [not np.array_equal(first[k], first["initial" + k[1:]])
             for k in weights]
    self.assertTrue(all(moved), moved)
    np.testing.assert_array_equal(first["losses"], second["losses"])
    self.assertLen(first["losses"], STEPS)


if __name__ == "__main__":
  absltest.main()
