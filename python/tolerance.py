"""dwop's one tolerance policy for a computed result of any of the three ops.

Every check of a result against the float64 oracle (python/reference.py) or
against another kernel uses `atol`: the test suites (through
testing.tolerance), python/gpu_check.py, python/fuzz and the sanitizer replay
(tests/sanitize/replay.cc, which reads the value `python -m fuzz --export`
writes for each case instead of restating the formula).

Each output element is a sum over N*OH*OW products. Its rounding error in a
dtype is bounded by the dtype's relative error (one accumulation in that
precision plus the final rounding to the output type) times the sum of
|x|*|dy| over the terms; with the suites' data (signed values of similar
size) that sum grows as sqrt(terms), so the bound is

    RTOL[dtype] * SAFETY * max|x| * max|dy| * sqrt(terms)

The same bound serves the forward and the input gradient, with their own
operands (input and filter; filter and out_backprop) and their own number of
products per output element (conv_terms).
Comparing two computed results (neither is exact) allows `factor` = 2.
Imports nothing but NumPy.
"""

import math

import numpy as np

# Relative error per dtype: half and bfloat16 accumulate in float32 and round
# the result once; float32 and float64 accumulate in their own precision.
RTOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-6,
        "float64": 1e-13}
SAFETY = 4.0
# Comparing two computed results: each may be off by the bound.
TWO_RESULTS = 2.0


def bound(dtype, max_x, max_dy, terms, factor=1.0):
  """The absolute tolerance from the magnitudes: max|x|, max|dy| and the
  number of products N*OH*OW summed into each output element."""
  return (factor * SAFETY * RTOL[dtype] * float(max_x) * float(max_dy) *
          math.sqrt(max(1.0, float(terms))) + 1e-30)


def atol(dtype, x, dy, terms, factor=1.0):
  """The absolute tolerance of a filter gradient of arrays x and dy (their
  non-finite elements ignored)."""
  def largest(a):
    a = np.abs(np.asarray(a, np.float64))
    return float(a[np.isfinite(a)].max(initial=0.0))
  return bound(dtype, largest(x), largest(dy), terms, factor)


def terms_of(out_backprop_nhwc):
  """N*OH*OW of an out_backprop shape in NHWC order."""
  n, oh, ow, _ = out_backprop_nhwc
  return n * oh * ow


def conv_terms(op, filter_shape):
  """Products summed into one element of the forward's output ("forward":
  KH*KW) or of the input gradient ("input_grad": at most KH*KW*M, every tap
  of every multiplier)."""
  kh, kw, _, m = (int(v) for v in filter_shape)
  return kh * kw * (m if op == "input_grad" else 1)


def conv_atol(op, dtype, a, b, filter_shape, factor=1.0):
  """atol of a forward ("forward": operands input and filter) or input
  gradient ("input_grad": filter and out_backprop) result."""
  return atol(dtype, a, b, conv_terms(op, filter_shape), factor)
