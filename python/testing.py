"""Helpers shared by the test suites: dtypes, tolerances, subprocesses.

Lives in python/ (pytest's pythonpath, Bazel's imports), with the case
table and the oracle, so that tools and suites share it.

Imports neither TensorFlow nor dwop, so TensorFlow-free suites can use it.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

import tolerance as tolerance_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = tolerance_policy.RTOL


def numpy_dtype(name):
  """The NumPy dtype of a dwop dtype name (bfloat16 through ml_dtypes)."""
  if name == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(name)


def tolerance(dtype, x, dy, case):
  """Absolute tolerance for a filter gradient of a case computed in `dtype`
  (the policy of python/tolerance.py)."""
  return tolerance_policy.atol(dtype, x, dy,
                               tolerance_policy.terms_of(case.out_backprop_nhwc))


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


def oracle(case, x, dy):
  """The float64 reference gradient of a case (python/reference.py)."""
  import reference  # pylint: disable=g-import-not-at-top
  return reference.depthwise_conv2d_backprop_filter(
      x, case.filter, dy, case.tf_strides, case.tf_padding, case.data_format,
      case.tf_dilations)


def max_error(got, want):
  """max |got - want| in float64 (0 for empty arrays)."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  if got.shape != want.shape:
    raise AssertionError(f"shape {got.shape} != expected {want.shape}")
  return float(np.abs(got - want).max(initial=0.0))


def assert_close(got, want, atol, what):
  """Raises AssertionError unless got is finite and within atol of want."""
  got64 = np.asarray(got, np.float64)
  if not np.isfinite(got64).all():
    raise AssertionError(f"{what}: {np.size(got64) - np.isfinite(got64).sum()}"
                         " non-finite elements (unwritten output?)")
  err = max_error(got64, want)
  if not err <= atol:
    where = np.unravel_index(np.argmax(np.abs(got64 - want)), got64.shape)
    raise AssertionError(
        f"{what}: max error {err:.3g} > tolerance {atol:.3g} at {where}: "
        f"got {got64[where]!r}, expected {np.asarray(want)[where]!r}")
  return err


def check_case(case, x, dy, got, tf_result, tf_path):
  """The conformance checks of one case; raises AssertionError.

  got is dwop's gradient, tf_result TensorFlow's on a path where TensorFlow
  is right (python/tf_paths.py). Both must be within the dtype's tolerance of
  the float64 oracle and of each other; an empty case must give exact zeros;
  in half and bfloat16 dwop (float32 accumulation) must be at least as
  accurate as TensorFlow. Returns the two errors against the oracle.
  """
  got = np.asarray(got)
  if got.dtype != numpy_dtype(case.dtype):
    raise AssertionError(f"dtype {got.dtype}, expected {case.dtype}")
  if got.shape != tuple(case.filter):
    raise AssertionError(f"shape {got.shape}, expected {case.filter}")
  want = oracle(case, x, dy)
  if tf_path == "zeros":
    if np.any(want != 0):
      raise AssertionError("an empty case has a non-zero oracle")
    if np.any(np.asarray(got, np.float64) != 0):
      raise AssertionError(
          f"empty case: {np.count_nonzero(np.asarray(got, np.float64))} "
          "non-zero elements (uninitialised memory?)")
  tol = tolerance(case.dtype, x, dy, case)
  dwop_error = assert_close(got, want, tol, "dwop vs the float64 oracle")
  tf_error = assert_close(tf_result, want, tol,
                          f"TensorFlow ({tf_path}) vs the float64 oracle")
  assert_close(got, tf_result, tol, f"dwop vs TensorFlow ({tf_path})")
  if case.dtype in ("float16", "bfloat16") and dwop_error > tf_error:
    raise AssertionError(f"dwop's {case.dtype} error {dwop_error:.3g} exceeds "
                         f"TensorFlow's {tf_error:.3g}")
  return dwop_error, tf_error


RESULT_MARKER = "DWOP_CHILD_RESULT="


def run_python_json(code, env=None, timeout=300):
  """Runs `code` in a fresh interpreter and returns what it reported.

  The code calls `report(value)` (predefined) once with a JSON-serialisable
  value. Raises AssertionError, with the child's output, when it exits
  non-zero or reports nothing.
  """
  prelude = textwrap.dedent(f"""\
      import json as _json
      def report(value):
        print({RESULT_MARKER!r} + _json.dumps(value), flush=True)
      """)
  proc = run_python(prelude + textwrap.dedent(code), env=env, timeout=timeout)
  for line in proc.stdout.splitlines():
    if line.startswith(RESULT_MARKER):
      if proc.returncode == 0:
        import json  # pylint: disable=g-import-not-at-top
        return json.loads(line[len(RESULT_MARKER):])
  raise AssertionError(
      f"child exited with {proc.returncode} and no result\n"
      f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")


# Environment of a child process whose TensorFlow runs its native kernels
# (the variable is only read when TensorFlow starts).
NATIVE_TF = {"TF_ENABLE_ONEDNN_OPTS": "0"}
ONEDNN_TF = {"TF_ENABLE_ONEDNN_OPTS": "1"}
