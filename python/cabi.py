"""ctypes binding of dwop's C ABI (cc/c_api/dwop_c.h), for NumPy arrays.

Needs neither TensorFlow nor ml_dtypes: bfloat16 arrays may be passed as
ml_dtypes.bfloat16 or as uint16 bit patterns with dtype="bfloat16".
"""

import ctypes
import os

import numpy as np

import reference

ABI_VERSION = 2
_DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build",
    "libdwop_c.so")

_DTYPES = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
_STATUS = {0: "OK", 1: "INVALID_ARGUMENT", 2: "RESOURCE_EXHAUSTED",
           3: "INTERNAL", 4: "UNAVAILABLE"}

_I64P = ctypes.POINTER(ctypes.c_int64)
CUDA_PATHS = {"auto": 0, "register": 1, "tiled": 2}
CUDA_KERNELS = {0: "nothing", 1: "zero", 2: "register_nhwc",
                3: "register_nchw", 4: "tiled"}
CONV_OPS = {"forward": 0, "input_grad": 1}
CUDA_CONV_KERNELS = {0: "nothing", 1: "zero", 2: "forward_nhwc",
                     3: "forward_nchw", 4: "input_grad_nhwc",
                     5: "input_grad_nchw"}


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

  def set_array(self, field, count_field, values):
    """Points `field` at a new int64 array of `values`, `count_field` at its
    length; the array lives as long as this Problem (in `_arrays`)."""
    arr = (ctypes.c_int64 * max(1, len(values)))(*[int(v) for v in values])
    self.__dict__.setdefault("_arrays", []).append(arr)
    setattr(self, field, ctypes.cast(arr, _I64P))
    setattr(self, count_field, len(values))


_GEOMETRY_FIELDS = [
    "batch", "in_rows", "in_cols", "in_depth", "depth_multiplier",
    "filter_rows", "filter_cols", "out_rows", "out_cols", "stride_rows",
    "stride_cols", "dilation_rows", "dilation_cols", "pad_top", "pad_left"
]


class CudaPlan(ctypes.Structure):
  """dwop_cuda_plan (cc/c_api/dwop_c.h)."""
  _fields_ = [(f, ctypes.c_int32) for f in (
      "kernel", "tap_rows", "tap_cols", "vector", "threads", "lanes_x",
      "lanes_y", "col_segments", "segment_cols", "chunk_cols", "chunks",
      "bands", "x_rows", "x_pitch")] + [(f, ctypes.c_int64) for f in (
          "channel_blocks", "tap_groups_h", "tap_groups_w", "splits",
          "work_total", "work_per_split", "blocks", "smem_bytes",
          "workspace_bytes", "finalize_blocks")]

  def as_dict(self):
    d = {f: getattr(self, f) for f, _ in self._fields_}
    d["kernel"] = CUDA_KERNELS.get(self.kernel, str(self.kernel))
    return d


class CudaConvPlan(ctypes.Structure):
  """dwop_cuda_conv_plan (cc/c_api/dwop_c.h)."""
  _fields_ = [(f, ctypes.c_int32) for f in (
      "kernel", "threads", "cols_per_thread")] + [(f, ctypes.c_int64) for f in (
          "items", "col_runs", "blocks", "output_elements", "output_bytes")]

  def as_dict(self):
    d = {f: getattr(self, f) for f, _ in self._fields_}
    d["kernel"] = CUDA_CONV_KERNELS.get(self.kernel, str(self.kernel))
    return d


class Geometry(ctypes.Structure):
  _fields_ = [(f, ctypes.c_int64) for f in _GEOMETRY_FIELDS] + [
      ("nchw", ctypes.c_int32)]

  def as_dict(self):
    return {f: getattr(self, f) for f, _ in self._fields_}


def dtype_name(array, dtype=None):
  """dwop dtype name of a NumPy array ("bfloat16" needs ml_dtypes or dtype)."""
  if dtype is not None:
    return np.dtype(dtype).name if dtype != "bfloat16" else "bfloat16"
  name = array.dtype.name
  if name not in _DTYPES:
    raise TypeError(f"unsupported dtype {name}")
  return name


def aligned_empty(shape, dtype):
  """An uninitialised array whose data starts on a 64-byte boundary, as
  TensorFlow's tensors do. (NumPy aligns to 16 bytes, where a vector load may
  straddle two cache lines, about 20% slower on the in-place kernels, and
  where the CPU forward and input gradient keep their large outputs'
  stores in the caches: see ConvPlan::stream.)"""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape)) * dtype.itemsize
  raw = np.empty(nbytes + 64, np.uint8)
  start = -raw.ctypes.data % 64
  return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned(array):
  """A copy of `array` on a 64-byte boundary (aligned_empty)."""
  out = aligned_empty(array.shape, array.dtype)
  out[...] = array
  return out


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
    self._declare_host()
    self._declare_cuda()

  def _declare_host(self):
    """Exact prototypes of the host entry points (size_t, pointers)."""
    lib, c = self.lib, ctypes
    problem, err = c.POINTER(Problem), [c.c_char_p, c.c_size_t]
    lib.dwop_validate.argtypes = [problem, c.POINTER(Geometry)] + err
    lib.dwop_filter_grad_cpu.argtypes = [
        problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32] + err
    lib.dwop_filter_grad_reference.argtypes = [
        problem, c.c_void_p, c.c_void_p, c.c_void_p] + err
    for op in ("forward", "input_grad"):
      getattr(lib, f"dwop_{op}_reference").argtypes = [
          problem, c.c_void_p, c.c_void_p, c.c_void_p] + err
      getattr(lib, f"dwop_{op}_cpu").argtypes = [
          problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32] + err

  def _declare_cuda(self):
    """Argument types of the CUDA entry points (64-bit ints and pointers)."""
    lib, c = self.lib, ctypes
    problem, err = c.POINTER(Problem), [c.c_char_p, c.c_size_t]
    lib.dwop_cuda_built.restype = c.c_int32
    lib.dwop_cuda_device_count.restype = c.c_int32
    lib.dwop_cuda_device_count.argtypes = err
    lib.dwop_cuda_plan_problem.argtypes = [
        problem, c.c_int32, c.c_int32, c.c_int64, c.POINTER(CudaPlan)] + err
    lib.dwop_filter_grad_cuda_ex.argtypes = [
        problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32, c.c_void_p,
        c.c_int64, c.c_void_p] + err
    lib.dwop_filter_grad_cuda_emulated.argtypes = [
        problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32, c.c_int32,
        c.c_int64] + err
    lib.dwop_cuda_conv_plan_problem.argtypes = [
        problem, c.c_int32, c.c_int32, c.POINTER(CudaConvPlan)] + err
    for op in CONV_OPS:
      getattr(lib, f"dwop_{op}_cuda").argtypes = [
          problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p] + err
      getattr(lib, f"dwop_{op}_cuda_emulated").argtypes = [
          problem, c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32] + err

  def problem(self, dtype, input_shape, filter_sizes, out_backprop_shape,
              strides, padding, data_format="NHWC",
              dilations=(1, 1, 1, 1), explicit_paddings=None):
    """A dwop_problem; padding may be a string or tf.nn's list of pairs."""
    if explicit_paddings is None:
      padding, explicit_paddings = convert_padding(padding)
    p = Problem()
    p.dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
    p.set_array("input_shape", "input_rank", input_shape)
    p.set_array("filter_sizes", "num_filter_sizes", filter_sizes)
    p.set_array("out_backprop_shape", "out_backprop_rank", out_backprop_shape)
    p.set_array("strides", "num_strides", strides)
    p.padding = padding.encode()
    p.set_array("explicit_paddings", "num_explicit_paddings",
                explicit_paddings)
    p.data_format = data_format.encode()
    p.set_array("dilations", "num_dilations", dilations)
    return p

  def _check(self, status, error):
    if status != 0:
      raise DwopError(_STATUS.get(status, str(status)),
                      error.value.decode(errors="replace"))

  def _call(self, fn, *args):
    """fn(*args, error, error_size) of the C ABI; raises DwopError."""
    error = ctypes.create_string_buffer(1024)
    self._check(fn(*args, error, ctypes.sizeof(error)), error)

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
                  backend="cpu", num_threads=0, out=None, cuda_path="auto",
                  sm_count=132, shared_memory_per_block=48 * 1024):
    """Runs a host kernel and returns filter_backprop.

    backend: "cpu", "reference", or "cuda_emulator" (the CUDA kernels' code
    run on the host for a device with sm_count SMs; cuda_path as in
    filter_grad_cuda). The output is filled with NaN before the call, so any
    element the kernel fails to write shows up. `out` may be given to reuse a
    buffer.
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
    elif backend == "cuda_emulator":
      status = self.lib.dwop_filter_grad_cuda_emulated(
          *args, CUDA_PATHS[cuda_path], sm_count, shared_memory_per_block,
          error, ctypes.sizeof(error))
    else:
      raise ValueError(f"unknown backend {backend!r}")
    self._check(status, error)
    return out

  def _run_op(self, op, problem, a, b, out, backend, num_threads,
              sm_count=132):
    """Calls dwop_<op>_<backend> with buffers a, b -> out (NaN-filled).

    backend: "cpu" (num_threads threads, <= 0: one per hardware thread),
    "reference", or "cuda_emulator" (the CUDA kernels' code run on the host,
    planned for a device with sm_count SMs).
    """
    out.view(np.uint8).fill(0xFF)  # NaN in every float format
    error = ctypes.create_string_buffer(1024)
    args = [ctypes.byref(problem)] + [
        v.ctypes.data_as(ctypes.c_void_p) for v in (a, b, out)]
    if backend == "reference":
      status = getattr(self.lib, f"dwop_{op}_reference")(
          *args, error, ctypes.sizeof(error))
    elif backend == "cpu":
      status = getattr(self.lib, f"dwop_{op}_cpu")(
          *args, ctypes.c_int32(num_threads), error, ctypes.sizeof(error))
    elif backend == "cuda_emulator":
      status = getattr(self.lib, f"dwop_{op}_cuda_emulated")(
          *args, ctypes.c_int32(sm_count), error, ctypes.sizeof(error))
    else:
      raise ValueError(f"unknown backend {backend!r}")
    self._check(status, error)
    return out

  def forward(self, input, filter, strides, padding, data_format="NHWC",  # pylint: disable=redefined-builtin
              dilations=(1, 1, 1, 1), dtype=None, backend="reference",
              num_threads=0, sm_count=132):
    """Runs a host forward kernel and returns the output (NaN-poisoned first).

    backend: "reference" or "cuda_emulator"."""
    input = np.ascontiguousarray(input)
    filter = np.ascontiguousarray(filter)
    name = dtype_name(input, dtype)
    shape = reference.out_backprop_shape(input.shape, filter.shape, strides,
                                         padding, data_format, dilations)
    problem = self.problem(name, input.shape, filter.shape, shape or (),
                           strides, padding, data_format, dilations)
    out = aligned_empty(shape or [0], input.dtype)
    return self._run_op("forward", problem, input, filter, out, backend,
                        num_threads, sm_count)

  def input_grad(self, input_sizes, filter, out_backprop, strides, padding,
                 data_format="NHWC", dilations=(1, 1, 1, 1), dtype=None,
                 backend="reference", num_threads=0, sm_count=132):
    """Runs a host input-gradient kernel and returns in_backprop.

    backend: "reference" or "cuda_emulator"."""
    filter = np.ascontiguousarray(filter)
    out_backprop = np.ascontiguousarray(out_backprop)
    name = dtype_name(filter, dtype)
    problem = self.problem(name, input_sizes, filter.shape, out_backprop.shape,
                           strides, padding, data_format, dilations)
    out = aligned_empty([max(0, int(v)) for v in input_sizes]
                        if len(input_sizes) == 4 else [0], filter.dtype)
    return self._run_op("input_grad", problem, filter, out_backprop, out,
                        backend, num_threads, sm_count)

  # ---- CUDA.

  def cuda_built(self):
    """Whether the library contains the CUDA kernels."""
    return bool(self.lib.dwop_cuda_built())

  def cuda_device_count(self):
    """(number of usable CUDA devices, why there are none or "")."""
    error = ctypes.create_string_buffer(1024)
    count = self.lib.dwop_cuda_device_count(error, ctypes.sizeof(error))
    return count, error.value.decode(errors="replace")

  def cuda_plan(self, dtype, input_shape, filter_sizes, out_backprop_shape,
                strides, padding, data_format="NHWC", dilations=(1, 1, 1, 1),
                path="auto", sm_count=0, shared_memory_per_block=0):
    """The CUDA launch plan as a dict (sm_count 0: the current device)."""
    problem = self.problem(dtype, input_shape, filter_sizes,
                           out_backprop_shape, strides, padding, data_format,
                           dilations)
    plan = CudaPlan()
    self._call(self.lib.dwop_cuda_plan_problem, ctypes.byref(problem),
               CUDA_PATHS[path], sm_count, shared_memory_per_block,
               ctypes.byref(plan))
    return plan.as_dict()

  def filter_grad_cuda(self, dtype, input_shape, filter_sizes,
                       out_backprop_shape, strides, padding, input_ptr,
                       out_backprop_ptr, filter_ptr, data_format="NHWC",
                       dilations=(1, 1, 1, 1), stream=0, path="auto",
                       workspace_ptr=0, workspace_bytes=0):
    """The CUDA kernel on device buffers given as integer pointers.

    Runs asynchronously on `stream` (an integer cudaStream_t, 0 for the
    legacy default stream) on the current device; with workspace_ptr 0 the
    workspace is allocated on the stream. Raises DwopError (status
    "UNAVAILABLE" without CUDA or a GPU).
    """
    problem = self.problem(dtype, input_shape, filter_sizes,
                           out_backprop_shape, strides, padding, data_format,
                           dilations)
    self._call(self.lib.dwop_filter_grad_cuda_ex, ctypes.byref(problem),
               input_ptr or None, out_backprop_ptr or None, filter_ptr or None,
               CUDA_PATHS[path], workspace_ptr or None, workspace_bytes,
               stream or None)

  def cuda_conv_plan(self, op, dtype, input_shape, filter_shape,
                     out_backprop_shape, strides, padding, data_format="NHWC",
                     dilations=(1, 1, 1, 1), sm_count=0):
    """The CUDA plan of op ("forward" or "input_grad") as a dict.

    input_shape is the input's shape (the input_sizes values for the input
    gradient); out_backprop_shape may be () for the forward. sm_count 0: the
    current device.
    """
    problem = self.problem(dtype, input_shape, filter_shape,
                           out_backprop_shape, strides, padding, data_format,
                           dilations)
    plan = CudaConvPlan()
    self._call(self.lib.dwop_cuda_conv_plan_problem, ctypes.byref(problem),
               CONV_OPS[op], sm_count, ctypes.byref(plan))
    return plan.as_dict()

  def forward_cuda(self, dtype, input_shape, filter_shape, strides, padding,
                   input_ptr, filter_ptr, output_ptr, data_format="NHWC",
                   dilations=(1, 1, 1, 1), stream=0):
    """The CUDA forward on device buffers given as integer pointers;
    asynchronous on `stream` (0: the legacy default stream). The output has
    reference.out_backprop_shape's shape. Raises DwopError (status
    "UNAVAILABLE" without CUDA or a GPU)."""
    problem = self.problem(dtype, input_shape, filter_shape, (), strides,
                           padding, data_format, dilations)
    self._call(self.lib.dwop_forward_cuda, ctypes.byref(problem),
               input_ptr or None, filter_ptr or None, output_ptr or None,
               stream or None)

  def input_grad_cuda(self, dtype, input_sizes, filter_shape,
                      out_backprop_shape, strides, padding, filter_ptr,
                      out_backprop_ptr, in_backprop_ptr, data_format="NHWC",
                      dilations=(1, 1, 1, 1), stream=0):
    """The CUDA input gradient on device buffers, as forward_cuda."""
    problem = self.problem(dtype, input_sizes, filter_shape,
                           out_backprop_shape, strides, padding, data_format,
                           dilations)
    self._call(self.lib.dwop_input_grad_cuda, ctypes.byref(problem),
               filter_ptr or None, out_backprop_ptr or None,
               in_backprop_ptr or None, stream or None)
