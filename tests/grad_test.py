"""Gradient wiring: the gradient of dwop's op, dwop.depthwise_conv2d and
dwop.separable_conv2d, and dwop.enable()/disable() for TensorFlow's own ops.

Everything is checked in float64 against the NumPy oracle, against
TensorFlow's own gradient where TensorFlow is right, or numerically with
tf.test.compute_gradient; in eager mode, inside tf.function, and under XLA
(jit_compile=True), where dwop must fall back to TensorFlow's op.
"""

import contextlib
import threading
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops

import dwop
from dwop import _grad
import cases
import reference

Case = cases.Case
DWOP_OP = "Dwop>DepthwiseConv2dBackpropFilter"
TF_FILTER_OP = "DepthwiseConv2dNativeBackpropFilter"

# Small geometries for the op's own gradient: every attribute TensorFlow's
# CPU kernels get wrong or refuse, in both layouts.
_SECOND_ORDER = [
    Case("same", (1, 5, 5, 2), (3, 3, 2, 1)),
    Case("valid_s2_m2", (1, 7, 6, 2), (3, 3, 2, 2), (2, 2), "VALID"),
    Case("same_s1x2", (1, 6, 7, 2), (3, 3, 2, 1), (1, 2)),
    Case("same_d2", (1, 7, 7, 2), (3, 3, 2, 1), dilations=(2, 2)),
    Case("valid_s2x1_d2x3", (1, 9, 8, 2), (3, 2, 2, 1), (2, 1), "VALID",
         (2, 3)),
    Case("explicit", (1, 5, 6, 2), (3, 3, 2, 1), padding=((1, 2), (0, 3))),
    Case("explicit_s2_d2_m2", (1, 8, 7, 2), (3, 3, 2, 2), (2, 2),
         ((2, 1), (1, 2)), (2, 2)),
]
SECOND_ORDER = [c.replace(name=f"{c.name}_{layout.lower()}", data_format=layout,
                          dtype="float64")
                for c in _SECOND_ORDER for layout in cases.LAYOUTS]

# Geometries tf.nn.depthwise_conv2d accepts on every CPU build (NHWC).
ROUTE_CASES = [
    Case("same_m2", (2, 7, 7, 3), (3, 3, 3, 2), dtype="float64"),
    Case("valid_s2", (2, 9, 8, 3), (3, 3, 3, 1), (2, 2), "VALID",
         dtype="float64"),
    Case("explicit", (2, 6, 7, 2), (3, 3, 2, 1), padding=((1, 2), (0, 3)),
         dtype="float64"),
    Case("same_d2", (2, 9, 9, 3), (3, 3, 3, 1), dilations=(2, 2),
         dtype="float64"),
    Case("valid_d2x3_m2", (1, 10, 11, 2), (3, 3, 2, 2), padding="VALID",
         dilations=(2, 3), dtype="float64"),
]
MODES = ("eager", "function", "jit", "function_outside", "jit_outside")


def oracle_input_grad(x_shape, w, dy, case):
  """float64 dL/dinput of the depthwise convolution, from its definition."""
  nchw = case.data_format == "NCHW"
  n, h, wd, c = case.input
  kh_size, kw_size, _, m = w.shape
  if nchw:
    dy = np.transpose(dy, (0, 2, 3, 1))
  oh, ow = dy.shape[1:3]
  sh, sw = case.strides
  dh, dw_ = case.dilations
  pad = case.padding
  rows, cols = (pad, pad) if isinstance(pad, str) else pad
  _, pt = reference.output_size(h, kh_size, sh, dh, rows)
  _, pl = reference.output_size(wd, kw_size, sw, dw_, cols)
  dx = np.zeros((n, h, wd, c))
  dy = dy.reshape(n, oh, ow, c, m)
  for kh in range(kh_size):
    for kw in range(kw_size):
      r = np.arange(oh) * sh + kh * dh - pt
      q = np.arange(ow) * sw + kw * dw_ - pl
      ri, qi = np.flatnonzero((r >= 0) & (r < h)), np.flatnonzero((q >= 0) &
                                                                  (q < wd))
      contribution = np.einsum("nhwcm,cm->nhwc", dy[:, ri][:, :, qi], w[kh, kw])
      np.add.at(dx, (slice(None), r[ri][:, None], q[qi][None, :]), contribution)
  assert tuple(x_shape) == case.input_shape
  return np.transpose(dx, (0, 3, 1, 2)) if nchw else dx


def graph_op_types(concrete_function):
  """Op types of a concrete function's graph and every function it calls."""
  types = {op.type for op in concrete_function.graph.get_operations()}
  for function in concrete_function.graph._functions.values():  # pylint: disable=protected-access
    types.update(node.op for node in function.definition.node_def)
  return types


def gradients(forward, inputs, dy, mode):
  """d<forward(*inputs), dy>/d(inputs), built and run in `mode`."""

  def inside(*args):
    with tf.GradientTape() as tape:
      tape.watch(args)
      y = forward(*args)
    return tape.gradient(y, args, output_gradients=dy)

  if mode == "eager":
    return inside(*inputs)
  if mode in ("function", "jit"):
    return tf.function(inside, jit_compile=mode == "jit")(*inputs)
  compiled = tf.function(forward, jit_compile=mode == "jit_outside")
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    y = compiled(*inputs)
  return tape.gradient(y, inputs, output_gradients=dy)


class DwopTestCase(parameterized.TestCase, tf.test.TestCase):
  """Starts and ends every test with dwop disabled."""
  # tf.test.TestCase's deprecated session helper is not a test.
  test_session = None

  def setUp(self):
    super().setUp()
    dwop.disable()
    self.addCleanup(dwop.disable)


class OpGradientTest(DwopTestCase):
  """The gradient of Dwop>DepthwiseConv2dBackpropFilter (second order)."""

  @parameterized.named_parameters(cases.named(SECOND_ORDER))
  def test_numerically(self, case):
    x, dy = case.random_inputs(seed=3)

    def op(x, dy):
      return dwop.depthwise_conv2d_backprop_filter(
          x, case.filter, dy, case.tf_strides, case.tf_padding,
          case.data_format, case.tf_dilations)

    theoretical, numerical = tf.test.compute_gradient(op, [x, dy])
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, atol=1e-8, rtol=1e-8)

  @parameterized.named_parameters(
      ("nhwc_d2_explicit", SECOND_ORDER[-2]),
      ("nchw_s1x2", SECOND_ORDER[5]),
  )
  def test_in_function(self, case):
    x, dy = case.random_inputs(seed=4)
    op = tf.function(lambda x, dy: dwop.depthwise_conv2d_backprop_filter(
        x, case.filter, dy, case.tf_strides, case.tf_padding, case.data_format,
        case.tf_dilations))
    theoretical, numerical = tf.test.compute_gradient(op, [x, dy])
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, atol=1e-8, rtol=1e-8)

  def test_filter_sizes_has_no_gradient(self):
    case = SECOND_ORDER[0]
    x, dy = case.random_inputs()
    with tf.Graph().as_default():
      sizes = tf.constant(case.filter)
      out = dwop.depthwise_conv2d_backprop_filter(
          tf.constant(x), sizes, tf.constant(dy), case.tf_strides, "SAME")
      op = out.op
      self.assertEqual(op.type, DWOP_OP)
      grads = ops.gradient_registry.lookup(DWOP_OP)(op, tf.ones_like(out))
      self.assertIsNone(grads[1])
      self.assertLen(grads, 3)

  @parameterized.named_parameters(("enabled", True), ("dwop_conv", False))
  def test_hessian_vector_product(self, use_enable):
    """d/dw of <d loss/dw, v>, which runs the op's own gradient."""
    case = ROUTE_CASES[0]
    x, _ = case.random_inputs()
    rng = np.random.default_rng(1)
    w = tf.constant(rng.standard_normal(case.filter))
    v = tf.constant(rng.standard_normal(case.filter))
    target = rng.standard_normal(case.out_backprop_shape)

    def hvp(conv):
      with tf.GradientTape() as outer:
        outer.watch(w)
        with tf.GradientTape() as inner:
          inner.watch(w)
          loss = tf.reduce_sum(
              (conv(x, w, case.tf_strides, "SAME") - target)**2)
        g = inner.gradient(loss, w)
        gv = tf.reduce_sum(g * v)
      return outer.gradient(gv, w)

    expected = hvp(tf.nn.depthwise_conv2d)
    if use_enable:
      with dwop.enabled(), mock.patch.object(
          _grad, "filter_grad", wraps=_grad.filter_grad) as spy:
        got = hvp(tf.nn.depthwise_conv2d)
      self.assertGreater(spy.call_count, 0)
    else:
      got = hvp(dwop.depthwise_conv2d)
    self.assertAllClose(expected, got, rtol=1e-10, atol=1e-10)

  @parameterized.named_parameters(
      ("enabled_same", True, 0), ("enabled_dilated", True, 3),
      ("dwop_conv_strided", False, 1), ("dwop_conv_dilated", False, 4))
  def test_gradient_penalty(self, use_enable, index):
    """d/dw of ||d loss/dx||^2: the filter gradient of the backprop-input."""
    case = ROUTE_CASES[index]
    x, _ = case.random_inputs()
    x = tf.constant(x)
    w = tf.constant(np.random.default_rng(2).standard_normal(case.filter))

    def penalty_grad(conv):
      with tf.GradientTape() as outer:
        outer.watch(w)
        with tf.GradientTape() as inner:
          inner.watch(x)
          y = conv(x, w, case.tf_strides, case.tf_padding,
                   dilations=case.dilations)
          loss = tf.reduce_sum(tf.sin(y))
        penalty = tf.reduce_sum(inner.gradient(loss, x)**2)
      return outer.gradient(penalty, w)

    expected = penalty_grad(tf.nn.depthwise_conv2d)
    if use_enable:
      with dwop.enabled():
        got = tf.function(lambda: penalty_grad(tf.nn.depthwise_conv2d))
        types = graph_op_types(got.get_concrete_function())
        got = got()
      self.assertIn(DWOP_OP, types)
      self.assertNotIn(TF_FILTER_OP, types)
    else:
      got = penalty_grad(dwop.depthwise_conv2d)
    self.assertAllClose(expected, got, rtol=1e-10, atol=1e-10)


class DepthwiseConv2dTest(DwopTestCase):
  """dwop.depthwise_conv2d and dwop.separable_conv2d."""

  @parameterized.named_parameters(cases.named(ROUTE_CASES))
  def test_against_oracle(self, case):
    x, dy = case.random_inputs(seed=5)
    w = np.random.default_rng(6).integers(-8, 9, case.filter) / 8.0
    args = (case.tf_strides, case.tf_padding)
    kwargs = {"dilations": list(case.dilations)}
    y = dwop.depthwise_conv2d(x, w, *args, **kwargs)
    self.assertAllEqual(tf.nn.depthwise_conv2d(x, w, *args, **kwargs), y)
    self.assertAllClose(
        reference.depthwise_conv2d(x, w, case.tf_strides, case.tf_padding,
                                   dilations=case.tf_dilations), y)
    conv = lambda x, w: dwop.depthwise_conv2d(x, w, *args, **kwargs)
    dx, dw = gradients(conv, [tf.constant(x), tf.constant(w)], dy, "eager")
    self.assertAllClose(oracle_input_grad(x.shape, w, dy, case), dx,
                        rtol=1e-12, atol=1e-12)
    self.assertAllClose(
        reference.depthwise_conv2d_backprop_filter(
            x, case.filter, dy, case.tf_strides, case.tf_padding,
            dilations=case.tf_dilations), dw, rtol=1e-12, atol=1e-12)

  @parameterized.named_parameters(
      ("float32", "float32", 1e-5), ("float16", "float16", 2e-2),
      ("bfloat16", "bfloat16", 1.5e-1))
  def test_dtypes(self, dtype, tolerance):
    case = ROUTE_CASES[3]
    x, dy = case.random_inputs(seed=7)
    w = np.random.default_rng(8).integers(-8, 9, case.filter) / 8.0
    cast = lambda a: tf.cast(a, dtype)
    forward = lambda x, w: dwop.depthwise_conv2d(
        x, w, case.tf_strides, "SAME", dilations=list(case.dilations))
    dx, dw = gradients(forward, [cast(x), cast(w)], cast(dy), "eager")
    self.assertEqual(dw.dtype, tf.as_dtype(dtype))
    self.assertAllClose(oracle_input_grad(x.shape, w, dy, case),
                        tf.cast(dx, tf.float64), rtol=tolerance, atol=tolerance)
    self.assertAllClose(
        reference.depthwise_conv2d_backprop_filter(
            x, case.filter, dy, case.tf_strides, "SAME",
            dilations=case.tf_dilations),
        tf.cast(dw, tf.float64), rtol=tolerance, atol=tolerance)

  def test_nchw(self):
    case = ROUTE_CASES[0].replace(data_format="NCHW", dtype="float32")
    x, dy = case.random_inputs(seed=9)
    w = np.random.default_rng(10).integers(-8, 9, case.filter) / 8.0
    x, w, dy = (tf.constant(a, tf.float32) for a in (x, w, dy))
    conv = lambda x, w: dwop.depthwise_conv2d(x, w, case.tf_strides, "SAME",
                                              data_format="NCHW")
    try:
      tf.nn.depthwise_conv2d(x, w, case.tf_strides, "SAME", data_format="NCHW")
    except tf.errors.UnimplementedError:
      self.skipTest("TensorFlow's forward refuses NCHW on this CPU build")
    dx, dw = gradients(conv, [x, w], dy, "eager")
    self.assertAllClose(oracle_input_grad(x.shape, w.numpy(), dy.numpy(), case),
                        dx, rtol=1e-5, atol=1e-5)
    self.assertAllClose(
        reference.depthwise_conv2d_backprop_filter(
            x.numpy(), case.filter, dy.numpy(), case.tf_strides, "SAME",
            "NCHW"), dw, rtol=1e-5, atol=1e-5)

  @parameterized.named_parameters(("same", 0), ("dilated", 3))
  def test_separable_matches_tensorflow(self, index):
    case = ROUTE_CASES[index]
    x, _ = case.random_inputs(seed=11)
    rng = np.random.default_rng(12)
    depthwise = rng.standard_normal(case.filter)
    pointwise = rng.standard_normal((1, 1, case.filter[2] * case.filter[3], 4))
    inputs = [tf.constant(a) for a in (x, depthwise, pointwise)]
    kwargs = {"dilations": list(case.dilations)}
    expected_y = tf.nn.separable_conv2d(*inputs, case.tf_strides,
                                        case.tf_padding, **kwargs)
    y = dwop.separable_conv2d(*inputs, case.tf_strides, case.tf_padding,
                              **kwargs)
    # dwop's forward kernel sums the taps in its own order: equal within
    # float64 rounding, not bitwise.
    self.assertAllClose(expected_y, y, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    expected = gradients(lambda *a: tf.nn.separable_conv2d(
        *a, case.tf_strides, case.tf_padding, **kwargs), inputs, dy, "eager")
    got = gradients(lambda *a: dwop.separable_conv2d(
        *a, case.tf_strides, case.tf_padding, **kwargs), inputs, dy, "eager")
    for e, g in zip(expected, got):
      self.assertAllClose(e, g, rtol=1e-12, atol=1e-12)

  def test_separable_nchw(self):
    # Where TensorFlow's CPU Conv2D refuses NCHW (its separable_conv2d too),
    # dwop's runs: the NHWC result, transposed, and its gradients.
    case = ROUTE_CASES[3]
    x, _ = case.random_inputs(seed=17)
    rng = np.random.default_rng(18)
    depthwise = rng.standard_normal(case.filter)
    pointwise = rng.standard_normal((1, 1, case.filter[2] * case.filter[3], 4))
    to_nchw = lambda a: tf.transpose(a, [0, 3, 1, 2])
    inputs = [tf.constant(a) for a in (x, depthwise, pointwise)]
    nchw_inputs = [to_nchw(inputs[0])] + inputs[1:]
    strides, dilations = list(case.tf_strides), list(case.dilations)
    nchw_strides = [1, 1] + strides[1:3]
    y = dwop.separable_conv2d(*inputs, strides, "SAME", dilations=dilations)
    y_nchw = dwop.separable_conv2d(*nchw_inputs, nchw_strides, "SAME",
                                   data_format="NCHW", dilations=dilations)
    self.assertAllClose(to_nchw(y), y_nchw, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    expected = gradients(lambda *a: dwop.separable_conv2d(
        *a, strides, "SAME", dilations=dilations), inputs, dy, "eager")
    got = gradients(lambda *a: dwop.separable_conv2d(
        *a, nchw_strides, "SAME", data_format="NCHW", dilations=dilations),
                    nchw_inputs, to_nchw(dy), "eager")
    self.assertAllClose(to_nchw(expected[0]), got[0], rtol=1e-12, atol=1e-12)
    for e, g in zip(expected[1:], got[1:]):
      self.assertAllClose(e, g, rtol=1e-12, atol=1e-12)

  def test_stride_with_dilation_is_computed_as_defined(self):
    """Where tf.nn.depthwise_conv2d warns and computes a wrong-sized
    convolution (tests/tf_defects_test.py), dwop's is right."""
    case = Case("s2_d2", (1, 11, 11, 2), (3, 3, 2, 1), (2, 2), "SAME", (2, 2),
                dtype="float64")
    x, dy = case.random_inputs(seed=15)
    w = np.random.default_rng(16).standard_normal(case.filter)
    forward = lambda x, w: dwop.depthwise_conv2d(
        x, w, case.tf_strides, "SAME", dilations=list(case.dilations))
    y = forward(tf.constant(x), tf.constant(w))
    self.assertAllClose(reference.depthwise_conv2d(
        x, w, case.tf_strides, "SAME", dilations=case.tf_dilations), y,
                        rtol=1e-12, atol=1e-12)
    dx, dw = gradients(forward, [tf.constant(x), tf.constant(w)], dy, "eager")
    self.assertAllClose(oracle_input_grad(x.shape, w, dy, case), dx,
                        rtol=1e-12, atol=1e-12)
    self.assertAllClose(reference.depthwise_conv2d_backprop_filter(
        x, case.filter, dy, case.tf_strides, "SAME",
        dilations=case.tf_dilations), dw, rtol=1e-12, atol=1e-12)


class RoutesTest(DwopTestCase):
  """Every route, in every mode: TensorFlow's values, dwop's op when allowed."""

  def _check(self, route, case, mode):
    x, dy = case.random_inputs(seed=13)
    rng = np.random.default_rng(14)
    w = rng.standard_normal(case.filter)
    args = (case.tf_strides, case.tf_padding)
    kwargs = {"dilations": list(case.dilations)}
    inputs = [tf.constant(x), tf.constant(w)]
    if route.startswith("separable"):
      inputs.append(tf.constant(rng.standard_normal(
          (1, 1, case.filter[2] * case.filter[3], 3))))
      stock, ours = tf.nn.separable_conv2d, dwop.separable_conv2d
      dy = rng.standard_normal(
          case.out_backprop_shape[:3] + (3,))
    else:
      stock, ours = tf.nn.depthwise_conv2d, dwop.depthwise_conv2d
    expected = gradients(lambda *a: stock(*a, *args, **kwargs), inputs, dy,
                         "eager")
    enable = route.endswith("enabled")
    conv = stock if enable else ours
    with mock.patch.object(_grad, "filter_grad",
                           wraps=_grad.filter_grad) as spy:
      with dwop.enabled() if enable else contextlib.nullcontext():
        got = gradients(lambda *a: conv(*a, *args, **kwargs), inputs, dy, mode)
    if not mode.startswith("jit"):  # under XLA TensorFlow's gradient is used
      self.assertGreater(spy.call_count, 0)
    for e, g in zip(expected, got):
      self.assertAllClose(e, g, rtol=1e-11, atol=1e-11)
    if route.startswith("depthwise"):
      self.assertAllClose(
          reference.depthwise_conv2d_backprop_filter(
              x, case.filter, dy, case.tf_strides, case.tf_padding,
              dilations=case.tf_dilations), got[1], rtol=1e-11, atol=1e-11)

  @parameterized.named_parameters(
      (f"{route}_{mode}_{case.name}", route, mode, case)
      for route in ("depthwise_enabled", "depthwise_dwop", "separable_enabled",
                    "separable_dwop")
      for mode in MODES
      for case in (ROUTE_CASES[0], ROUTE_CASES[2], ROUTE_CASES[4]))
  def test_route(self, route, mode, case):
    self._check(route, case, mode)

  @parameterized.named_parameters(("enabled", True), ("dwop_conv", False))
  def test_backward_graph(self, use_enable):
    """The dwop op is in the backward graph exactly when dwop is on."""
    case = ROUTE_CASES[3]
    x, _ = case.random_inputs()
    w = tf.constant(np.ones(case.filter))

    def step(conv):
      @tf.function
      def train_step(x):
        with tf.GradientTape() as tape:
          tape.watch(w)
          loss = tf.reduce_sum(conv(x, w, case.tf_strides, "SAME",
                                    dilations=case.dilations)**2)
        return tape.gradient(loss, w)
      return graph_op_types(train_step.get_concrete_function(tf.constant(x)))

    if use_enable:
      with dwop.enabled():
        on = step(tf.nn.depthwise_conv2d)
      off = step(tf.nn.depthwise_conv2d)
    else:
      on, off = step(dwop.depthwise_conv2d), step(tf.nn.depthwise_conv2d)
    self.assertIn(DWOP_OP, on)
    self.assertNotIn(TF_FILTER_OP, on)
    self.assertNotIn(DWOP_OP, off)
    self.assertIn(TF_FILTER_OP, off)

  @parameterized.named_parameters(("enabled", True), ("dwop_conv", False))
  def test_xla_falls_back_to_tensorflow(self, use_enable):
    case = ROUTE_CASES[0]
    x, _ = case.random_inputs()
    x = tf.constant(x)
    w = tf.constant(np.ones(case.filter))

    def step(conv):
      with tf.GradientTape() as tape:
        tape.watch(w)
        y = conv(x, w, case.tf_strides, "SAME")
      return tape.gradient(y, w)

    expected = step(tf.nn.depthwise_conv2d)
    compiled = tf.function(step, jit_compile=True)
    conv = tf.nn.depthwise_conv2d if use_enable else dwop.depthwise_conv2d
    with dwop.enabled() if use_enable else contextlib.nullcontext():
      types = graph_op_types(compiled.get_concrete_function(conv))
      got = compiled(conv)
    self.assertNotIn(DWOP_OP, types)
    self.assertIn(TF_FILTER_OP, types)
    self.assertAllClose(expected, got, rtol=1e-12, atol=1e-12)


class EnableTest(DwopTestCase):
  """The registry swap: identity, nesting, threads, lookup time."""

  NAMES = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput")

  def _functions(self):
    return [ops.gradient_registry.lookup(n) for n in self.NAMES]

  def test_disable_restores_the_same_objects(self):
    entries = [ops.gradient_registry._registry[n] for n in self.NAMES]  # pylint: disable=protected-access
    originals = self._functions()
    self.assertFalse(dwop.is_enabled())
    dwop.enable()
    dwop.enable()
    self.assertTrue(dwop.is_enabled())
    for original, now in zip(originals, self._functions()):
      self.assertIsNot(original, now)
    dwop.disable()
    dwop.disable()
    self.assertFalse(dwop.is_enabled())
    for original, now in zip(originals, self._functions()):
      self.assertIs(original, now)
    for entry, name in zip(entries, self.NAMES):
      self.assertIs(entry, ops.gradient_registry._registry[name])  # pylint: disable=protected-access

  def test_context_manager_nests(self):
    with dwop.enabled():
      self.assertTrue(dwop.is_enabled())
      with dwop.enabled():
        self.assertTrue(dwop.is_enabled())
      self.assertTrue(dwop.is_enabled())
    self.assertFalse(dwop.is_enabled())
    dwop.enable()
    with dwop.enabled():
      pass
    self.assertTrue(dwop.is_enabled())
    dwop.disable()
    with dwop.enabled():
      dwop.disable()  # withdraws enable() only: the block keeps dwop on
      self.assertTrue(dwop.is_enabled())
    self.assertFalse(dwop.is_enabled())

  def test_context_manager_restores_on_error(self):
    with self.assertRaises(ValueError):
      with dwop.enabled():
        raise ValueError("boom")
    self.assertFalse(dwop.is_enabled())

  def test_decorator(self):
    @dwop.enabled()
    def inside():
      return dwop.is_enabled()
    self.assertTrue(inside())
    self.assertFalse(dwop.is_enabled())

  def test_overlapping_blocks_in_threads(self):
    """Blocks in two threads that do not nest: on until the last one exits."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
      with dwop.enabled():
        a_in.set()
        b_in.wait()
      a_out.set()

    def b():
      a_in.wait()
      with dwop.enabled():
        b_in.set()
        a_out.wait()
        seen["after_a_exits"] = dwop.is_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    self.assertTrue(seen["after_a_exits"])
    self.assertFalse(dwop.is_enabled())

  def test_eager_tape_looks_up_at_gradient_time(self):
    x = tf.ones([1, 5, 5, 2])
    w = tf.ones([3, 3, 2, 1])
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(w)
      y = tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME")
    with mock.patch.object(_grad, "filter_grad",
                           wraps=_grad.filter_grad) as spy:
      with dwop.enabled():
        on = tape.gradient(y, w)
      self.assertEqual(spy.call_count, 1)
      off = tape.gradient(y, w)
      self.assertEqual(spy.call_count, 1)
    self.assertAllClose(off, on)

  def test_function_under_outer_tape_decides_at_first_call(self):
    x = tf.ones([1, 5, 5, 2])
    w = tf.ones([3, 3, 2, 1])

    def call_and_differentiate(function, enable_call, enable_gradient):
      with dwop.enabled() if enable_call else contextlib.nullcontext():
        with tf.GradientTape() as tape:
          tape.watch(w)
          y = function(x, w)
      with dwop.enabled() if enable_gradient else contextlib.nullcontext():
        return tape.gradient(y, w)

    conv = lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME")
    with mock.patch.object(_grad, "filter_grad",
                           wraps=_grad.filter_grad) as spy:
      built_off = tf.function(conv)
      call_and_differentiate(built_off, False, True)
      self.assertEqual(spy.call_count, 0)
      call_and_differentiate(built_off, True, True)  # cached backward
      self.assertEqual(spy.call_count, 0)
      call_and_differentiate(tf.function(conv), True, False)
      self.assertEqual(spy.call_count, 1)

  def test_traced_function_keeps_its_gradient(self):
    x = tf.ones([1, 5, 5, 2])
    w = tf.ones([3, 3, 2, 1])

    @tf.function
    def step():
      with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME")
      return tape.gradient(y, w)

    with dwop.enabled():
      types = graph_op_types(step.get_concrete_function())
    self.assertIn(DWOP_OP, types)
    self.assertIn(DWOP_OP, graph_op_types(step.get_concrete_function()))


if __name__ == "__main__":
  absltest.main()
