"""The one table of named configurations shared by the suites and the benchmark.

A Case describes a depthwise convolution in layout-independent terms (input as
[N, H, W, C], spatial strides/dilations as (rows, cols)) and renders tf.nn's
arguments for its data_format. CONFORMANCE is the small-shape cross product
the correctness suites run; BENCH holds the layers of real networks from
bench_shapes.json.
"""

import dataclasses
import itertools
import json
import os

import numpy as np

import reference

DTYPES = ("float16", "bfloat16", "float32", "float64")
LAYOUTS = ("NHWC", "NCHW")


@dataclasses.dataclass(frozen=True)
class Case:
  """One depthwise convolution whose filter gradient is computed."""
  name: str
  input: tuple  # [N, H, W, C], whatever data_format says
  filter: tuple  # [KH, KW, C, M]
  strides: tuple = (1, 1)  # (rows, cols)
  padding: object = "SAME"  # "SAME", "VALID" or ((top, bottom), (left, right))
  dilations: tuple = (1, 1)  # (rows, cols)
  data_format: str = "NHWC"
  dtype: str = "float32"
  network: str = ""
  note: str = ""  # which kernel path or TensorFlow defect the case exercises

  def _per_dim(self, spatial, batch_depth):
    rows, cols = spatial
    if self.data_format == "NHWC":
      return [batch_depth, rows, cols, batch_depth]
    return [batch_depth, batch_depth, rows, cols]

  @property
  def input_shape(self):
    n, h, w, c = self.input
    return (n, h, w, c) if self.data_format == "NHWC" else (n, c, h, w)

  @property
  def tf_strides(self):
    return self._per_dim(self.strides, 1)

  @property
  def tf_dilations(self):
    return self._per_dim(self.dilations, 1)

  @property
  def tf_padding(self):
    """tf.nn's padding: a string or 4 [before, after] pairs."""
    if isinstance(self.padding, str):
      return self.padding
    return [list(p) for p in self._per_dim(self.padding, (0, 0))]

  @property
  def out_backprop_shape(self):
    return reference.out_backprop_shape(self.input_shape, self.filter,
                                        self.tf_strides, self.tf_padding,
                                        self.data_format, self.tf_dilations)

  @property
  def out_backprop_nhwc(self):
    shape = self.out_backprop_shape
    return shape if self.data_format == "NHWC" else (shape[0], shape[2],
                                                     shape[3], shape[1])

  @property
  def flops(self):
    n, oh, ow, oc = self.out_backprop_nhwc
    return 2 * n * oh * ow * oc * self.filter[0] * self.filter[1]

  @property
  def is_empty(self):
    return 0 in self.input or 0 in self.out_backprop_nhwc or 0 in self.filter

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def random_inputs(self, seed=0):
    """(input, out_backprop) as float64 arrays exactly representable in dtype.

    Values are small integers times a power of two, so every product and most
    sums are exact even in half precision, and errors come from the kernel,
    not from the data.
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(-8, 9, self.input_shape) / 8.0
    dy = rng.integers(-8, 9, self.out_backprop_shape) / 8.0
    return x, dy


def _geometries():
  """(name, input NHWC, filter, strides, padding, dilations, note)."""
  return [
      ("k3_same", (2, 9, 9, 4), (3, 3, 4, 1), (1, 1), "SAME", (1, 1), ""),
      ("k3_valid_m2", (2, 8, 7, 3), (3, 3, 3, 2), (1, 1), "VALID", (1, 1),
       "depth multiplier"),
      ("k3_s2_same", (2, 9, 8, 5), (3, 3, 5, 1), (2, 2), "SAME", (1, 1), ""),
      ("k3_s2_even_same", (1, 8, 8, 4), (3, 3, 4, 1), (2, 2), "SAME", (1, 1),
       "SAME pads 0 before, 1 after"),
      ("k4_same", (2, 7, 7, 3), (4, 4, 3, 1), (1, 1), "SAME", (1, 1),
       "even filter: pads 1 before, 2 after"),
      ("k5_s3_valid_m2", (2, 13, 11, 3), (5, 5, 3, 2), (3, 3), "VALID",
       (1, 1), ""),
      ("k3_s1x2_same", (2, 9, 10, 4), (3, 3, 4, 1), (1, 2), "SAME", (1, 1),
       "unequal strides (TensorFlow's native kernel rejects them)"),
      ("k3_s2x3_valid", (2, 11, 13, 3), (3, 3, 3, 1), (2, 3), "VALID", (1, 1),
       "unequal strides"),
      ("k3_d2_same", (2, 11, 11, 4), (3, 3, 4, 1), (1, 1), "SAME", (2, 2),
       "dilation (TensorFlow's CPU kernels ignore it)"),
      ("k3_d2x3_valid_m3", (1, 12, 13, 2), (3, 3, 2, 3), (1, 1), "VALID",
       (2, 3), "unequal dilations"),
      ("k3_s2_d2_same", (2, 13, 12, 3), (3, 3, 3, 1), (2, 2), "SAME", (2, 2),
       "stride and dilation together"),
      ("k3_explicit", (2, 7, 8, 3), (3, 3, 3, 1), (1, 1), ((1, 2), (0, 3)),
       (1, 1), "asymmetric explicit padding"),
      ("k2_explicit_wide", (1, 5, 6, 2), (2, 2, 2, 1), (1, 1),
       ((4, 5), (6, 3)), (1, 1), "explicit pads larger than the filter"),
      ("k3_explicit_s2_d2", (2, 10, 9, 3), (3, 3, 3, 2), (2, 2),
       ((2, 1), (1, 2)), (2, 2), ""),
      ("k1_same", (2, 5, 5, 6), (1, 1, 6, 1), (1, 1), "SAME", (1, 1),
       "1x1 filter"),
      ("k7_same_c17", (2, 12, 12, 17), (7, 7, 17, 1), (1, 1), "SAME", (1, 1),
       "channel count not a multiple of any vector width"),
      ("k1x5_same", (2, 8, 9, 3), (1, 5, 3, 1), (1, 1), "SAME", (1, 1),
       "non-square filter"),
      ("k5x1_valid", (2, 8, 9, 3), (5, 1, 3, 1), (1, 1), "VALID", (1, 1),
       "non-square filter"),
      ("k5_bigger_than_input", (1, 3, 3, 2), (5, 5, 2, 1), (1, 1), "SAME",
       (1, 1), "filter larger than the input"),
      ("k3_stride_over_input", (1, 3, 3, 2), (3, 3, 2, 1), (5, 5), "SAME",
       (1, 1), "stride larger than the input"),
      ("k3_c33_m3", (1, 6, 6, 33), (3, 3, 33, 3), (1, 1), "SAME", (1, 1),
       "vector tail with a multiplier"),
      ("k13_same", (1, 16, 16, 8), (13, 13, 8, 1), (1, 1), "SAME", (1, 1),
       "large filter"),
      ("k3_c64_b1", (1, 10, 10, 64), (3, 3, 64, 1), (1, 1), "SAME", (1, 1),
       "batch 1, whole vectors"),
      ("empty_batch", (0, 5, 5, 3), (3, 3, 3, 1), (1, 1), "SAME", (1, 1),
       "empty: TensorFlow's native kernel returns uninitialised memory"),
      ("empty_rows", (2, 0, 5, 3), (3, 3, 3, 1), (1, 1), "SAME", (1, 1),
       "empty input and out_backprop"),
      ("empty_valid_window", (2, 2, 5, 3), (3, 3, 3, 1), (1, 1), "VALID",
       (1, 1), "filter overhangs the input: 0 output rows"),
      ("empty_depth", (2, 5, 5, 0), (3, 3, 0, 2), (1, 1), "SAME", (1, 1),
       "in_depth 0"),
      ("empty_multiplier", (2, 5, 5, 3), (3, 3, 3, 0), (1, 1), "SAME", (1, 1),
       "depth multiplier 0"),
      ("empty_filter", (2, 5, 5, 3), (0, 0, 3, 1), (1, 1), "VALID", (1, 1),
       "0x0 filter: empty output, 6x6 out_backprop"),
      ("padding_only_window", (2, 0, 4, 2), (3, 3, 2, 1), (1, 1),
       ((2, 2), (1, 1)), (1, 1),
       "empty input, non-empty out_backprop: the gradient is zero"),
  ]


def _conformance():
  cases = []
  for geometry, layout, dtype in itertools.product(_geometries(), LAYOUTS,
                                                   DTYPES):
    name, x, f, s, p, d, note = geometry
    cases.append(Case(f"{name}_{layout.lower()}_{dtype}", x, f, s, p, d,
                      layout, dtype, note=note))
  return cases


def _bench():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "bench_shapes.json")
  with open(path) as f:
    entries = json.load(f)["cases"]
  return [
      Case(e["name"], tuple(e["input"]), tuple(e["filter"]),
           tuple(e["strides"]), e["padding"], tuple(e["dilations"]),
           e["data_format"], e["dtype"], network=e["network"])
      for e in entries
  ]


CONFORMANCE = _conformance()
BENCH = _bench()


def named(cases):
  """absl parameterized.named_parameters arguments: one test per case."""
  return [(c.name, c) for c in cases]


def geometry_name(case):
  """The geometry a CONFORMANCE case was made from (its name less the
  _<layout>_<dtype> suffix)."""
  return case.name.rsplit("_", 2)[0]


def cross_section(cases):
  """One case per geometry, its layout and dtype rotating from one geometry to
  the next: every geometry, layout and dtype at a fraction of the cost, for
  the slower variants (tf.function, C ABI thread counts, subprocesses)."""
  by_geometry = {}
  for case in cases:
    by_geometry.setdefault(geometry_name(case), []).append(case)
  picked = []
  for i, group in enumerate(by_geometry.values()):
    layout = LAYOUTS[i % len(LAYOUTS)]
    dtype = DTYPES[(i // len(LAYOUTS) + i) % len(DTYPES)]
    picked.extend(c for c in group
                  if c.data_format == layout and c.dtype == dtype)
  return picked


def by_name(name, table=None):
  """The case called `name` in `table` (default: CONFORMANCE)."""
  for case in CONFORMANCE if table is None else table:
    if case.name == name:
      return case
  raise KeyError(name)
