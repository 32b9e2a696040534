"""ctypes binding of dwop's C ABI (cc/c_api/dwop_c.h), for NumPy arrays.

Needs neither TensorFlow nor ml_dtypes: bfloat16 arrays may be passed as
ml_dtypes.bfloat16 or as uint16 bit patterns with dtype="bfloat16".
"""

import ctypes
import os

import numpy as np

ABI_VERSION = 1
_DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build",
    "libdwop_c.so")

_DTYPES = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
_STATUS = {0: "OK", 1: "INVALID_ARGUMENT", 2: "RESOURCE_EXHAUSTED",
           3: "INTERNAL", 4: "UNAVAILABLE"}

_I64P = ctypes.POINTER(ctypes.c_int64)


class DwopError(Exception):
  """A non-OK dwop_status; `.status` is its name, e.g. "INVALID_ARGUMENT"."""

  def __init__(self, status, message):
    super().__init__(f"{status}: {message}")
    self.status = status
    self.message = message


class Problem(ctypes.Structure):
  _fields_ = [
      ("dtype", ctypes.c_int32),
      ("input_shape", _I64P), ("input_rank", ctypes.c_int32),
      ("filter_sizes", _I64P), ("num_filter_sizes", ctypes.c_int32),
      ("out_backprop_shape", _I64P), ("out_backprop_rank", ctypes.c_int32),
      ("strides", _I64P), ("num_strides", ctypes.c_int32),
      ("padding", ctypes.c_char_p),
      ("explicit_paddings", _I64P), ("num_explicit_paddings", ctypes.c_int32),
      ("data_format", ctypes.c_char_p),
      ("dilations", _I64P), ("num_dilations", ctypes.c_int32),
  ]


_GEOMETRY_FIELDS = [
    "batch", "in_rows", "in_cols", "in_depth", "depth_multiplier",
    "filter_rows", "filter_cols", "out_rows", "out_cols", "stride_rows",
    "stride_cols", "dilation_rows", "dilation_cols", "pad_top", "pad_left"
]


class Geometry(ctypes.Structure):
  _fields_ = [(f, ctypes.c_int64) for f in _GEOMETRY_FIELDS] + [
      ("nchw", ctypes.c_int32)]

  def as_dict(self):
    return {f: getattr(self, f) for f, _ in self._fields_}


def dtype_name(array, dtype=None):
  """The dwop dtype name of a NumPy array ("bfloat16" needs ml_dtypes or dtype)."""
  if dtype is not None:
    return np.dtype(dtype).name if dtype != "bfloat16" else "bfloat16"
  name = array.dtype.name
  if name not in _DTYPES:
    raise TypeError(f"unsupported dtype {name}")
  return name


def convert_padding(padding):
  """tf.nn's padding argument as (padding string, flat explicit_paddings)."""
  if isinstance(padding, str):
    return padding, []
  return "EXPLICIT", [int(v) for pair in padding for v in pair]


class Library:
  """The loaded C ABI. `path` defaults to $DWOP_CABI or build/libdwop_c.so."""

  def __init__(self, path=None):
    self.path = path or os.environ.get("DWOP_CABI", _DEFAULT_PATH)
    self.lib = ctypes.CDLL(self.path)
    self.lib.dwop_abi_version.restype = ctypes.c_int32
    version = self.lib.dwop_abi_version()
    if version != ABI_VERSION:
      raise RuntimeError(f"{self.path} has ABI version {version}, "
                         f"expected {ABI_VERSION}")
    self._keep = []

  def _array(self, values):
    arr = (ctypes.c_int64 * max(1, len(values)))(*[int(v) for v in values])
    self._keep.append(arr)
    return ctypes.cast(arr, _I64P), len(values)

  def problem(self, dtype, input_shape, filter_sizes, out_backprop_shape,
              strides, padding, data_format="NHWC",
              dilations=(1, 1, 1, 1), explicit_paddings=None):
    """A dwop_problem; padding may be a string or tf.nn's list of pairs."""
    if explicit_paddings is None:
      padding, explicit_paddings = convert_padding(padding)
    p = Problem()
    p.dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
    p.input_shape, p.input_rank = self._array(input_shape)
    p.filter_sizes, p.num_filter_sizes = self._array(filter_sizes)
    p.out_backprop_shape, p.out_backprop_rank = self._array(out_backprop_shape)
    p.strides, p.num_strides = self._array(strides)
    p.padding = padding.encode()
    p.explicit_paddings, p.num_explicit_paddings = self._array(
        explicit_paddings)
    p.data_format = data_format.encode()
    p.dilations, p.num_dilations = self._array(dilations)
    return p

  def _check(self, status, error):
    self._keep.clear()
    if status != 0:
      raise DwopError(_STATUS.get(status, str(status)),
                      error.value.decode(errors="replace"))

  def validate(self, problem):
    """Returns the resolved geometry as a dict, or raises DwopError."""
    geometry = Geometry()
    error = ctypes.create_string_buffer(1024)
    status = self.lib.dwop_validate(ctypes.byref(problem),
                                    ctypes.byref(geometry), error,
                                    ctypes.sizeof(error))
    self._check(status, error)
    return geometry.as_dict()

  def filter_grad(self, input, filter_sizes, out_backprop, strides, padding,  # pylint: disable=redefined-builtin
                  data_format="NHWC", dilations=(1, 1, 1, 1), dtype=None,
                  backend="cpu", num_threads=0, out=None):
    """Runs a host kernel ("cpu" or "reference") and returns filter_backprop.

    The output is filled with NaN before the call, so any element the kernel
    fails to write shows up. `out` may be given to reuse a buffer.
    """
    input = np.ascontiguousarray(input)
    out_backprop = np.ascontiguousarray(out_backprop)
    name = dtype_name(input, dtype)
    if out is None:
      out = np.empty([max(0, int(v)) for v in filter_sizes] if len(
          filter_sizes) == 4 else [0], input.dtype)
    out.view(np.uint8).fill(0xFF)  # NaN in every float format
    problem = self.problem(name, input.shape, filter_sizes,
                           out_backprop.shape, strides, padding, data_format,
                           dilations)
    error = ctypes.create_string_buffer(1024)
    args = [ctypes.byref(problem), input.ctypes.data_as(ctypes.c_void_p),
            out_backprop.ctypes.data_as(ctypes.c_void_p),
            out.ctypes.data_as(ctypes.c_void_p)]
    if backend == "cpu":
      status = self.lib.dwop_filter_grad_cpu(*args, ctypes.c_int32(num_threads),
                                             error, ctypes.sizeof(error))
    elif backend == "reference":
      status = self.lib.dwop_filter_grad_reference(*args, error,
                                                   ctypes.sizeof(error))
    else:
      raise ValueError(f"unknown backend {backend!r}")
    self._check(status, error)
    return out
