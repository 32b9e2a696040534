"""Helpers shared by the test suites: dtypes, tolerances, subprocesses.

Imports neither TensorFlow nor dwop, so TensorFlow-free suites can use it.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "python"), os.path.join(ROOT, "tests")):
  if _path not in sys.path:
    sys.path.insert(0, _path)

# Relative tolerance per dtype, applied to the scale of the sum (see
# `tolerance`): the rounding of one accumulation in that precision plus the
# final rounding to the output type.
RTOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-6, "float64": 1e-13}


def numpy_dtype(name):
  """The NumPy dtype of a dwop dtype name (bfloat16 through ml_dtypes)."""
  if name == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(name)


def tolerance(dtype, x, dy, case):
  """Absolute tolerance for a filter gradient computed in `dtype`.

  Each output is a sum over N*OH*OW products; its rounding error is bounded
  by the dtype's epsilon times the sum of |x|*|dy| over the terms, itself at
  most max|x| * max|dy| * terms. The output's own rounding is covered by the
  same relative factor.
  """
  n, oh, ow, _ = case.out_backprop_nhwc
  terms = max(1, n * oh * ow)
  scale = (np.abs(x).max(initial=0.0) * np.abs(dy).max(initial=0.0) *
           np.sqrt(terms) + 1e-30)
  return RTOL[dtype] * scale * 4


def run_python(code, env=None, timeout=300):
  """Runs `code` in a fresh interpreter; returns CompletedProcess.

  Used for calls that may abort the process (TensorFlow's oneDNN kernel does)
  and for settings that only take effect at TensorFlow start-up.
  """
  full_env = dict(os.environ)
  full_env["PYTHONPATH"] = os.pathsep.join(
      [ROOT, os.path.join(ROOT, "python"), os.path.join(ROOT, "tests"),
       full_env.get("PYTHONPATH", "")])
  full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                        env=full_env, capture_output=True, text=True,
                        timeout=timeout, check=False)
