"""Checks that `bazel test` runs against the libraries Bazel built.

The suites in tests/ check the op in depth; this checks the wiring they rely
on under Bazel: the dwop package loads bazel-bin's op library (not one a Make
build left in the source tree), the library carries the version stamp of the
TensorFlow it runs with, and both it and the C ABI compute a gradient.
"""

import os

from absl.testing import absltest
from absl.testing import parameterized
import tensorflow as tf

import cabi
import cases
import dwop
from dwop import _loader
import testing

# One float64 case per layout, with strides, dilations and a multiplier.
_CASES = [cases.by_name(n) for n in ("k3_explicit_s2_d2_nhwc_float64",
                                     "k3_explicit_s2_d2_nchw_float64")]


def _built_by_bazel(path):
  return "/bazel-out/" in os.path.realpath(path)


class BazelWiringTest(parameterized.TestCase):

  def test_op_library_is_bazels(self):
    self.assertTrue(_built_by_bazel(dwop.library_path()), dwop.library_path())

  def test_package_is_the_runfiles_copy(self):
    runfiles = os.environ["TEST_SRCDIR"]
    self.assertTrue(os.path.abspath(dwop.__file__).startswith(runfiles),
                    dwop.__file__)

  def test_c_abi_is_bazels(self):
    self.assertTrue(_built_by_bazel(cabi.Library().path), cabi.Library().path)

  def test_version_stamp(self):
    self.assertEqual(_loader.built_against(dwop.library_path()),
                     tf.__version__)

  @parameterized.named_parameters(cases.named(_CASES))
  def test_op(self, case):
    x, dy = case.random_inputs()
    got = dwop.depthwise_conv2d_backprop_filter(
        x, case.filter, dy, case.tf_strides, case.tf_padding,
        data_format=case.data_format, dilations=case.tf_dilations)
    testing.assert_close(got.numpy(), testing.oracle(case, x, dy),
                         testing.tolerance(case.dtype, x, dy, case),
                         "the op vs the float64 oracle")

  @parameterized.named_parameters(cases.named(_CASES))
  def test_c_abi(self, case):
    x, dy = case.random_inputs()
    lib = cabi.Library()
    want = testing.oracle(case, x, dy)
    tol = testing.tolerance(case.dtype, x, dy, case)
    for backend in ("cpu", "reference"):
      got = lib.filter_grad(x, case.filter, dy, case.tf_strides,
                            case.tf_padding, case.data_format,
                            case.tf_dilations, backend=backend)
      testing.assert_close(got, want, tol, f"{backend} vs the float64 oracle")


if __name__ == "__main__":
  absltest.main()
