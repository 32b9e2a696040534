"""dwop's C ABI (cc/c_api/dwop_c.h) through ctypes, without TensorFlow.

Covers the version, dwop_validate's geometry, every status path a caller can
reach (bad arguments, NULL pointers, negative counts, NULL buffers, error
buffer sizes), and the reference kernel over the CONFORMANCE table against
the float64 oracle. cabi.py fills outputs with NaN before each call, so an
element a kernel fails to write fails the comparison. (The CPU kernel over
the same table, against both, with thread counts and determinism:
tests/cpu_kernel_test.py.)
"""

import ctypes

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import cabi
import cases
import testing

_LIB = cabi.Library()
_BACKENDS = ("reference", "cpu")


def _problem(**changes):
  """A valid 3x3 SAME problem [2, 9, 9, 4] -> [3, 3, 4, 1], with changes."""
  args = dict(dtype="float32", input_shape=(2, 9, 9, 4),
              filter_sizes=(3, 3, 4, 1), out_backprop_shape=(2, 9, 9, 4),
              strides=(1, 1, 1, 1), padding="SAME")
  args.update(changes)
  return _LIB.problem(**args)


def _call(entry, problem, buffers=None, error_size=256, error="buffer"):
  """Calls an entry point directly; returns (status name, error text, output).

  buffers: (input, out_backprop, filter_backprop) NumPy arrays or None for
  NULL; by default float32 arrays of _problem()'s shapes, the output
  NaN-poisoned. error: "buffer" (a buffer of error_size bytes pre-filled with
  'X'), or None for a NULL error pointer.
  """
  if buffers is None:  # the default problem's; a failing call reads none
    buffers = (np.ones([2, 9, 9, 4], np.float32),
               np.ones([2, 9, 9, 4], np.float32),
               np.full([3, 3, 4, 1], np.nan, np.float32))
  pointers = [None if b is None else b.ctypes.data_as(ctypes.c_void_p)
              for b in buffers]
  error_buffer = (ctypes.create_string_buffer(b"X" * error_size, error_size)
                  if error == "buffer" else None)
  args = [ctypes.byref(problem) if problem is not None else None]
  if entry == "validate":
    status = _LIB.lib.dwop_validate(args[0], None, error_buffer,
                                    ctypes.c_size_t(error_size))
  elif entry == "cpu":
    status = _LIB.lib.dwop_filter_grad_cpu(args[0], *pointers,
                                           ctypes.c_int32(1), error_buffer,
                                           ctypes.c_size_t(error_size))
  else:
    status = _LIB.lib.dwop_filter_grad_reference(args[0], *pointers,
                                                 error_buffer,
                                                 ctypes.c_size_t(error_size))
  text = error_buffer.raw if error_buffer is not None else None
  return cabi._STATUS[status], text, buffers[2]  # pylint: disable=protected-access


def _message(text):
  return text.split(b"\0", 1)[0].decode()


class VersionTest(absltest.TestCase):

  def test_abi_version(self):
    self.assertEqual(_LIB.lib.dwop_abi_version(), cabi.ABI_VERSION)
    self.assertEqual(cabi.ABI_VERSION, 2)

  def test_runs_without_tensorflow(self):
    # pytest may have imported TensorFlow for other suites: ask a fresh
    # interpreter whether this suite needs it.
    result = testing.run_python_json(
        "import sys, cabi_test\n"
        "cabi_test._LIB.validate(cabi_test._problem())\n"
        "report(sorted(m for m in sys.modules"
        " if m.startswith('tensorflow')))\n",
        timeout=60)
    self.assertEqual(result, [])


def _geometry_params():
  """Hand-checked geometries: (name, problem args, expected fields)."""
  return [
      ("same_even_input_stride_2",
       dict(input_shape=(1, 8, 8, 4), out_backprop_shape=(1, 4, 4, 4),
            strides=(1, 2, 2, 1)),
       dict(out_rows=4, out_cols=4, pad_top=0, pad_left=0, stride_rows=2,
            nchw=0)),
      ("same_even_filter",
       dict(input_shape=(2, 7, 7, 3), filter_sizes=(4, 4, 3, 1),
            out_backprop_shape=(2, 7, 7, 3)),
       dict(out_rows=7, out_cols=7, pad_top=1, pad_left=1, filter_rows=4)),
      ("valid_nchw_multiplier",
       dict(input_shape=(2, 3, 8, 7), filter_sizes=(3, 3, 3, 2),
            out_backprop_shape=(2, 6, 6, 5), padding="VALID",
            data_format="NCHW"),
       dict(batch=2, in_rows=8, in_cols=7, in_depth=3, depth_multiplier=2,
            out_rows=6, out_cols=5, pad_top=0, nchw=1)),
      ("explicit_dilated_unequal_strides",
       dict(input_shape=(2, 10, 9, 3), filter_sizes=(3, 3, 3, 1),
            out_backprop_shape=(2, 5, 3, 3), strides=(1, 2, 3, 1),
            dilations=(1, 2, 1, 1), padding=[[0, 0], [2, 1], [1, 0], [0, 0]]),
       dict(out_rows=5, out_cols=3, pad_top=2, pad_left=1, stride_rows=2,
            stride_cols=3, dilation_rows=2, dilation_cols=1)),
      ("valid_filter_overhangs_the_input",
       dict(input_shape=(2, 2, 5, 3), filter_sizes=(3, 3, 3, 1),
            out_backprop_shape=(2, 0, 3, 3), padding="VALID"),
       dict(out_rows=0, out_cols=3)),
  ]


class ValidateTest(parameterized.TestCase):

  @parameterized.named_parameters(_geometry_params())
  def test_geometry(self, args, expected):
    geometry = _LIB.validate(_problem(**args))
    for field, value in expected.items():
      self.assertEqual(geometry[field], value, field)

  @parameterized.named_parameters(
      cases.named(cases.cross_section(cases.CONFORMANCE)))
  def test_geometry_matches_the_oracle(self, case):
    geometry = _LIB.validate(_LIB.problem(
        case.dtype, case.input_shape, case.filter, case.out_backprop_shape,
        case.tf_strides, case.tf_padding, case.data_format,
        case.tf_dilations))
    n, oh, ow, _ = case.out_backprop_nhwc
    self.assertEqual((geometry["batch"], geometry["out_rows"],
                      geometry["out_cols"]), (n, oh, ow))
    self.assertEqual(geometry["nchw"], int(case.data_format == "NCHW"))
    self.assertEqual((geometry["stride_rows"], geometry["stride_cols"],
                      geometry["dilation_rows"], geometry["dilation_cols"]),
                     case.strides + case.dilations)

  def test_null_geometry_is_allowed(self):
    status, _, _ = _call("validate", _problem())
    self.assertEqual(status, "OK")


def _every_entry(params):
  return [(f"{name}_{entry}", *rest, entry) for name, *rest in params
          for entry in ("validate",) + _BACKENDS]


_BAD_PROBLEMS = [
    ("batch_mismatch", dict(out_backprop_shape=(3, 9, 9, 4)),
     r"input and out_backprop must have the same batch size, but input has 2"),
    ("padding_not_an_enum", dict(padding="FULL"),
     r"padding must be SAME, VALID or EXPLICIT, but got \"FULL\""),
    ("data_format_not_an_enum", dict(data_format="NCWH"),
     r"data_format must be NHWC or NCHW, but got \"NCWH\""),
    ("negative_input_dimension", dict(input_shape=(2, -9, 9, 4)),
     r"input has a negative dimension: \[2,-9,9,4\]"),
    ("negative_out_backprop_dimension", dict(out_backprop_shape=(2, 9, 9, -4)),
     r"out_backprop has a negative dimension: \[2,9,9,-4\]"),
    ("input_elements_overflow", dict(input_shape=(2**40, 2**40, 2**40, 4)),
     r"input shape \[1099511627776,1099511627776,1099511627776,4\] has more "
     r"elements than int64 can count"),
    ("out_backprop_bytes_overflow",
     dict(out_backprop_shape=(2**30, 2**30, 1, 4)),
     r"out_backprop shape \[1073741824,1073741824,1,4\] is too large: its "
     r"size in bytes overflows int64"),
]


class StatusTest(parameterized.TestCase):
  """Every failure returns DWOP_INVALID_ARGUMENT with a message and leaves
  the output as it was (NaN)."""

  def assertInvalid(self, entry, problem, regex, buffers=None):  # pylint: disable=invalid-name
    status, text, out = _call(entry, problem, buffers)
    self.assertEqual(status, "INVALID_ARGUMENT")
    self.assertRegex(_message(text), regex)
    if out is not None and entry != "validate":
      self.assertTrue(np.isnan(out).all(), "output written on failure")

  @parameterized.named_parameters(_every_entry(_BAD_PROBLEMS))
  def test_invalid_problem(self, changes, regex, entry):
    self.assertInvalid(entry, _problem(**changes),
                       "^DepthwiseConv2dBackpropFilter: " + regex)

  @parameterized.named_parameters(("validate", "validate"),
                                  ("reference", "reference"), ("cpu", "cpu"))
  def test_null_problem(self, entry):
    self.assertInvalid(entry, None, r"^problem is NULL$")

  @parameterized.named_parameters(
      _every_entry([("too_large", 7), ("negative", -1)]))
  def test_dtype_out_of_range(self, value, entry):
    problem = _problem()
    problem.dtype = value
    self.assertInvalid(entry, problem,
                       rf"^dwop_problem.dtype {value} is not a dwop_dtype$")

  @parameterized.named_parameters(_every_entry(
      [(f"{field}_{how}", field, how)
       for field in ("input_shape", "filter_sizes", "out_backprop_shape",
                     "strides", "explicit_paddings", "dilations")
       for how in ("null", "negative_count")]))
  def test_bad_array(self, field, how, entry):
    counts = {"input_shape": "input_rank", "filter_sizes": "num_filter_sizes",
              "out_backprop_shape": "out_backprop_rank",
              "strides": "num_strides",
              "explicit_paddings": "num_explicit_paddings",
              "dilations": "num_dilations"}
    problem = _problem()
    if how == "null":
      setattr(problem, field, None)
      setattr(problem, counts[field], 2)
    else:
      setattr(problem, counts[field], -1)
    self.assertInvalid(
        entry, problem,
        rf"^dwop_problem.{field} is NULL or has a negative count$")

  def test_null_array_with_zero_count_is_empty(self):
    problem = _problem()
    problem.explicit_paddings = None
    problem.num_explicit_paddings = 0
    self.assertEqual(_call("validate", problem)[0], "OK")

  @parameterized.named_parameters(_every_entry(
      [("padding", "padding"), ("data_format", "data_format")]))
  def test_null_string(self, field, entry):
    problem = _problem()
    setattr(problem, field, None)
    self.assertInvalid(entry, problem, rf"^dwop_problem.{field} is NULL$")

  @parameterized.named_parameters(
      [(f"{which}_{backend}", i, backend)
       for i, which in enumerate(("input", "out_backprop", "filter_backprop"))
       for backend in _BACKENDS])
  def test_null_buffer_of_a_non_empty_tensor(self, index, backend):
    buffers = [np.ones([2, 9, 9, 4], np.float32),
               np.ones([2, 9, 9, 4], np.float32),
               np.full([3, 3, 4, 1], np.nan, np.float32)]
    buffers[index] = None
    self.assertInvalid(backend, _problem(),
                       r"^a non-empty tensor's buffer is NULL$", buffers)

  @parameterized.named_parameters(("reference", "reference"), ("cpu", "cpu"))
  def test_null_buffers_of_empty_tensors(self, backend):
    # Batch 0: input and out_backprop are empty, the gradient is zeros.
    problem = _problem(input_shape=(0, 9, 9, 4),
                       out_backprop_shape=(0, 9, 9, 4))
    out = np.full([3, 3, 4, 1], np.nan, np.float32)
    status, _, out = _call(backend, problem, (None, None, out))
    self.assertEqual(status, "OK")
    np.testing.assert_array_equal(out, 0)
    # Depth multiplier 0: the gradient itself is empty.
    problem = _problem(filter_sizes=(3, 3, 4, 0),
                       out_backprop_shape=(2, 9, 9, 0))
    status, _, _ = _call(backend, problem,
                         (np.ones([2, 9, 9, 4], np.float32), None, None))
    self.assertEqual(status, "OK")


class ErrorBufferTest(parameterized.TestCase):
  """The message is truncated to error_size - 1 bytes and NUL-terminated;
  error_size 0 or a NULL buffer writes nothing."""

  _PROBLEM = dict(out_backprop_shape=(3, 9, 9, 4))

  def full_message(self):
    return _message(_call("validate", _problem(**self._PROBLEM))[1])

  @parameterized.named_parameters(("size_10", 10), ("size_2", 2),
                                  ("size_1", 1))
  def test_truncated(self, size):
    status, text, _ = _call("validate", _problem(**self._PROBLEM),
                            error_size=size)
    self.assertEqual(status, "INVALID_ARGUMENT")
    self.assertEqual(text[:size - 1].decode(),
                     self.full_message()[:size - 1])
    self.assertEqual(text[size - 1:size], b"\0")

  def test_exact_fit(self):
    message = self.full_message().encode()
    status, text, _ = _call("validate", _problem(**self._PROBLEM),
                            error_size=len(message) + 1)
    self.assertEqual(status, "INVALID_ARGUMENT")
    self.assertEqual(text, message + b"\0")

  def test_size_0_writes_nothing(self):
    buffer = ctypes.create_string_buffer(b"XXXX", 4)
    status = _LIB.lib.dwop_validate(
        ctypes.byref(_problem(**self._PROBLEM)), None, buffer,
        ctypes.c_size_t(0))
    self.assertEqual(cabi._STATUS[status], "INVALID_ARGUMENT")  # pylint: disable=protected-access
    self.assertEqual(buffer.raw, b"XXXX")

  @parameterized.named_parameters(("validate", "validate"),
                                  ("reference", "reference"), ("cpu", "cpu"))
  def test_null_error_buffer(self, entry):
    status, _, _ = _call(entry, _problem(**self._PROBLEM), error=None)
    self.assertEqual(status, "INVALID_ARGUMENT")

  def test_success_leaves_the_buffer_alone(self):
    status, text, _ = _call("validate", _problem(), error_size=4)
    self.assertEqual(status, "OK")
    self.assertEqual(text, b"XXXX")


def _run(case, backend):
  """(gradient, x, dy) of a case on a host backend, inputs in case.dtype."""
  x, dy = case.random_inputs()
  np_dtype = testing.numpy_dtype(case.dtype)
  got = _LIB.filter_grad(x.astype(np_dtype), case.filter, dy.astype(np_dtype),
                         case.tf_strides, case.tf_padding, case.data_format,
                         case.tf_dilations, backend=backend)
  return got, x, dy


class ReferenceBackendTest(parameterized.TestCase):
  """The naive C++ kernel against the float64 oracle."""

  @parameterized.named_parameters(cases.named(cases.CONFORMANCE))
  def test_case(self, case):
    got, x, dy = _run(case, "reference")
    self.assertEqual(got.dtype, testing.numpy_dtype(case.dtype))
    testing.assert_close(got, testing.oracle(case, x, dy),
                         testing.tolerance(case.dtype, x, dy, case),
                         "reference backend vs the float64 oracle")


if __name__ == "__main__":
  absltest.main()
