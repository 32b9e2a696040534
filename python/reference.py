"""An independent float64 NumPy oracle for depthwise convolutions.

Written from the mathematical definition, without TensorFlow and without
dwop's C++ (it computes output sizes and pads itself), so that it can judge
both. Arguments follow tf.nn: 4-element strides/dilations in data_format
order, padding "SAME", "VALID" or a list of 4 [before, after] pairs.
"""

import numpy as np


def _spatial(values, data_format):
  """(rows, cols) entries of a 4-element per-dimension list."""
  return (values[1], values[2]) if data_format == "NHWC" else (values[2],
                                                                values[3])


def output_size(in_size, filter_size, stride, dilation, padding):
  """Output size and padding before, along one spatial dimension.

  Args:
    in_size: Input size.
    filter_size: Filter size.
    stride: Stride.
    dilation: Dilation rate.
    padding: "SAME", "VALID", or an explicit (before, after) pair.

  Returns:
    (out_size, pad_before); out_size is None when TensorFlow reports an error
    (a negative output size).
  """
  effective = (filter_size - 1) * dilation + 1 if filter_size > 0 else 0
  if padding == "SAME":
    out = -(-in_size // stride)
    needed = max(0, (out - 1) * stride + effective - in_size) if out else 0
    return out, needed // 2
  before, after = (0, 0) if padding == "VALID" else padding
  numerator = in_size + before + after - effective + stride
  # C++ division truncates toward zero; Python's // floors.
  out = int(numerator / stride) if numerator < 0 else numerator // stride
  return (out if out >= 0 else None), before


def _to_nhwc(x, data_format):
  return np.transpose(x, (0, 2, 3, 1)) if data_format == "NCHW" else x


def _explicit(padding, data_format):
  """Per-dimension padding: "SAME"/"VALID" or ((top, bottom), (left, right))."""
  if isinstance(padding, str):
    return padding, padding
  rows, cols = _spatial(padding, data_format)
  return tuple(rows), tuple(cols)


def _geometry(in_rows, in_cols, filter_rows, filter_cols, strides, padding,
              data_format, dilations):
  sh, sw = _spatial(strides, data_format)
  dh, dw = _spatial(dilations, data_format)
  pad_rows, pad_cols = _explicit(padding, data_format)
  oh, pt = output_size(in_rows, filter_rows, sh, dh, pad_rows)
  ow, pl = output_size(in_cols, filter_cols, sw, dw, pad_cols)
  if oh is None or ow is None:
    raise ValueError("negative output size")
  return oh, ow, pt, pl, sh, sw, dh, dw


def _windows(x, kh, kw, oh, ow, pt, pl, sh, sw, dh, dw):
  """x[n, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, c], zero outside the image."""
  n, h, w, c = x.shape
  out = np.zeros((n, oh, ow, c), np.float64)
  rows = np.arange(oh) * sh + kh * dh - pt
  cols = np.arange(ow) * sw + kw * dw - pl
  row_ok = (rows >= 0) & (rows < h)
  col_ok = (cols >= 0) & (cols < w)
  r_out, c_out = np.flatnonzero(row_ok), np.flatnonzero(col_ok)
  out[:, r_out[:, None], c_out[None, :], :] = x[:, rows[row_ok][:, None],
                                                cols[col_ok][None, :], :]
  return out


def depthwise_conv2d_backprop_filter(input, filter_sizes, out_backprop,  # pylint: disable=redefined-builtin
                                     strides, padding, data_format="NHWC",
                                     dilations=(1, 1, 1, 1)):
  """The filter gradient in float64, shape filter_sizes = [KH, KW, C, M]."""
  x = _to_nhwc(np.asarray(input, np.float64), data_format)
  dy = _to_nhwc(np.asarray(out_backprop, np.float64), data_format)
  kh_size, kw_size, c, m = (int(v) for v in filter_sizes)
  n, h, w, _ = x.shape
  oh, ow, pt, pl, sh, sw, dh, dw = _geometry(h, w, kh_size, kw_size, strides,
                                             padding, data_format, dilations)
  assert dy.shape == (n, oh, ow, c * m), (dy.shape, (n, oh, ow, c * m))
  dy = dy.reshape(n, oh, ow, c, m)
  grad = np.zeros((kh_size, kw_size, c, m), np.float64)
  for kh in range(kh_size):
    for kw in range(kw_size):
      patch = _windows(x, kh, kw, oh, ow, pt, pl, sh, sw, dh, dw)
      grad[kh, kw] = np.einsum("nhwc,nhwcm->cm", patch, dy)
  return grad


def depthwise_conv2d(input, filter, strides, padding, data_format="NHWC",  # pylint: disable=redefined-builtin
                     dilations=(1, 1, 1, 1)):
  """The forward depthwise convolution in float64, in data_format layout."""
  x = _to_nhwc(np.asarray(input, np.float64), data_format)
  f = np.asarray(filter, np.float64)
  kh_size, kw_size, c, m = f.shape
  n, h, w, _ = x.shape
  oh, ow, pt, pl, sh, sw, dh, dw = _geometry(h, w, kh_size, kw_size, strides,
                                             padding, data_format, dilations)
  y = np.zeros((n, oh, ow, c, m), np.float64)
  for kh in range(kh_size):
    for kw in range(kw_size):
      patch = _windows(x, kh, kw, oh, ow, pt, pl, sh, sw, dh, dw)
      y += patch[..., None] * f[kh, kw]
  y = y.reshape(n, oh, ow, c * m)
  return np.transpose(y, (0, 3, 1, 2)) if data_format == "NCHW" else y


def depthwise_conv2d_backprop_input(input_sizes, filter, out_backprop,  # pylint: disable=redefined-builtin
                                    strides, padding, data_format="NHWC",
                                    dilations=(1, 1, 1, 1)):
  """The input gradient in float64, shape input_sizes (data_format order):
  every out_backprop element, times the filter taps, added back to the input
  position each tap read (the adjoint of depthwise_conv2d)."""
  if data_format == "NHWC":
    n, h, w, c = (int(v) for v in input_sizes)
  else:
    n, c, h, w = (int(v) for v in input_sizes)
  f = np.asarray(filter, np.float64)
  kh_size, kw_size, _, m = f.shape
  oh, ow, pt, pl, sh, sw, dh, dw = _geometry(h, w, kh_size, kw_size, strides,
                                             padding, data_format, dilations)
  dy = _to_nhwc(np.asarray(out_backprop, np.float64), data_format)
  assert dy.shape == (n, oh, ow, c * m), (dy.shape, (n, oh, ow, c * m))
  dy = dy.reshape(n, oh, ow, c, m)
  dx = np.zeros((n, h, w, c), np.float64)
  for kh in range(kh_size):
    rows = np.arange(oh) * sh + kh * dh - pt
    row_ok = (rows >= 0) & (rows < h)
    for kw in range(kw_size):
      cols = np.arange(ow) * sw + kw * dw - pl
      col_ok = (cols >= 0) & (cols < w)
      # Within one tap, distinct output positions read distinct inputs, so
      # the fancy-indexed += does not lose repeated indices.
      contrib = np.einsum("nhwcm,cm->nhwc", dy, f[kh, kw])
      dx[:, rows[row_ok][:, None], cols[col_ok][None, :], :] += contrib[
          :, np.flatnonzero(row_ok)[:, None], np.flatnonzero(col_ok)[None, :],
          :]
  return np.transpose(dx, (0, 3, 1, 2)) if data_format == "NCHW" else dx


def out_backprop_shape(input_shape, filter_sizes, strides, padding,
                       data_format="NHWC", dilations=(1, 1, 1, 1)):
  """The shape of out_backprop (in data_format order), or None if invalid."""
  if data_format == "NHWC":
    n, h, w, c = input_shape
  else:
    n, c, h, w = input_shape
  try:
    oh, ow, *_ = _geometry(h, w, filter_sizes[0], filter_sizes[1], strides,
                           padding, data_format, dilations)
  except ValueError:
    return None
  depth = c * filter_sizes[3]
  return (n, oh, ow, depth) if data_format == "NHWC" else (n, depth, oh, ow)
