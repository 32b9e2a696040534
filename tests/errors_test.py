"""Every validation rule of the op (cc/kernels/common/geometry.cc) and of its
Python API (dwop/_ops.py), eagerly and under tf.function.

Each rule asserts the error type and that the message names the argument, the
offending value and what was expected. Under tf.function the arguments are
traced with unknown shapes, so every rule reaches the kernel there too (the
shape function's own checks, which raise ValueError at trace time, are tested
in op_test.py and here for filter_sizes). Hostile calls (sizes that overflow,
giant filters, giant empty tensors) run in one child process, which must exit
cleanly.
"""

import dataclasses
import functools
import re

from absl.testing import absltest
from absl.testing import parameterized
import tensorflow as tf

import dwop
from dwop import _loader
import testing

BIG = 2**62
MODES = ("eager", "function")


@dataclasses.dataclass(frozen=True)
class Call:
  """One call of the op; the defaults are a valid 3x3 SAME problem."""
  input: tuple = (2, 9, 9, 4)
  filter_sizes: object = (3, 3, 4, 1)
  out_backprop: tuple = (2, 9, 9, 4)
  strides: tuple = (1, 1, 1, 1)
  padding: object = "SAME"
  data_format: str = "NHWC"
  dilations: tuple = (1, 1, 1, 1)
  # When set, the generated op is called directly with these attributes
  # (the Python API never passes explicit_paddings with SAME, for example).
  explicit_paddings: tuple = None
  sizes_dtype: str = "int32"
  dtype: str = "float32"

  def tensors(self):
    return (tf.zeros(self.input, self.dtype),
            tf.constant(self.filter_sizes, self.sizes_dtype),
            tf.zeros(self.out_backprop, self.dtype))

  def op(self, x, sizes, dy):
    if self.explicit_paddings is None:
      return dwop.depthwise_conv2d_backprop_filter(
          x, sizes, dy, list(self.strides), self.padding,
          data_format=self.data_format, dilations=list(self.dilations))
    return _loader.load().dwop_depthwise_conv2d_backprop_filter(
        input=x, filter_sizes=sizes, out_backprop=dy,
        strides=list(self.strides), padding=self.padding,
        explicit_paddings=list(self.explicit_paddings),
        data_format=self.data_format, dilations=list(self.dilations))

  def run(self, mode):
    """The op's result, eagerly or under tf.function with unknown shapes."""
    tensors = self.tensors()
    if mode == "eager":
      return self.op(*tensors)
    fn = tf.function(self.op, input_signature=[
        tf.TensorSpec(None, t.dtype) for t in tensors])
    return fn(*tensors)


def raised(call, mode):
  """[exception type name, message] of call.run(mode), or None."""
  try:
    call.run(mode)
  except Exception as e:  # pylint: disable=broad-except
    return [type(e).__name__, str(e)]
  return None


_NCHW = dict(input=(2, 4, 9, 9), out_backprop=(2, 4, 9, 9), data_format="NCHW")

# (name, call, regex the InvalidArgumentError's message must match).
RULES = [
    # Ranks.
    ("input_rank_3", Call(input=(9, 9, 4)),
     r"input must be 4-dimensional \(NHWC\), but got rank 3 with shape "
     r"\[9,9,4\]"),
    ("input_rank_5", Call(input=(2, 9, 9, 4, 1)),
     r"input must be 4-dimensional \(NHWC\), but got rank 5 with shape "
     r"\[2,9,9,4,1\]"),
    ("out_backprop_rank_3", Call(out_backprop=(9, 9, 4)),
     r"out_backprop must be 4-dimensional \(NHWC\), but got rank 3 with shape "
     r"\[9,9,4\]"),
    # filter_sizes.
    ("filter_sizes_rank_2", Call(filter_sizes=((3, 3), (4, 1))),
     r"filter_sizes must be a 1-D tensor \[filter_rows, filter_cols, "
     r"in_depth, depth_multiplier\], but got rank 2 with shape \[2,2\]"),
    ("filter_sizes_length_3", Call(filter_sizes=(3, 3, 4)),
     r"filter_sizes must have 4 entries \[filter_rows, filter_cols, in_depth, "
     r"depth_multiplier\], but got 3: filter_sizes=\[3,3,4\]"),
    ("filter_sizes_length_17", Call(filter_sizes=(1,) * 17),
     r"filter_sizes must have 4 entries .*, but got 17(?!:)"),
    ("filter_sizes_negative", Call(filter_sizes=(3, -3, 4, 1)),
     r"filter_sizes must be non-negative, but got filter_sizes=\[3,-3,4,1\]"),
    ("filter_sizes_negative_int64",
     Call(filter_sizes=(3, 3, 4, -BIG), sizes_dtype="int64"),
     r"filter_sizes must be non-negative, but got "
     rf"filter_sizes=\[3,3,4,-{BIG}\]"),
    # Shapes against each other.
    ("batch_mismatch", Call(out_backprop=(3, 9, 9, 4)),
     r"input and out_backprop must have the same batch size, but input has 2 "
     r"\(shape \[2,9,9,4\]\) and out_backprop has 3 \(shape \[3,9,9,4\]\)"),
    ("in_depth_mismatch", Call(filter_sizes=(3, 3, 5, 1)),
     r"filter_sizes\[2\] \(in_depth\) must equal the depth of input, 4 "
     r"\(input shape \[2,9,9,4\], data_format NHWC\), but got "
     r"filter_sizes=\[3,3,5,1\]"),
    ("in_depth_mismatch_nchw", Call(filter_sizes=(3, 3, 9, 1), **_NCHW),
     r"filter_sizes\[2\] \(in_depth\) must equal the depth of input, 4 "
     r"\(input shape \[2,4,9,9\], data_format NCHW\), but got "
     r"filter_sizes=\[3,3,9,1\]"),
    ("out_depth_mismatch", Call(filter_sizes=(3, 3, 4, 2)),
     r"out_backprop depth must be in_depth \* depth_multiplier = 4 \* 2 = 8, "
     r"but got 4 \(out_backprop shape \[2,9,9,4\], data_format NHWC\)"),
    ("rows_mismatch", Call(out_backprop=(2, 8, 9, 4)),
     r"out_backprop rows must be 9, the output size of the convolution "
     r"\(input rows 9, filter rows 3, dilation 1, stride 1, padding SAME\), "
     r"but got 8 \(out_backprop shape \[2,8,9,4\]\)"),
    ("cols_mismatch", Call(out_backprop=(2, 7, 8, 4), padding="VALID"),
     r"out_backprop cols must be 7, the output size of the convolution "
     r"\(input cols 9, filter cols 3, dilation 1, stride 1, padding VALID\), "
     r"but got 8"),
    ("rows_mismatch_dilated_shaped_as_tensorflow_does",
     Call(out_backprop=(2, 7, 7, 4), padding="VALID", dilations=(1, 2, 2, 1)),
     r"out_backprop rows must be 5, .*\(input rows 9, filter rows 3, "
     r"dilation 2, stride 1, padding VALID\), but got 7"),
    ("cols_mismatch_explicit",
     Call(out_backprop=(2, 10, 10, 4), padding=[[0, 0], [1, 2], [0, 1],
                                                [0, 0]]),
     r"out_backprop cols must be 8, .*\(input cols 9, filter cols 3, "
     r"dilation 1, stride 1, padding 0\+1\), but got 10"),
    ("negative_output_size",
     Call(input=(2, 2, 9, 4), filter_sizes=(5, 3, 4, 1),
          out_backprop=(2, 0, 7, 4), padding="VALID"),
     r"computed output rows would be negative: the effective filter \(5\) is "
     r"larger than the padded input \(2\) by more than the stride \(input "
     r"rows 2, filter rows 5, dilation 1, stride 1, padding VALID\)"),
    # Explicit paddings.
    ("explicit_paddings_negative",
     Call(padding=[[0, 0], [-1, 1], [1, 1], [0, 0]]),
     r"explicit_paddings must be non-negative, but got "
     r"explicit_paddings=\[0,0,-1,1,1,1,0,0\]"),
    ("explicit_paddings_batch", Call(padding=[[1, 0], [1, 1], [1, 1], [0, 0]]),
     r"explicit_paddings must be 0 in the batch and depth dimensions, but got "
     r"explicit_paddings=\[1,0,1,1,1,1,0,0\] for data_format NHWC"),
    ("explicit_paddings_depth_nchw",
     Call(padding=[[0, 0], [0, 1], [1, 1], [1, 1]], **_NCHW),
     r"explicit_paddings must be 0 in the batch and depth dimensions, but got "
     r"explicit_paddings=\[0,0,0,1,1,1,1,1\] for data_format NCHW"),
    ("explicit_paddings_length_6",
     Call(padding="EXPLICIT", explicit_paddings=(0, 0, 1, 1, 1, 1)),
     r"explicit_paddings must have 8 entries \(before and after each of the 4 "
     r"dimensions\) when padding is EXPLICIT, but got 6: "
     r"explicit_paddings=\[0,0,1,1,1,1\]"),
    ("explicit_paddings_missing", Call(padding="EXPLICIT",
                                       explicit_paddings=()),
     r"explicit_paddings must have 8 entries .* when padding is EXPLICIT, but "
     r"got 0: explicit_paddings=\[\]"),
    ("explicit_paddings_with_same",
     Call(padding="SAME", explicit_paddings=(0, 0, 1, 1, 1, 1, 0, 0)),
     r"explicit_paddings must be empty unless padding is EXPLICIT, but got "
     r"padding=SAME and explicit_paddings=\[0,0,1,1,1,1,0,0\]"),
    ("explicit_paddings_with_valid",
     Call(padding="VALID", explicit_paddings=(0,) * 8),
     r"explicit_paddings must be empty unless padding is EXPLICIT, but got "
     r"padding=VALID and explicit_paddings=\[0,0,0,0,0,0,0,0\]"),
]

# strides and dilations share their rules.
for _attr in ("strides", "dilations"):
  RULES += [
      (f"{_attr}_length_3", Call(**{_attr: (1, 1, 1)}),
       rf"{_attr} must have 4 entries, one per dimension of NHWC, but got 3: "
       rf"{_attr}=\[1,1,1\]"),
      (f"{_attr}_empty", Call(**{_attr: ()}),
       rf"{_attr} must have 4 entries, one per dimension of NHWC, but got 0: "
       rf"{_attr}=\[\]"),
      (f"{_attr}_zero", Call(**{_attr: (1, 0, 1, 1)}),
       rf"{_attr} must be positive in every dimension, but got "
       rf"{_attr}=\[1,0,1,1\]"),
      (f"{_attr}_negative", Call(**{_attr: (1, 1, -2, 1)}),
       rf"{_attr} must be positive in every dimension, but got "
       rf"{_attr}=\[1,1,-2,1\]"),
      (f"{_attr}_batch", Call(**{_attr: (2, 1, 1, 1)}),
       rf"{_attr} must be 1 in the batch and depth dimensions, but got "
       rf"{_attr}=\[2,1,1,1\] for data_format NHWC"),
      (f"{_attr}_depth", Call(**{_attr: (1, 1, 1, 3)}),
       rf"{_attr} must be 1 in the batch and depth dimensions, but got "
       rf"{_attr}=\[1,1,1,3\] for data_format NHWC"),
      (f"{_attr}_depth_nchw", Call(**{_attr: (1, 2, 1, 1)}, **_NCHW),
       rf"{_attr} must be 1 in the batch and depth dimensions, but got "
       rf"{_attr}=\[1,2,1,1\] for data_format NCHW"),
  ]

# Calls where a careless implementation could overflow, allocate without
# bound or crash: run in a child process.
HOSTILE_RULES = [
    ("filter_sizes_too_large", Call(filter_sizes=(32768, 32768, 4, 1)),
     r"filter_sizes=\[32768,32768,4,1\] describes a filter gradient of "
     r"4294967296 elements, more than the supported maximum of 2147483647"),
    ("filter_sizes_int64_too_large",
     Call(filter_sizes=(2**31, 1, 4, 1), sizes_dtype="int64"),
     r"filter_sizes=\[2147483648,1,4,1\] describes a filter gradient of "
     r"8589934592 elements, more than the supported maximum"),
    ("filter_sizes_bytes_overflow",
     Call(filter_sizes=(2**30, 2**30, 4, 1), sizes_dtype="int64"),
     r"filter_sizes shape \[1073741824,1073741824,4,1\] is too large: its "
     r"size in bytes overflows int64"),
    ("filter_sizes_elements_overflow_int32",
     Call(filter_sizes=(2**31 - 1,) * 4),
     r"filter_sizes shape \[2147483647,2147483647,2147483647,2147483647\] has "
     r"more elements than int64 can count"),
    ("filter_sizes_elements_overflow_int64",
     Call(filter_sizes=(BIG, BIG, 4, 1), sizes_dtype="int64"),
     rf"filter_sizes shape \[{BIG},{BIG},4,1\] has more elements than int64 "
     r"can count"),
    ("dilation_overflows_the_effective_filter",
     Call(dilations=(1, BIG, 1, 1)),
     r"effective filter rows \(filter - 1\) \* dilation \+ 1 overflows int64 "
     rf"\(input rows 9, filter rows 3, dilation {BIG}, stride 1, padding "
     r"SAME\)"),
    ("explicit_padding_overflows_the_output_size",
     Call(padding=[[0, 0], [BIG, BIG], [1, 1], [0, 0]]),
     r"output rows overflow int64 \(input rows 9, filter rows 3, dilation 1, "
     rf"stride 1, padding {BIG}\+{BIG}\)"),
    ("same_padding_overflows_on_a_huge_empty_input",
     Call(input=(0, BIG, 9, 4), filter_sizes=(2, 3, 4, 1),
          out_backprop=(0, BIG, 9, 4), dilations=(1, BIG, 1, 1)),
     rf"output rows overflow int64 \(input rows {BIG}, filter rows 2, "
     rf"dilation {BIG}, stride 1, padding SAME\)"),
]

# Hostile but valid: must succeed with an all-zero gradient.
HOSTILE_VALID = [
    ("huge_empty_input_and_out_backprop",
     Call(input=(0, 2**40, 2**40, 4), out_backprop=(0, 2**40, 2**40, 4))),
    ("huge_filter_with_no_elements",
     Call(filter_sizes=(BIG, 0, 4, 1), sizes_dtype="int64")),
    ("huge_stride_and_dilation_leave_no_output_rows",
     Call(strides=(1, BIG, 1, 1), dilations=(1, BIG, 1, 1),
          filter_sizes=(2, 3, 4, 1), padding="VALID",
          out_backprop=(2, 0, 7, 4))),
    ("huge_depth_multiplier_with_empty_batch",
     Call(input=(0, 9, 9, 1), filter_sizes=(0, BIG, 1, BIG),
          out_backprop=(0, 9, 9, BIG), sizes_dtype="int64")),
]


def _params(rules):
  return [(f"{name}_{mode}", call, regex, mode)
          for name, call, regex in rules for mode in MODES]


class ValidationTest(parameterized.TestCase):

  @parameterized.named_parameters(_params(RULES))
  def test_rule(self, call, regex, mode):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                "DepthwiseConv2dBackpropFilter: " + regex):
      call.run(mode)


class ShapeFunctionTest(parameterized.TestCase):
  """filter_sizes of a bad static shape fail when the graph is built."""

  @parameterized.named_parameters(
      ("rank_2", [2, 2], r"must be a 1-D tensor .*but got rank 2 with shape "
                         r"\[2,2\]"),
      ("length_3", [3], r"must have 4 entries .*but got 3"))
  def test_filter_sizes(self, shape, regex):
    call = Call()
    fn = tf.function(call.op, input_signature=[
        tf.TensorSpec(None), tf.TensorSpec(shape, tf.int32),
        tf.TensorSpec(None)])
    with self.assertRaisesRegex(ValueError, "filter_sizes " + regex):
      fn.get_concrete_function()


_HOSTILE_CHILD = """
import tensorflow as tf
import errors_test
results = {}
for name, call, _ in errors_test.HOSTILE_RULES:
  for mode in errors_test.MODES:
    print("running", name, mode, flush=True)
    results[f"{name}_{mode}"] = errors_test.raised(call, mode)
for name, call in errors_test.HOSTILE_VALID:
  for mode in errors_test.MODES:
    print("running", name, mode, flush=True)
    try:
      out = call.run(mode)  # NumPy cannot hold some of these shapes
      results[f"{name}_{mode}"] = [
          tf.shape(out, out_type=tf.int64).numpy().tolist(),
          int(tf.math.count_nonzero(out))]
    except Exception as e:  # reported to the parent
      results[f"{name}_{mode}"] = [type(e).__name__, str(e)]
report(results)
"""


@functools.lru_cache(maxsize=None)
def _hostile_results():
  return testing.run_python_json(_HOSTILE_CHILD, timeout=120)


class HostileTest(parameterized.TestCase):
  """Run in one child process, which must exit cleanly (no abort, no giant
  allocation); run_python_json fails every test, with the name of the call
  that was running, if it does not."""

  @parameterized.named_parameters(_params(HOSTILE_RULES))
  def test_rule(self, call, regex, mode):
    del call
    name = self._testMethodName[len("test_rule_"):]
    result = _hostile_results()[name]
    self.assertIsNotNone(result, "no error raised")
    self.assertEqual(result[0], "InvalidArgumentError", result[1])
    self.assertRegex(result[1], "DepthwiseConv2dBackpropFilter: " + regex)

  @parameterized.named_parameters(
      [(f"{name}_{mode}", call, mode) for name, call in HOSTILE_VALID
       for mode in MODES])
  def test_valid(self, call, mode):
    del mode
    name = self._testMethodName[len("test_valid_"):]
    shape, nonzero = _hostile_results()[name]
    self.assertEqual(shape, list(call.filter_sizes))
    self.assertEqual(nonzero, 0)


# Malformed `padding` lists: ValueError from Python, with tf.nn's message.
_BAD_PADDINGS = [
    ("explicit_string", "EXPLICIT"),
    ("element_not_a_pair", [[0, 0], 1, [1, 1], [0, 0]]),
    ("element_of_size_3", [[0, 0], [1, 1, 1], [1, 1], [0, 0]]),
    ("length_3", [[0, 0], [1, 1], [1, 1]]),
    ("length_5", [[0, 0]] * 5),
]


class PaddingArgumentTest(parameterized.TestCase):

  @parameterized.named_parameters(
      [(f"{name}_{mode}", padding, mode) for name, padding in _BAD_PADDINGS
       for mode in MODES])
  def test_same_error_as_tf_nn(self, padding, mode):
    call = Call(padding=padding)
    x, sizes, dy = call.tensors()
    with self.assertRaises(ValueError) as tf_error:
      tf.nn.depthwise_conv2d_backprop_filter(x, sizes, dy, [1, 1, 1, 1],
                                             padding)
    expected = str(tf_error.exception)
    self.assertRegex(expected, r"`?padding`?")
    with self.assertRaisesRegex(ValueError, re.escape(expected)):
      call.run(mode)


if __name__ == "__main__":
  absltest.main()
