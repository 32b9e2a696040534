"""Gradients: of dwop's op, and dwop as the filter gradient of TensorFlow's.

Three pieces:

* The gradient of `Dwop>DepthwiseConv2dBackpropFilter` itself (registered at
  import), so that second-order gradients (gradient penalties, Hessian-vector
  products) work for every attribute combination dwop accepts, including the
  ones TensorFlow's CPU kernels ignore (dilations) or refuse (NCHW, unequal
  strides).
* `conv_grads`: dL/dinput and dL/dfilter of a `DepthwiseConv2dNative` op, the
  input part by TensorFlow's own backprop-input op and the filter part by dwop
  (by TensorFlow's op under XLA, where a custom op cannot compile). Used by
  `dwop.depthwise_conv2d`, the Keras layers and `enable()`.
* `enable()` / `disable()` / `enabled()`: swap the gradient-registry entries
  of TensorFlow's `DepthwiseConv2dNative` and
  `DepthwiseConv2dNativeBackpropInput` for dwop's, and back.
"""

import contextlib
import threading

import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.framework import registry
from tensorflow.python.ops import control_flow_util
from tensorflow.python.ops import gen_nn_ops

from dwop import _loader

OP_TYPE = "Dwop>DepthwiseConv2dBackpropFilter"


def in_xla_context():
  """True while TensorFlow builds a graph that XLA compiles.

  That is the body of a `tf.function(jit_compile=True)` (Keras' `jit_compile`
  included), the backward function of one differentiated from outside, and
  `tpu.rewrite`/`xla.compile` regions: everything TensorFlow marks with an
  `XLAControlFlowContext`, on the graph being built or any graph enclosing it.
  """
  return control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph())


def _text(value):
  return value.decode() if isinstance(value, bytes) else value


def op_attrs(op):
  """The convolution attributes of a depthwise op, as keyword arguments."""
  return {
      "strides": list(op.get_attr("strides")),
      "padding": _text(op.get_attr("padding")),
      "explicit_paddings": list(op.get_attr("explicit_paddings")),
      "data_format": _text(op.get_attr("data_format")),
      "dilations": list(op.get_attr("dilations")),
  }


def _skipped(op, index):
  """Whether the tape said it needs no gradient for input `index`."""
  return index in (getattr(op, "skip_input_indices", None) or ())


def filter_grad(x, filter_sizes, dy, attrs):
  """dL/dfilter of a depthwise convolution: dwop's op; TensorFlow's in XLA."""
  if in_xla_context():
    return gen_nn_ops.depthwise_conv2d_native_backprop_filter(
        x, filter_sizes, dy, **attrs)
  return _loader.load().dwop_depthwise_conv2d_backprop_filter(
      x, filter_sizes, dy, **attrs)


def conv_grads(x, w, dy, attrs, need_input=True, need_filter=True):
  """(dL/dx, dL/dw) of `DepthwiseConv2dNative(x, w, **attrs)` given dL/dy.

  dL/dx is TensorFlow's own `DepthwiseConv2dNativeBackpropInput`, exactly as
  TensorFlow's registered gradient computes it; dL/dw is `filter_grad`. A part
  that is not needed is returned as None.
  """
  dx = dw = None
  if need_input:
    dx = gen_nn_ops.depthwise_conv2d_native_backprop_input(
        tf.shape(x), w, dy, **attrs)
  if need_filter:
    dw = filter_grad(x, tf.shape(w), dy, attrs)
  return dx, dw


# --- A forward depthwise convolution that is right for every attribute set.


def _spatial(values, data_format):
  """(rows, cols) entries of a 4-element per-dimension list."""
  return ((values[1], values[2]) if data_format == "NHWC" else
          (values[2], values[3]))


def native_supports(attrs):
  """Whether TensorFlow's CPU kernels compute this configuration correctly.

  They ignore or refuse dilations, refuse unequal strides, and refuse NCHW
  (without oneDNN); everything else (SAME, VALID, EXPLICIT, any stride, any
  multiplier) they get right on every device.
  """
  rows, cols = _spatial(attrs["strides"], attrs["data_format"])
  return (attrs["data_format"] == "NHWC" and rows == cols and
          all(d == 1 for d in attrs["dilations"]))


def _dim(t, i):
  """Static size of dimension i of t, or a scalar tensor when unknown."""
  size = t.shape[i]
  return size if size is not None else tf.shape(t)[i]


def _max0(value):
  return max(value, 0) if isinstance(value, int) else tf.maximum(value, 0)


def same_pads(in_size, filter_size, stride, dilation):
  """TensorFlow's SAME padding (before, after) along one dimension."""
  out_size = (in_size + stride - 1) // stride
  total = _max0((out_size - 1) * stride + (filter_size - 1) * dilation + 1 -
                in_size)
  return total // 2, total - total // 2


def depthwise_nhwc_decomposed(x, w, strides, padding, dilations, conv):
  """Depthwise convolution of an NHWC `x` as pad, stride-1 conv, subsample.

  The decomposition Keras uses when strides and dilations both exceed 1,
  which also gives unequal strides and explicit padding with dilation.

  Args:
    x: NHWC input.
    w: `[filter_height, filter_width, in_channels, channel_multiplier]`.
    strides: (rows, cols) strides.
    padding: "SAME", "VALID", or ((top, bottom), (left, right)).
    dilations: (rows, cols) dilation rates.
    conv: a `tf.nn.depthwise_conv2d`-like function used for the stride-1,
      VALID, dilated convolution.

  Returns:
    The NHWC output.
  """
  if padding == "SAME":
    padding = tuple(
        same_pads(_dim(x, 1 + i), _dim(w, i), strides[i], dilations[i])
        for i in range(2))
  if padding != "VALID":
    x = tf.pad(x, [[0, 0], list(padding[0]), list(padding[1]), [0, 0]])
  y = conv(x, w, [1, 1, 1, 1], "VALID", dilations=list(dilations))
  if tuple(strides) != (1, 1):
    y = y[:, ::strides[0], ::strides[1], :]
  return y


def depthwise_forward(x, w, attrs):
  """`DepthwiseConv2dNative(x, w, **attrs)` as it is defined, on any device.

  TensorFlow's native op where it is right (`native_supports`); otherwise
  NCHW is transposed to NHWC, and dilations or unequal strides are decomposed
  into explicit padding, a stride-1 dilated convolution
  (`tf.nn.depthwise_conv2d`, which dilates with space_to_batch) and a strided
  slice. Every op used has a correct registered gradient, so the result
  differentiates to any order.
  """
  if native_supports(attrs):
    return gen_nn_ops.depthwise_conv2d_native(x, w, **attrs)
  data_format = attrs["data_format"]
  strides = _spatial(attrs["strides"], data_format)
  dilations = _spatial(attrs["dilations"], data_format)
  padding = attrs["padding"]
  explicit = []
  if padding == "EXPLICIT":
    pads = attrs["explicit_paddings"]
    padding = _spatial([pads[2 * i:2 * i + 2] for i in range(4)], data_format)
    explicit = [0, 0, *padding[0], *padding[1], 0, 0]
  if data_format == "NCHW":
    x = tf.transpose(x, [0, 2, 3, 1])
  nhwc = {"strides": [1, *strides, 1], "dilations": [1, *dilations, 1],
          "padding": attrs["padding"], "explicit_paddings": explicit,
          "data_format": "NHWC"}
  if native_supports(nhwc):
    y = gen_nn_ops.depthwise_conv2d_native(x, w, **nhwc)
  else:
    y = depthwise_nhwc_decomposed(x, w, strides, padding, dilations,
                                  tf.nn.depthwise_conv2d)
  if data_format == "NCHW":
    y = tf.transpose(y, [0, 3, 1, 2])
  return y


def _statically_empty(*tensors):
  return any(t.shape.num_elements() == 0 for t in tensors)


@ops.RegisterGradient(OP_TYPE)
def _dwop_backprop_filter_grad(op, grad):
  """Gradient of dwop's op: [d/dinput, None (filter_sizes), d/dout_backprop].

  The op is bilinear: dW = F(x, dy) with <F(x, dy), G> = <conv(x, G), dy>, so
  d/d(out_backprop) = conv(x, G) and d/d(input) = conv_x^T(G, dy) (the
  backprop-input of conv with filter G), every attribute forwarded.
  TensorFlow's own ops compute both where they are right; otherwise the
  forward is `depthwise_forward` and d/dinput is its autodiff.
  """
  x, _, dy = op.inputs
  need_x, need_dy = not _skipped(op, 0), not _skipped(op, 2)
  if _statically_empty(x, dy, grad):
    return [tf.zeros_like(x) if need_x else None, None,
            tf.zeros_like(dy) if need_dy else None]
  attrs = op_attrs(op)
  if native_supports(attrs):
    dx = ddy = None
    if need_x:
      dx = gen_nn_ops.depthwise_conv2d_native_backprop_input(
          tf.shape(x), grad, dy, **attrs)
    if need_dy:
      ddy = gen_nn_ops.depthwise_conv2d_native(x, grad, **attrs)
    return [dx, None, ddy]
  if not need_x:
    return [None, None, depthwise_forward(x, grad, attrs)]
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = depthwise_forward(x, grad, attrs)
  dx = tape.gradient(y, x, output_gradients=dy)
  return [dx, None, y if need_dy else None]


# --- dwop as the gradient of TensorFlow's own ops.

_TF_ORIGINALS = {
    name: ops.gradient_registry.lookup(name)
    for name in ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput")
}


def _depthwise_conv2d_native_grad(op, grad):
  """dwop's gradient for TensorFlow's `DepthwiseConv2dNative`."""
  if in_xla_context():
    return _TF_ORIGINALS["DepthwiseConv2dNative"](op, grad)
  return list(conv_grads(op.inputs[0], op.inputs[1], grad, op_attrs(op),
                         need_input=not _skipped(op, 0),
                         need_filter=not _skipped(op, 1)))


def _depthwise_conv2d_native_backprop_input_grad(op, grad):
  """dwop's gradient for TensorFlow's `DepthwiseConv2dNativeBackpropInput`.

  The op is dx = B(w, dy); its filter gradient is the filter backprop of
  (grad, dy), computed by dwop (a gradient penalty's second-order term).
  """
  if in_xla_context():
    return _TF_ORIGINALS["DepthwiseConv2dNativeBackpropInput"](op, grad)
  _, w, dy = op.inputs
  attrs = op_attrs(op)
  dw = ddy = None
  if not _skipped(op, 1):
    dw = filter_grad(grad, tf.shape(w), dy, attrs)
  if not _skipped(op, 2):
    ddy = gen_nn_ops.depthwise_conv2d_native(grad, w, **attrs)
  return [None, dw, ddy]


_DWOP_GRADIENTS = {
    "DepthwiseConv2dNative": _depthwise_conv2d_native_grad,
    "DepthwiseConv2dNativeBackpropInput":
        _depthwise_conv2d_native_backprop_input_grad,
}

# The registry keeps one entry dict per op type; enable() puts dwop's in place
# and keeps what it replaced, disable() puts that very object back.
_entries = ops.gradient_registry._registry  # pylint: disable=protected-access
_DWOP_ENTRIES = {
    name: {registry._TYPE_TAG: fn,  # pylint: disable=protected-access
           registry._LOCATION_TAG: _entries[name][registry._LOCATION_TAG]}  # pylint: disable=protected-access
    for name, fn in _DWOP_GRADIENTS.items()
}
_replaced = {}
_lock = threading.Lock()
_explicit = False  # set by enable(), cleared by disable()
_scopes = 0  # enabled() blocks open, in any thread


def _apply():
  """Makes the registry match the state; called with _lock held."""
  from dwop import _routing  # pylint: disable=g-import-not-at-top
  on = _explicit or _scopes > 0
  for name, ours in _DWOP_ENTRIES.items():
    current = _entries[name]
    if on and current is not ours:
      _replaced[name] = current
      _entries[name] = ours
    elif not on and current is ours:
      _entries[name] = _replaced.pop(name)
  _routing.set_routed(on)  # stock Keras/tf.nn call sites onto dwop's ops


def enable():
  """Makes dwop the filter gradient of TensorFlow's depthwise convolutions.

  Swaps the gradient-registry entries of `DepthwiseConv2dNative` (the op of
  `tf.nn.depthwise_conv2d`, `tf.nn.separable_conv2d` and Keras'
  `DepthwiseConv2D`/`SeparableConv2D` on the TensorFlow backend) and of
  `DepthwiseConv2dNativeBackpropInput` (whose filter gradient a gradient
  penalty needs) for dwop's: dL/dfilter is computed by dwop's op, dL/dinput
  still by TensorFlow's backprop-input op. Inside XLA-compiled code
  (`jit_compile=True`) the gradient falls back to TensorFlow's own.

  TensorFlow looks the gradient function up when it builds a gradient: at
  `tape.gradient` for an eager tape; when a `tf.function` is traced, for a
  tape or `tf.gradients` inside it (Keras' train function included); at the
  first call under a tape of a traced `tf.function` differentiated from
  outside (its backward function is then cached with it). What was built
  before stays as it was: enable dwop before the first training step, or
  retrace (e.g. call `model.compile` again).

  The switch is process-wide (gradients are built in whichever thread runs
  the step, e.g. `tf.distribute`'s replica threads) and idempotent.

  Raises:
    dwop.LibraryError: If dwop's op library cannot be loaded.
  """
  global _explicit
  _loader.load()
  with _lock:
    _explicit = True
    _apply()


def disable():
  """Withdraws `enable()`: TensorFlow's own gradient functions are back.

  The registry entries hold again the very objects `enable()` replaced, so
  TensorFlow behaves exactly as if dwop had never been enabled. `enabled()`
  blocks still open (in any thread) keep dwop on until the last one exits.
  """
  global _explicit
  with _lock:
    _explicit = False
    _apply()


def is_enabled():
  """Whether TensorFlow's depthwise gradients are dwop's right now.

  Returns:
    True when the gradient-registry entries of both `DepthwiseConv2dNative`
    and `DepthwiseConv2dNativeBackpropInput` are dwop's.
  """
  return all(_entries[name] is ours for name, ours in _DWOP_ENTRIES.items())


@contextlib.contextmanager
def enabled():
  """Context manager (or decorator): dwop is on inside the block.

  Blocks nest and may overlap across threads: dwop stays on while any block
  is open or `enable()` is in force, and TensorFlow's gradients are restored
  when the last block exits. Gradients built inside the block (see
  `enable()` for when TensorFlow builds them) keep using dwop after it.

  Yields:
    None.

  Raises:
    dwop.LibraryError: If dwop's op library cannot be loaded.
  """
  global _scopes
  _loader.load()
  with _lock:
    _scopes += 1
    _apply()
  try:
    yield
  finally:
    with _lock:
      _scopes -= 1
      _apply()
