"""`enable()` / `disable()` / `enabled()`: route TensorFlow's ops to dwop.

They swap the gradient-registry entries of TensorFlow's
`DepthwiseConv2dNative` and `DepthwiseConv2dNativeBackpropInput` for dwop's,
and back. The gradient functions put in place compute dL/dfilter by dwop's
op (`_grad.filter_grad`), and fall back to TensorFlow's own gradients inside
XLA-compiled code.
"""

import contextlib
import threading

from tensorflow.python.framework import ops
from tensorflow.python.framework import registry
from tensorflow.python.ops import gen_nn_ops
import tensorflow as tf

from dwop import _grad
from dwop import _loader
from dwop import _routing

_TF_ORIGINALS = {
    name: ops.gradient_registry.lookup(name)
    for name in ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput")
}


def _depthwise_conv2d_native_grad(op, grad):
  """dwop's gradient for TensorFlow's `DepthwiseConv2dNative`."""
  if _grad.in_xla_context():
    return _TF_ORIGINALS["DepthwiseConv2dNative"](op, grad)
  return list(_grad.conv_grads(op.inputs[0], op.inputs[1], grad,
                               _grad.op_attrs(op),
                               need_input=not _grad.skipped(op, 0),
                               need_filter=not _grad.skipped(op, 1)))


def _depthwise_conv2d_native_backprop_input_grad(op, grad):
  """dwop's gradient for TensorFlow's `DepthwiseConv2dNativeBackpropInput`.

  The op is dx = B(w, dy); its filter gradient is the filter backprop of
  (grad, dy), computed by dwop (a gradient penalty's second-order term).
  """
  if _grad.in_xla_context():
    return _TF_ORIGINALS["DepthwiseConv2dNativeBackpropInput"](op, grad)
  _, w, dy = op.inputs
  attrs = _grad.op_attrs(op)
  dw = ddy = None
  if not _grad.skipped(op, 1):
    dw = _grad.filter_grad(grad, tf.shape(w), dy, attrs)
  if not _grad.skipped(op, 2):
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
