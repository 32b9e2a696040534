"""64-bit indexing: tensors of more than 2^31 elements (`make test-large`).

Each case builds a float16 tensor of more than 2^31 elements (4+ GiB) from
broadcast rank-1 patterns, so that every element's value is known in closed
form, and checks dwop's result EXACTLY against a float64 sum over the few
positions that matter (the inputs are small integers: every product and sum is
exact in float32 and representable in float16). A kernel that indexed with 32
bits would read the wrong elements (or outside the buffer) past element 2^31.

- big input: [1, 70001, 16385, 2] (2.29e9 elements), a 3x3 filter with strides
  (6363, 1489), so out_backprop is 12x12 and its last rows read the input
  beyond element 2^31;
- big out_backprop: [1, 23200, 23200, 4] (2.15e9 elements) from a 1x1 filter
  with a depth multiplier of 4 on a [1, 23200, 23200, 1] input that is zero
  except on a sparse grid (including the last row and column);
- a 1 GiB filter gradient of 2^28 taps from a 1x1 input: computed, or refused
  with ResourceExhausted when the kernel's scratch would pass 4 GiB.

Skipped unless DWOP_LARGE=1 (needs about 10 GiB of memory and a minute).
"""

import os
import sys

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

ENABLED = os.environ.get("DWOP_LARGE") == "1"
INT32_LIMIT = 2**31


def _layout(shape_nhwc, data_format):
  n, h, w, c = shape_nhwc
  return [n, h, w, c] if data_format == "NHWC" else [n, c, h, w]


def _along(tf, values, axis, data_format):
  """A rank-4 float16 tensor holding `values` along NHWC `axis` (1=H, 2=W,
  3=C), broadcastable against a tensor in data_format."""
  shape = [1, 1, 1, 1]
  shape[axis] = len(values)
  return tf.reshape(tf.constant(np.asarray(values, np.float16)),
                    _layout(shape, data_format))


@absltest.skipUnless(ENABLED, "set DWOP_LARGE=1 (make test-large)")
class LargeTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import dwop  # pylint: disable=g-import-not-at-top
    cls.tf, cls.dwop = tf, dwop

  @parameterized.parameters("NHWC", "NCHW")
  def test_input_beyond_2_31_elements(self, data_format):
    tf = self.tf
    h, w, c = 70001, 16385, 2
    kh = kw = 3
    sh, sw = (h - kh) // 11, (w - kw) // 11
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    self.assertGreater(h * w * c, INT32_LIMIT)
    # The last output row reads input rows past element 2^31 in both layouts.
    last_row = (oh - 1) * sh + kh - 1
    self.assertGreater(last_row * w * c, INT32_LIMIT)
    self.assertLess(last_row, h)

    # x[h, w, c] = a[h] + b[w] + 4c, values in [-5, 9].
    a = np.arange(h) % 7 - 3.0
    b = np.arange(w) % 5 - 2.0
    e = 4.0 * np.arange(c)
    x = (_along(tf, a, 1, data_format) + _along(tf, b, 2, data_format) +
         _along(tf, e, 3, data_format))
    self.assertEqual(x.shape.num_elements(), h * w * c)
    # dy[oh, ow, c] = ((oh + 2 ow + c) mod 3) - 1.
    grid = (np.arange(oh)[:, None, None] + 2 * np.arange(ow)[None, :, None] +
            np.arange(c)[None, None, :]) % 3 - 1.0
    dy_nhwc = grid[None].astype(np.float16)
    dy = tf.constant(dy_nhwc if data_format == "NHWC" else
                     np.transpose(dy_nhwc, (0, 3, 1, 2)))

    got = self.dwop.depthwise_conv2d_backprop_filter(
        x, [kh, kw, c, 1], dy, _layout([1, sh, sw, 1], data_format), "VALID",
        data_format=data_format).numpy().astype(np.float64)
    del x

    want = np.zeros((kh, kw, c, 1))
    for i in range(kh):
      for j in range(kw):
        rows = np.arange(oh) * sh + i
        cols = np.arange(ow) * sw + j
        xv = a[rows][:, None, None] + b[cols][None, :, None] + e
        want[i, j, :, 0] = (xv * grid).sum(axis=(0, 1))
    np.testing.assert_array_equal(got, want)

  @parameterized.parameters("NHWC", "NCHW")
  def test_out_backprop_beyond_2_31_elements(self, data_format):
    tf = self.tf
    h = w = 23200
    m = 4
    self.assertGreater(h * w * m, INT32_LIMIT)
    # x is 1 on a sparse grid that includes the last row and column, else 0.
    rows = np.unique(np.r_[np.arange(0, h, 4099), h - 1])
    cols = np.array([0, w // 2, w - 1])
    a = np.zeros(h)
    a[rows] = 1
    b = np.zeros(w)
    b[cols] = 1
    x = _along(tf, a, 1, data_format) * _along(tf, b, 2, data_format)
    # dy[h, w, m] = p[h] + q[w] + r[m], values in [-4, 4].
    p = np.arange(h) % 5 - 2.0
    q = np.arange(w) % 3 - 1.0
    r = np.arange(m) - 1.0
    dy = (_along(tf, p, 1, data_format) + _along(tf, q, 2, data_format) +
          _along(tf, r, 3, data_format))
    self.assertEqual(dy.shape.num_elements(), h * w * m)

    got = self.dwop.depthwise_conv2d_backprop_filter(
        x, [1, 1, 1, m], dy, [1, 1, 1, 1], "VALID",
        data_format=data_format).numpy().astype(np.float64)
    del x, dy

    dyv = p[rows][:, None, None] + q[cols][None, :, None] + r
    want = dyv.sum(axis=(0, 1)).reshape(1, 1, 1, m)
    np.testing.assert_array_equal(got, want)


  def test_huge_filter_on_a_tiny_input(self):
    """A 1 GiB filter gradient (2^28 taps, one channel) from a 1x1 input.

    Valid: within kMaxFilterBytes. Either it is computed (one tap sees the
    pixel: SAME puts it at the centre), or the kernel's scratch would exceed
    kMaxWorkspaceBytes and the op says so with ResourceExhausted, before
    allocating it; never a crash or an out-of-memory kill.
    """
    tf = self.tf
    k = 2**14
    x = tf.constant([[[[3.0]]]])
    dy = tf.constant([[[[-2.0]]]])
    try:
      got = self.dwop.depthwise_conv2d_backprop_filter(
          x, [k, k, 1, 1], dy, [1, 1, 1, 1], "SAME")
    except tf.errors.ResourceExhaustedError as e:
      self.assertIn("bytes of kernel workspace", str(e))
      return
    got = got.numpy()
    centre = ((k - 1) // 2, (k - 1) // 2)
    self.assertEqual(got[centre][0, 0], -6.0)
    got[centre] = 0
    self.assertFalse(got.any())


if __name__ == "__main__":
  sys.exit(absltest.main())
