"""The gradients of dwop's three ops, and the helpers every route shares.

The ops are bilinear, and their gradients are each other, every attribute
forwarded (so second-order gradients work for every attribute combination
dwop accepts, including the ones TensorFlow's CPU kernels ignore (dilations)
or refuse (NCHW, unequal strides)):

* `Dwop>DepthwiseConv2dNative(x, w)` -> (input gradient of (w, grad),
  filter gradient of (x, grad));
* `Dwop>DepthwiseConv2dBackpropInput(sizes, w, dy)` -> (None, filter
  gradient of (grad, dy), forward of (grad, w));
* `Dwop>DepthwiseConv2dBackpropFilter(x, sizes, dy)` -> (input gradient of
  (grad, dy), None, forward of (x, grad)).

`forward`, `input_grad` and `filter_grad` run dwop's ops, or, inside
XLA-compiled code (where a custom op cannot compile), TensorFlow's ops
(dwop/_decomposed.py where TensorFlow's are wrong). The registered gradients
and the routes of dwop/_switch.py call them through this module, so tests
can watch them.
"""

import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.ops import control_flow_util
from tensorflow.python.ops import gen_nn_ops

from dwop import _decomposed
from dwop import _loader

FORWARD_OP = "Dwop>DepthwiseConv2dNative"
INPUT_GRAD_OP = "Dwop>DepthwiseConv2dBackpropInput"
OP_TYPE = FILTER_GRAD_OP = "Dwop>DepthwiseConv2dBackpropFilter"


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


def skipped(op, index):
  """Whether the tape said it needs no gradient for input `index`."""
  return index in (getattr(op, "skip_input_indices", None) or ())


def forward(x, w, attrs):
  """The depthwise convolution: dwop's op; TensorFlow's ops in XLA."""
  if in_xla_context():
    return _decomposed.depthwise_forward(x, w, attrs)
  return _loader.load().dwop_depthwise_conv2d_native(x, w, **attrs)


def input_grad(input_sizes, w, dy, attrs):
  """dL/dinput of a depthwise convolution: dwop's op; TensorFlow's in XLA."""
  if in_xla_context():
    return _decomposed.input_grad(input_sizes, w, dy, attrs)
  return _loader.load().dwop_depthwise_conv2d_backprop_input(
      input_sizes, w, dy, **attrs)


def filter_grad(x, filter_sizes, dy, attrs):
  """dL/dfilter of a depthwise convolution: dwop's op; TensorFlow's in XLA."""
  if in_xla_context():
    return gen_nn_ops.depthwise_conv2d_native_backprop_filter(
        x, filter_sizes, dy, **attrs)
  return _loader.load().dwop_depthwise_conv2d_backprop_filter(
      x, filter_sizes, dy, **attrs)


def conv_grads(x, w, dy, attrs, need_input=True, need_filter=True):
  """(dL/dx, dL/dw) of TensorFlow's `DepthwiseConv2dNative(x, w, **attrs)`.

  dL/dx is TensorFlow's own `DepthwiseConv2dNativeBackpropInput`, exactly as
  TensorFlow's registered gradient computes it; dL/dw is `filter_grad`. A part
  that is not needed is returned as None. (The route of `dwop.enable()`.)
  """
  dx = dw = None
  if need_input:
    dx = gen_nn_ops.depthwise_conv2d_native_backprop_input(
        tf.shape(x), w, dy, **attrs)
  if need_filter:
    dw = filter_grad(x, tf.shape(w), dy, attrs)
  return dx, dw


@ops.RegisterGradient(FORWARD_OP)
def _dwop_forward_grad(op, grad):
  """Gradient of dwop's forward: [d/dinput, d/dfilter], both by dwop."""
  x, w = op.inputs
  attrs = op_attrs(op)
  dx = dw = None
  if not skipped(op, 0):
    dx = input_grad(tf.shape(x), w, grad, attrs)
  if not skipped(op, 1):
    dw = filter_grad(x, tf.shape(w), grad, attrs)
  return [dx, dw]


@ops.RegisterGradient(INPUT_GRAD_OP)
def _dwop_backprop_input_grad(op, grad):
  """Gradient of dwop's input gradient dx = B(w, dy), `grad` shaped as x:
  [None (input_sizes), d/dfilter = F(grad, dy), d/dout_backprop =
  conv(grad, w)]."""
  _, w, dy = op.inputs
  attrs = op_attrs(op)
  dw = ddy = None
  if not skipped(op, 1):
    dw = filter_grad(grad, tf.shape(w), dy, attrs)
  if not skipped(op, 2):
    ddy = forward(grad, w, attrs)
  return [None, dw, ddy]


@ops.RegisterGradient(FILTER_GRAD_OP)
def _dwop_backprop_filter_grad(op, grad):
  """Gradient of dwop's filter gradient dW = F(x, dy), `grad` shaped as W:
  [d/dinput = B(grad, dy), None (filter_sizes), d/dout_backprop =
  conv(x, grad)], since <F(x, dy), G> = <conv(x, G), dy>."""
  x, _, dy = op.inputs
  attrs = op_attrs(op)
  dx = ddy = None
  if not skipped(op, 0):
    dx = input_grad(tf.shape(x), grad, dy, attrs)
  if not skipped(op, 2):
    ddy = forward(x, grad, attrs)
  return [dx, None, ddy]
