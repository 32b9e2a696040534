"""pfor converters: `tf.vectorized_map` and `GradientTape.jacobian` on dwop.

Without a converter, pfor runs an op it does not know in a while_loop (one
call per iteration). These converters turn the loop into one call of the
same op:

* the filter is the same in every iteration (the usual case: per-example
  gradients, a batch of inputs through one layer): the loop dimension is
  folded into the batch, `[L, N, ...] -> [L*N, ...]`, and unfolded after;
* the filter (or `filter_sizes`' input) varies too: the loop dimension is
  folded into the channels, as TensorFlow's own converters of
  `DepthwiseConv2dNative*` do (`[L, KH, KW, C, M] -> [KH, KW, C*L, M]`, a
  depthwise convolution keeps channels apart).

The filter gradient always folds into the channels (its output is a filter).
"""

from tensorflow.python.ops import array_ops
from tensorflow.python.ops import math_ops
from tensorflow.python.ops.parallel_for import pfor as _pfor_lib
from tensorflow.python.ops.parallel_for.pfor import RegisterPFor

FORWARD = "Dwop>DepthwiseConv2dNative"
INPUT_GRAD = "Dwop>DepthwiseConv2dBackpropInput"
FILTER_GRAD = "Dwop>DepthwiseConv2dBackpropFilter"

# TensorFlow's helpers for its own depthwise converters (TensorFlow 2.21,
# pinned): loop dimension into / out of an inner dimension.
_flatten_with_inner_dim = _pfor_lib._flatten_with_inner_dim  # pylint: disable=protected-access
_unflatten_with_inner_dim = _pfor_lib._unflatten_with_inner_dim  # pylint: disable=protected-access
_flatten_first_two_dims = _pfor_lib._flatten_first_two_dims  # pylint: disable=protected-access
_unflatten_first_dim = _pfor_lib._unflatten_first_dim  # pylint: disable=protected-access
_create_op = _pfor_lib._create_op  # pylint: disable=protected-access
wrap = _pfor_lib.wrap


def _run(pfor_input, op_type, inputs):
  return _create_op(op_type, inputs, [x.dtype for x in pfor_input.outputs],
                    attrs=pfor_input.op.node_def.attr).outputs[0]


def _channel_dim(pfor_input):
  return 1 if pfor_input.get_attr("data_format") == b"NCHW" else 3


def _is_stacked(pfor_input, index):
  return pfor_input.input(index)[1]


@RegisterPFor(FORWARD)
def _convert_forward(pfor_input):
  """y = conv(x, w): batch fold for a loop-invariant w, else channel fold."""
  loop_len = pfor_input.pfor.loop_len_vector
  if not _is_stacked(pfor_input, 1):
    x = _flatten_first_two_dims(pfor_input.stacked_input(0))
    y = _run(pfor_input, FORWARD, [x, pfor_input.unstacked_input(1)])
    return wrap(_unflatten_first_dim(y, loop_len), True)
  c_dim = _channel_dim(pfor_input)
  x = _flatten_with_inner_dim(pfor_input.stacked_input(0), c_dim + 1, 5)
  w = _flatten_with_inner_dim(pfor_input.stacked_input(1), 3, 5)
  y = _run(pfor_input, FORWARD, [x, w])
  return wrap(_unflatten_with_inner_dim(y, c_dim, 4, loop_len[0]), True)


@RegisterPFor(INPUT_GRAD)
def _convert_input_grad(pfor_input):
  """dx = B(input_sizes, w, dy): batch fold for a loop-invariant w."""
  loop_len = pfor_input.pfor.loop_len_vector
  if _is_stacked(pfor_input, 0):
    # Per-iteration input sizes: only the fully general loop can do that.
    return _pfor_lib._fallback_converter(  # pylint: disable=protected-access
        pfor_input, root_cause="stacked input_sizes")
  input_sizes = pfor_input.unstacked_input(0)
  ones = array_ops.ones([3], input_sizes.dtype)
  if not _is_stacked(pfor_input, 1):
    scale = array_ops.concat(
        [math_ops.cast(loop_len, input_sizes.dtype), ones], 0)
    dy = _flatten_first_two_dims(pfor_input.stacked_input(2))
    dx = _run(pfor_input, INPUT_GRAD,
              [input_sizes * scale, pfor_input.unstacked_input(1), dy])
    return wrap(_unflatten_first_dim(dx, loop_len), True)
  c_dim = _channel_dim(pfor_input)
  scale = array_ops.concat(
      [array_ops.ones([c_dim], input_sizes.dtype),
       math_ops.cast(loop_len, input_sizes.dtype),
       array_ops.ones([3 - c_dim], input_sizes.dtype)], 0)
  w = _flatten_with_inner_dim(pfor_input.stacked_input(1), 3, 5)
  dy = _flatten_with_inner_dim(pfor_input.stacked_input(2), c_dim + 1, 5)
  dx = _run(pfor_input, INPUT_GRAD, [input_sizes * scale, w, dy])
  return wrap(_unflatten_with_inner_dim(dx, c_dim, 4, loop_len[0]), True)


@RegisterPFor(FILTER_GRAD)
def _convert_filter_grad(pfor_input):
  """dw = F(x, filter_sizes, dy): the loop folded into the channels."""
  if _is_stacked(pfor_input, 1):
    return _pfor_lib._fallback_converter(  # pylint: disable=protected-access
        pfor_input, root_cause="stacked filter_sizes")
  loop_len = pfor_input.pfor.loop_len_vector
  c_dim = _channel_dim(pfor_input)
  x = _flatten_with_inner_dim(pfor_input.stacked_input(0), c_dim + 1, 5)
  filter_sizes = pfor_input.unstacked_input(1)
  scale = array_ops.concat(
      [array_ops.ones([2], filter_sizes.dtype),
       math_ops.cast(loop_len, filter_sizes.dtype),
       array_ops.ones([1], filter_sizes.dtype)], 0)
  dy = _flatten_with_inner_dim(pfor_input.stacked_input(2), c_dim + 1, 5)
  dw = _run(pfor_input, FILTER_GRAD, [x, filter_sizes * scale, dy])
  return wrap(_unflatten_with_inner_dim(dw, 2, 4, loop_len[0]), True)

