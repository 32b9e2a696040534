"""Running a spec and checking the outcome: through TensorFlow (TfBackend)
or through the C ABI (CabiBackend), against the float64 oracle within the
tolerance of python/tolerance.py, or against the model's expected error."""

import ctypes
import os
import time

import numpy as np

import reference
import testing
import tolerance
from fuzz.model import (FLOATS, JUNK_DTYPES, MAX_ELEMENTS, OP_BUFFERS,
                        _c_string, _elements, _flatten, _list_attr,
                        attr_padding, expect, op_of)
from fuzz.strategies import _cheap_output, new_op_shapes, nothing_to_sum




def values(spec):
  """(x, dy) as float64 arrays, exactly representable in every dtype."""
  rng = np.random.default_rng(spec["seed"])

  def draw(shape):  # an empty tensor may have dims NumPy cannot hold
    if _elements(shape) == 0:
      return np.zeros(0)
    return np.asarray(rng.integers(-8, 9, shape) / 8.0)

  x, dy = draw(spec["input"]), draw(spec["out_backprop"])
  if spec.get("values") == "special" and x.size:
    flat = x.reshape(-1)
    k = max(1, flat.size // 10)
    idx = rng.choice(flat.size, k, replace=False)
    flat[idx] = rng.choice([np.nan, np.inf, -np.inf], k)
  return x, dy


def new_op_values(spec, shapes):
  """The two input buffers of a forward / input-gradient spec, as float64
  arrays exactly representable in every dtype ("special": NaN and inf in the
  first)."""
  rng = np.random.default_rng(spec["seed"])
  names = OP_BUFFERS[op_of(spec)][:2]
  arrays = []
  for name in names:
    shape = shapes[name]
    arrays.append(np.zeros(0) if _elements(shape) == 0 else
                  np.asarray(rng.integers(-8, 9, shape) / 8.0))
  a = arrays[0]
  if spec.get("values") == "special" and a.size:
    flat = a.reshape(-1)
    k = max(1, flat.size // 10)
    idx = rng.choice(flat.size, k, replace=False)
    flat[idx] = rng.choice([np.nan, np.inf, -np.inf], k)
  return arrays[0], arrays[1]


def oracle_padding(spec):
  """The padding as the op reads it, for the float64 oracles: explicit
  pairs re-paired from the flat explicit_paddings (the C ABI takes a flat
  list, so [[0, 0, 0], [1], [0, 0], [0, 0]] there means rows (0, 1))."""
  padding, explicit = attr_padding(spec, "cabi")
  if padding != "EXPLICIT":
    return spec["padding"]
  return [explicit[i:i + 2] for i in range(0, len(explicit), 2)]


def new_op_oracle(spec, ex, a, b):
  """The float64 forward / input gradient (zeros when nothing is summed)."""
  shapes = new_op_shapes(spec, ex)
  out_shape = shapes[OP_BUFFERS[op_of(spec)][2]]
  if nothing_to_sum(spec, ex):
    return np.zeros(out_shape, np.float64)
  args = dict(strides=spec["strides"], padding=oracle_padding(spec),
              data_format=spec["data_format"] or "NHWC",
              dilations=spec["dilations"] or [1, 1, 1, 1])
  with np.errstate(invalid="ignore"):
    if op_of(spec) == "forward":
      return reference.depthwise_conv2d(a, b, **args)
    return reference.depthwise_conv2d_backprop_input(spec["input"], a, b,
                                                     **args)


def new_op_terms(spec):
  """Products summed into each output element: KH*KW for the forward,
  KH*KW*M for the input gradient (as tests/conv_kernel_test.py counts)."""
  kh, kw, _, m = _flatten(spec["filter_sizes"])
  return kh * kw * (m if op_of(spec) == "input_grad" else 1)


def oracle(spec, x, dy):
  """The float64 filter gradient (zeros when there is nothing to sum)."""
  fs = spec["filter_sizes"]
  if x.size == 0 or dy.size == 0 or _elements(fs) == 0:
    return np.zeros(fs, np.float64)
  with np.errstate(invalid="ignore"):
    return reference.depthwise_conv2d_backprop_filter(
        x, fs, dy, spec["strides"], oracle_padding(spec),
        spec["data_format"] or "NHWC", spec["dilations"] or [1, 1, 1, 1])


def spec_tolerance(spec, x, dy):
  """python/tolerance.py's bound for the spec's result; 0 (exact zeros) when
  nothing is summed."""
  if x.size == 0 or dy.size == 0:
    return 0.0
  g = expect(spec, "tf" if "graph" in spec else "cabi").geometry
  return tolerance.atol(spec["dtype"], x, dy,
                        spec["input"][0] * g["out_rows"] * g["out_cols"])


class Mismatch(AssertionError):
  pass


def check_result(spec, result, x, dy, want=None, tol=None):
  """result (float64) equals the oracle within tolerance; NaN/inf agree."""
  if want is None:
    want = oracle(spec, x, dy)
  if result.shape != want.shape:
    raise Mismatch(f"shape {result.shape} != {want.shape}")
  nan_want, nan_got = np.isnan(want), np.isnan(result)
  if not np.array_equal(nan_want, nan_got):
    raise Mismatch(f"NaN at {np.argwhere(nan_want != nan_got)[:5].tolist()} "
                   "differs from the oracle")
  inf_want = np.isinf(want)
  if not np.array_equal(np.where(inf_want, want, 0),
                        np.where(np.isinf(result), result, 0)):
    raise Mismatch("infinities differ from the oracle")
  finite = ~(nan_want | inf_want)
  err = np.abs(result[finite] - want[finite]).max(initial=0.0)
  if tol is None:
    tol = spec_tolerance(spec, x, dy)
  if not err <= tol:
    raise Mismatch(f"max error {err:.3g} > tolerance {tol:.3g}")


def check_error(spec, ex, kind, message):
  if ex.ok:
    raise Mismatch(f"valid call refused with {kind}: {message[:2000]}")
  if not any(k in message for k in ex.keywords):
    raise Mismatch(f"{kind} does not name any of {list(ex.keywords)} "
                   f"(expected fault: {ex.reason}): {message[:2000]}")


# --------------------------------------------------------------------------
# Backends.


def _tf_attrs(spec):
  """The TensorFlow ops' keyword attributes of `spec` (data_format only
  where it sets one)."""
  kwargs = dict(strides=spec["strides"], padding=spec["padding"],
                dilations=spec["dilations"])
  if spec["data_format"] is not None:
    kwargs["data_format"] = spec["data_format"]
  return kwargs


def _check_accepted(spec, ex, out):
  """An op accepted `spec`: it was expected to, and kept the dtype."""
  if not ex.ok:
    raise Mismatch(f"accepted, but expected an error ({ex.reason})")
  if out.dtype.name != spec["dtype"]:
    raise Mismatch(f"output dtype {out.dtype.name}")


class TfBackend:
  """Calls dwop.depthwise_conv2d_backprop_filter, eagerly or traced, and the
  forward and the input gradient eagerly."""
  name = "tf"

  def __init__(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import dwop  # pylint: disable=g-import-not-at-top
    self.tf = tf
    self.op = dwop.depthwise_conv2d_backprop_filter
    self.forward = dwop.depthwise_conv2d_native
    self.input_grad = dwop.depthwise_conv2d_backprop_input
    self.allowed = (tf.errors.InvalidArgumentError, ValueError, TypeError)

  def _tensor(self, shape, dtype, data):
    tf = self.tf
    if _elements(shape) == 0:
      return tf.zeros(shape, dtype)
    t = tf.constant(data)
    if dtype == "bool":
      return tf.not_equal(t, 0)
    return tf.cast(t, dtype)

  def _sizes(self, spec):
    fs, dt = spec["filter_sizes"], spec["sizes_dtype"]
    if dt == "list":
      return fs
    # Through int64: a narrower junk dtype (int16, uint8) wraps silently.
    return self.tf.constant(np.array(fs, np.int64).astype(dt))

  def _run_new(self, spec, ex):
    """dwop.depthwise_conv2d_native / depthwise_conv2d_backprop_input,
    eagerly: the forward's filter has dtype dy_dtype, the input gradient's
    filter dtype and its out_backprop dy_dtype."""
    op = op_of(spec)
    fs = _flatten(spec["filter_sizes"])
    shapes = {"input": spec["input"], "filter": fs,
              "out_backprop": spec["out_backprop"]}
    names = OP_BUFFERS[op][:2]
    if ex.ok:
      a, b = new_op_values(spec, new_op_shapes(spec, ex))
    else:  # values of the tensors' shapes, whatever they are
      a, b = new_op_values(spec, shapes)
    first, second = ("dtype", "dy_dtype")
    ta = self._tensor(shapes[names[0]], spec[first], a)
    tb = self._tensor(shapes[names[1]], spec[second], b)
    kwargs = _tf_attrs(spec)
    try:
      if op == "forward":
        out = self.forward(ta, tb, **kwargs)
      else:
        sizes = self._sizes(dict(spec, filter_sizes=spec["input"]))
        out = self.input_grad(sizes, ta, tb, **kwargs)
    except self.allowed as e:
      check_error(spec, ex, type(e).__name__, str(e))
      return "error"
    _check_accepted(spec, ex, out)
    out_shape = new_op_shapes(spec, ex)[OP_BUFFERS[op][2]]
    if out.shape.as_list() != list(out_shape):
      raise Mismatch(f"output shape {out.shape}, expected {out_shape}")
    if _elements(out_shape) == 0:
      return "ok"
    want = new_op_oracle(spec, ex, a, b)
    tol = 0.0 if nothing_to_sum(spec, ex) else tolerance.atol(
        spec["dtype"], a, b, new_op_terms(spec))
    check_result(spec, np.asarray(out.numpy(), np.float64), a, b, want=want,
                 tol=tol)
    return "ok"

  def run(self, spec):
    tf = self.tf
    ex = expect(spec, "tf")
    if op_of(spec) != "filter_grad":
      return self._run_new(spec, ex)
    x, dy = values(spec)
    xt = self._tensor(spec["input"], spec["dtype"], x)
    dyt = self._tensor(spec["out_backprop"], spec["dy_dtype"], dy)
    kwargs = _tf_attrs(spec)
    try:
      if spec.get("graph") == "const":
        fn = tf.function(lambda a, b: self.op(a, self._sizes(spec), b,
                                              **kwargs), autograph=False)
        out = fn(xt, dyt)
      elif spec.get("graph") == "arg":
        fn = tf.function(lambda a, s, b: self.op(a, s, b, **kwargs),
                         autograph=False)
        sizes = self._sizes(spec)
        out = fn(xt, tf.constant(sizes) if isinstance(sizes, list) else sizes,
                 dyt)
      else:
        out = self.op(xt, self._sizes(spec), dyt, **kwargs)
    except self.allowed as e:
      check_error(spec, ex, type(e).__name__, str(e))
      return "error"
    _check_accepted(spec, ex, out)
    if out.shape.as_list() != list(spec["filter_sizes"]):
      raise Mismatch(f"output shape {out.shape}")
    if _elements(spec["filter_sizes"]) == 0:
      return "ok"  # NumPy may not hold its shape ([2^62, 0, 1, 1])
    check_result(spec, np.asarray(out.numpy(), np.float64), x, dy)
    return "ok"


class CabiBackend:
  """Calls the C ABI through ctypes: dwop_validate, then the CPU kernel at
  several thread counts (bitwise equal), the reference kernel and the CUDA
  kernels emulated on the host, on buffers of exactly the right size (so that
  ASan sees any overrun)."""
  name = "cabi"
  STATUS_INVALID = 1

  def __init__(self):
    import cabi  # pylint: disable=g-import-not-at-top
    self.cabi = cabi
    self.lib = cabi.Library()
    # Library declares the exact prototypes (size_t, pointers). The CUDA
    # kernels' bodies run on the host (every build has the emulator, and
    # Library() needs it): the same indexing as on a GPU, so ASan checks it
    # here.
    self.f = self.lib.lib

  def _problem(self, spec):
    c = spec.get("cabi") or {}
    padding, explicit = attr_padding(spec, "cabi")
    p = self.lib.problem(
        spec["dtype"] if spec["dtype"] in FLOATS else "float32",
        list(spec["input"]), _flatten(spec["filter_sizes"]),
        spec["out_backprop"], _list_attr(spec["strides"]), "VALID", "NHWC",
        _list_attr(spec["dilations"]), explicit_paddings=explicit)
    p.padding = padding.encode() if padding is not None else None
    df = spec["data_format"]
    p.data_format = df.encode() if df is not None else None
    if "dtype_enum" in c:
      p.dtype = c["dtype_enum"]
    elif spec["dtype"] not in FLOATS:
      p.dtype = 4 + JUNK_DTYPES.index(spec["dtype"])
    counts = {"strides": "num_strides",
              "explicit_paddings": "num_explicit_paddings",
              "dilations": "num_dilations", "input_shape": "input_rank",
              "filter_sizes": "num_filter_sizes",
              "out_backprop_shape": "out_backprop_rank"}
    if c.get("null"):
      setattr(p, c["null"], None)
      if c["null"] in counts and getattr(p, counts[c["null"]]) == 0:
        setattr(p, counts[c["null"]], 1)
    if c.get("negative_count"):
      setattr(p, counts[c["negative_count"]], -1)
    return p

  @staticmethod
  def _buffer(dtype, data=None, elements=0, null=False):
    """A buffer of exactly `data` or of `elements` 0xFF bytes, or NULL."""
    if null:
      return None, None
    np_dtype = testing.numpy_dtype(dtype if dtype in FLOATS else "float32")
    if data is not None:
      arr = np.ascontiguousarray(data.reshape(-1).astype(np_dtype))
    else:
      arr = np.empty(elements, np_dtype)
      arr.view(np.uint8).fill(0xFF)  # NaN in every float format
    return arr, arr.ctypes.data_as(ctypes.c_void_p)

  def run(self, spec):
    ex = expect(spec, "cabi")
    c = spec.get("cabi") or {}
    problem = self._problem(spec)
    self.pref = None if c.get("null_problem") else ctypes.byref(problem)
    self.err_size = c.get("error_size", 1024)
    self.error = ctypes.create_string_buffer(max(1, self.err_size))
    if op_of(spec) != "filter_grad":
      return self._run_new(spec, ex, c)
    geometry = self.cabi.Geometry()
    status = self.f.dwop_validate(self.pref, ctypes.byref(geometry),
                                  self.error, self.err_size)
    if ex.ok or ex.stage == "buffers":
      if status != 0:
        raise Mismatch(f"dwop_validate refused a valid problem: "
                       f"{self._message()}")
      for k, v in (ex.geometry or {}).items():
        if getattr(geometry, k) != v:
          raise Mismatch(f"geometry {k}={getattr(geometry, k)}, expected {v}")
    else:
      self._check_refusal(spec, ex, status)
    if not ex.ok:
      self._run_refused(spec, ex, c.get("null_buffer"))
      return "error"
    if not (_cheap_output(spec) and all(
        _elements(spec[k]) <= MAX_ELEMENTS for k in ("input",
                                                      "out_backprop"))):
      return "validated"  # too large to run here
    return self._run_kernels(spec, c)

  def _message(self):
    return self.error.value.decode(errors="replace")

  def _full_message(self, call):
    """The error message of a refused call, run again with a full buffer
    where the case's own (a mutation) was too small to hold it."""
    if self.err_size >= 1024:
      return self._message()
    error = ctypes.create_string_buffer(1024)
    call(error, ctypes.sizeof(error))
    return error.value.decode(errors="replace")

  def _check_refusal(self, spec, ex, status):
    msg = self._message()
    if status != self.STATUS_INVALID:
      raise Mismatch(f"status {status} for an invalid problem "
                     f"({ex.reason}): {msg}")
    if self.err_size >= 1024:
      check_error(spec, ex, "DWOP_INVALID_ARGUMENT", msg)
    elif len(self.error.value) > max(0, self.err_size - 1):
      raise Mismatch(f"message of {len(self.error.value)} bytes in a "
                     f"{self.err_size}-byte buffer")

  def _run_refused(self, spec, ex, null):
    """Both kernels refuse without touching the (tiny, or NULL) buffers."""
    x, _ = self._buffer("float64", np.full(4, np.nan), null=null == "input")
    dy, _ = self._buffer("float64", np.full(4, np.nan),
                         null=null == "out_backprop")
    out, _ = self._buffer("float64", np.full(4, -7.0),
                          null=null == "filter_backprop")
    ptr = lambda a: None if a is None else a.ctypes.data_as(ctypes.c_void_p)
    for call in ("cpu", "reference", "cuda_emulated"):
      self.error.value = b""
      if call == "cpu":
        status = self.f.dwop_filter_grad_cpu(self.pref, ptr(x), ptr(dy),
                                             ptr(out), 2, self.error,
                                             self.err_size)
      elif call == "reference":
        status = self.f.dwop_filter_grad_reference(self.pref, ptr(x), ptr(dy),
                                                   ptr(out), self.error,
                                                   self.err_size)
      else:
        status = self.f.dwop_filter_grad_cuda_emulated(
            self.pref, ptr(x), ptr(dy), ptr(out),
            self.cabi.CUDA_PATHS["auto"], 2, 48 << 10, self.error,
            self.err_size)
      self._check_refusal(spec, ex, status)
      if out is not None and not np.all(out == -7.0):
        raise Mismatch(f"dwop_filter_grad_{call} wrote its output on error")

  def _call_new(self, op, backend, a, b, out, threads=2):
    """dwop_<op>_<backend> on buffers (numpy arrays or None)."""
    ptr = lambda v: None if v is None else v.ctypes.data_as(ctypes.c_void_p)
    self.error.value = b""
    if backend == "cpu":
      return getattr(self.f, f"dwop_{op}_cpu")(
          self.pref, ptr(a), ptr(b), ptr(out), threads, self.error,
          self.err_size)
    return getattr(self.f, f"dwop_{op}_reference")(
        self.pref, ptr(a), ptr(b), ptr(out), self.error, self.err_size)

  def _run_new(self, spec, ex, c):
    """The forward or the input gradient: refused without touching the
    buffers (checking the message), or run on the CPU kernel at several
    thread counts (bitwise equal) and the reference kernel, on buffers of
    exactly the right size, NaN-poisoned, against the float64 oracle."""
    op = op_of(spec)
    names = OP_BUFFERS[op]
    null = c.get("null_buffer")
    if not ex.ok:
      bufs = [None if null == n else np.full(4, v) for n, v in
              zip(names, (np.nan, np.nan, -7.0))]
      for backend in ("cpu", "reference"):
        status = self._call_new(op, backend, *bufs)
        self._check_refusal(spec, ex, status)
        if bufs[2] is not None and not np.all(bufs[2] == -7.0):
          raise Mismatch(f"dwop_{op}_{backend} wrote its output on error")
      return "error"
    spec = dict(spec, padding=_c_string(spec["padding"], "cabi"),
                data_format=_c_string(spec["data_format"], "cabi"))
    dtype = spec["dtype"]
    shapes = new_op_shapes(spec, ex)
    a, b = new_op_values(spec, shapes)
    ab = [self._buffer(dtype, v, null=null == n)[0]
          for n, v in zip(names[:2], (a, b))]
    n_out = _elements(shapes[names[2]])
    results = []
    for t in (1, 3, c.get("threads", 0), None):
      out = self._buffer(dtype, elements=n_out, null=null == names[2])[0]
      backend = "reference" if t is None else "cpu"
      status = self._call_new(op, backend, ab[0], ab[1], out,
                              0 if t is None else t)
      who = "reference" if t is None else f"cpu (threads={t})"
      if status != 0:
        raise Mismatch(f"dwop_{op}_{who} failed: {self._message()}")
      if out is None:
        out = np.zeros(0, testing.numpy_dtype(dtype))
      results.append((who, out))
    cpu = [r for r in results if r[0].startswith("cpu")]
    for who, out in cpu[1:]:
      if out.tobytes() != cpu[0][1].tobytes():
        raise Mismatch(f"dwop_{op}_{who} differs bitwise from 1 thread")
    if n_out == 0:
      return "ok"
    want = new_op_oracle(spec, ex, a, b)
    tol = 0.0 if nothing_to_sum(spec, ex) else tolerance.atol(
        dtype, a, b, new_op_terms(spec))
    for who, out in results:
      try:
        check_result(spec, out.astype(np.float64).reshape(want.shape), a, b,
                     want=want, tol=tol)
      except Mismatch as e:
        raise Mismatch(f"dwop_{op}_{who}: {e}") from None
    return "ok"

  def _run_emulated(self, spec, xp, dp, n_out, null):
    """The CUDA paths, emulated: auto, register and tiled."""
    results = []
    sm_count, smem = _emulated_devices(spec["seed"])
    # An empty problem needs no indexing: every path must take it.
    empty = 0 in (n_out, _elements(spec["input"]),
                  _elements(spec["out_backprop"]))
    for name, path in self.cabi.CUDA_PATHS.items():
      oa, op = self._buffer(spec["dtype"], elements=n_out,
                            null=null == "filter_backprop")
      status = self.f.dwop_filter_grad_cuda_emulated(
          self.pref, xp, dp, op, path, sm_count, smem, self.error,
          self.err_size)
      who = f"cuda_emulated {name} ({sm_count} SMs)"
      # A forced path may refuse a problem it cannot run (the tiled one
      # needs unit column stride and dilation, and tiles that fit the
      # device's shared memory); the op's own choice only one beyond the
      # CUDA kernels' 32-bit indexing limit (cuda_plan.h). Never an empty one.
      if status == self.STATUS_INVALID and not empty and (
          name != "auto" or "with 32-bit integers" in self._full_message(
              lambda e, n, p=path: self.f.dwop_filter_grad_cuda_emulated(
                  self.pref, xp, dp, op, p, sm_count, smem, e, n))):
        continue
      if status != 0:
        raise Mismatch(f"{who} failed: {self._message()}")
      if oa is None:
        oa = np.zeros(0, testing.numpy_dtype(spec["dtype"]))
      results.append((who, oa))
    return results

  def _run_kernels(self, spec, c):
    # The oracle reads the strings as C does (up to the first NUL).
    spec = dict(spec, padding=_c_string(spec["padding"], "cabi"),
                data_format=_c_string(spec["data_format"], "cabi"))
    dtype = spec["dtype"]
    x, dy = values(spec)
    null = c.get("null_buffer")  # only on an empty tensor here
    xa, xp = self._buffer(dtype, x, null=null == "input")
    da, dp = self._buffer(dtype, dy, null=null == "out_backprop")
    self._alive = (xa, da)
    n_out = _elements(spec["filter_sizes"])
    results = []
    for t in (1, 3, c.get("threads", 0), None):
      oa, op = self._buffer(dtype, elements=n_out,
                            null=null == "filter_backprop")
      if t is None:
        status = self.f.dwop_filter_grad_reference(self.pref, xp, dp, op,
                                                   self.error, self.err_size)
      else:
        status = self.f.dwop_filter_grad_cpu(self.pref, xp, dp, op, t,
                                             self.error, self.err_size)
      name = "reference" if t is None else f"cpu (threads={t})"
      if status != 0:
        raise Mismatch(f"{name} failed: {self._message()}")
      if oa is None:
        oa = np.zeros(0, testing.numpy_dtype(dtype))
      results.append((name, oa))
    results += self._run_emulated(spec, xp, dp, n_out, null)
    cpu = [r for r in results if r[0].startswith("cpu")]
    for name, oa in cpu[1:]:
      if oa.tobytes() != cpu[0][1].tobytes():
        raise Mismatch(f"{name} differs bitwise from 1 thread")
    if n_out == 0:
      return "ok"  # NumPy may not hold its shape ([2^62, 0, 1, 1])
    for name, oa in results:
      try:
        check_result(spec, oa.astype(np.float64).reshape(
            spec["filter_sizes"]), x, dy)
      except Mismatch as e:
        raise Mismatch(f"{name}: {e}") from None
    return "ok"


class _SelfTest:
  """Wraps a backend to misbehave on float64 specs, so that tests can check
  that the harness reports crashes, hangs and wrong answers (environment
  variable DWOP_FUZZ_SELFTEST = abort, hang or wrong)."""

  def __init__(self, backend, mode):
    self.backend, self.mode, self.name = backend, mode, backend.name

  def run(self, spec):
    if spec["dtype"] == "float64":
      if self.mode == "abort":
        os.abort()
      if self.mode == "hang":
        time.sleep(3600)
      if self.mode == "wrong":
        raise Mismatch("self-test: a wrong answer")
    return self.backend.run(spec)


def _emulated_devices(seed):
  """(sm_count, shared memory per block) of a small and a large GPU."""
  return [(2, 48 << 10), (132, 227 << 10)][seed % 2]


def backend_named(name):
  backend = TfBackend() if name == "tf" else CabiBackend()
  mode = os.environ.get("DWOP_FUZZ_SELFTEST")
  return _SelfTest(backend, mode) if mode else backend
