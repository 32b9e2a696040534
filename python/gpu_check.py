"""Checks dwop's CUDA kernels on a GPU machine, without TensorFlow.

    python3 python/gpu_check.py [--cases SUBSTR[,SUBSTR...]] [--quick]
                                [--ops OP[,OP...]] [--paths] [--no-timing]
                                [--no-torch] [--no-build] [--json PATH]

From the project root: builds the C ABI with the CUDA kernels (`make cabi`:
nvcc only, no TensorFlow), then for every case of python/cases.py (CONFORMANCE
and BENCH) and CUDA_CASES below it
  - runs the CUDA kernel through the C ABI on PyTorch-owned device buffers and
    compares it with the float64 oracle (python/reference.py) and with the
    CPU kernel, within the tolerance of python/tolerance.py;
  - runs it again and compares the bytes (determinism);
  - for the small cases, also forces each kernel family (register, tiled) and
    compares the GPU bytes with the host emulator of the same kernels
    (reported in column "emu"; a mismatch is a warning, not a failure);
  - times dwop and PyTorch's torch.nn.grad.conv2d_weight (cuDNN, groups=C,
    channels_last for NHWC cases, TF32 off, cudnn.benchmark on) with CUDA
    events: warm-up, then the median of repeats, each behind a short
    torch.cuda._sleep so that host overhead is not timed.
The forward and the input gradient (--ops forward,input_grad; all three ops
by default) get the same checks for every case: the CUDA kernel against the
float64 oracle (reference.depthwise_conv2d and
depthwise_conv2d_backprop_input), twice (bytes equal), against the host
emulator for the small cases, and timed against PyTorch's
torch.nn.functional.conv2d(groups=C) and torch.nn.grad.conv2d_input (cuDNN).
Prints a table, writes JSON (--json, default .bench/gpu_check.json) and exits
1 if any case is wrong or not deterministic (2 when no GPU can be used).

--quick: fewer timing repeats, no CPU comparison for the BENCH cases.
--paths: also check and time the forced kernel families on BENCH cases
    (tuning the planner's choice).
--no-timing: correctness and determinism only, no PyTorch (use under
    compute-sanitizer). --no-torch: time dwop only.
--no-build: use the existing build/libdwop_c.so.

Under compute-sanitizer (memcheck; racecheck, synccheck and initcheck the
same way), build first, then run without timing; without PyTorch's caching
allocator every buffer is its own allocation, so memcheck sees an access one
element past a tensor:
    make cabi
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \\
        --error-exitcode 9 python3 python/gpu_check.py --no-build \\
        --no-timing --quick
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import cabi
import cases
import reference
import testing
import tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Case = cases.Case

# Shapes that reach the CUDA kernels' less common corners: several channel
# blocks and column segments, tap groups and tiles, tiled chunks and the
# tiled kernel's ring of input rows over several bands, depth multipliers,
# strides and dilations in the tiled kernel's rows. Small enough for the
# host emulator (tests/gpu_build_test.py runs them there too).
CUDA_CASES = [
    Case("cuda_c300_k3", (2, 10, 12, 300), (3, 3, 300, 1)),
    Case("cuda_c300_k3_half", (2, 10, 12, 300), (3, 3, 300, 1),
         dtype="float16"),
    Case("cuda_wide_k5", (1, 6, 90, 8), (5, 5, 8, 1)),
    Case("cuda_k13_d2", (2, 20, 20, 4), (13, 13, 4, 1), dilations=(2, 2)),
    Case("cuda_k64x1_m2", (4, 70, 9, 3), (64, 1, 3, 2), padding="VALID"),
    Case("cuda_k1x20", (2, 5, 40, 4), (1, 20, 4, 1)),
    Case("cuda_k40_two_chunks", (2, 20, 70, 3), (40, 40, 3, 1)),
    Case("cuda_k17x20_s2d2_rows_nchw", (2, 30, 20, 2), (17, 20, 2, 1),
         strides=(2, 1), dilations=(2, 1), data_format="NCHW"),
    Case("cuda_k31_m2_nchw", (2, 40, 30, 2), (31, 31, 2, 2),
         data_format="NCHW"),
    Case("cuda_k31_nhwc", (2, 40, 30, 3), (31, 31, 3, 1)),
    Case("cuda_k31_bf16", (1, 24, 24, 2), (31, 31, 2, 1), dtype="bfloat16"),
    Case("cuda_k3_s2_nchw", (3, 33, 65, 20), (3, 3, 20, 1), strides=(2, 2),
         data_format="NCHW"),
    Case("cuda_c144_k3_bf16", (4, 28, 28, 144), (3, 3, 144, 1),
         dtype="bfloat16"),
    Case("cuda_c96_k7", (2, 14, 14, 96), (7, 7, 96, 1)),
    Case("cuda_c96_k7_half", (2, 14, 14, 96), (7, 7, 96, 1), dtype="float16"),
    Case("cuda_k5_double", (2, 9, 9, 6), (5, 5, 6, 1), dtype="float64"),
    Case("cuda_k3_double_c8", (2, 9, 9, 8), (3, 3, 8, 1), dtype="float64"),
    Case("cuda_huge_pads", (1, 4, 4, 2), (3, 3, 2, 1),
         padding=((10, 10), (3, 20))),
    Case("cuda_stride_dilation_big", (1, 5, 5, 2), (3, 3, 2, 1),
         strides=(3, 4), dilations=(4, 5)),
    Case("cuda_k3_m4_c5", (2, 7, 9, 5), (3, 3, 5, 4)),
]

PATHS = tuple(cabi.CUDA_PATHS)  # ("auto", "register", "tiled")
OPS = ("filter_grad", "forward", "input_grad")

# Shapes for the forward and input-gradient kernels' corners: the forward
# NHWC thread's run of columns (ragged last run), channel counts across
# blocks, strides that do and do not divide the dilation (the input
# gradient's tap stepping), asymmetric and huge pads, depth multipliers,
# results with no terms (VALID with a filter larger than the input) and empty
# tensors. Small enough for the host emulator (tests/gpu_conv_test.py).
CONV_CASES = [
    Case("conv_c300_k3", (2, 6, 7, 300), (3, 3, 300, 1)),
    Case("conv_ow7_k3_m2", (1, 5, 7, 3), (3, 3, 3, 2)),
    Case("conv_s2_k3", (2, 9, 11, 5), (3, 3, 5, 1), strides=(2, 2)),
    Case("conv_s2x1_k4", (1, 10, 9, 3), (4, 4, 3, 1), strides=(2, 1)),
    Case("conv_d2_k3", (1, 9, 10, 3), (3, 3, 3, 1), dilations=(2, 2)),
    Case("conv_s2_d2", (1, 12, 13, 3), (3, 3, 3, 1), strides=(2, 2),
         dilations=(2, 2)),
    Case("conv_s3_d2", (1, 14, 15, 2), (5, 4, 2, 1), strides=(3, 3),
         dilations=(2, 2), padding="VALID"),
    Case("conv_s2_d4_m3", (2, 15, 14, 2), (3, 3, 2, 3), strides=(2, 2),
         dilations=(4, 4)),
    Case("conv_explicit_pads", (1, 6, 5, 3), (3, 2, 3, 2),
         padding=((2, 0), (1, 3))),
    Case("conv_huge_pads", (1, 4, 4, 2), (3, 3, 2, 1),
         padding=((10, 10), (3, 20))),
    Case("conv_k7_s2_c7", (2, 13, 12, 7), (7, 7, 7, 1), strides=(2, 2)),
    Case("conv_k1x5_c1", (3, 4, 9, 1), (1, 5, 1, 1)),
    Case("conv_filter_larger_valid", (1, 2, 2, 3), (3, 3, 3, 1),
         padding="VALID"),
    Case("conv_empty_batch", (0, 4, 4, 3), (3, 3, 3, 1)),
    Case("conv_empty_channels", (1, 4, 4, 0), (3, 3, 0, 1)),
    Case("conv_empty_multiplier", (1, 4, 4, 3), (3, 3, 3, 0)),
    Case("conv_empty_filter_rows", (1, 4, 4, 3), (0, 3, 3, 1),
         padding="VALID"),
]


# ---- Host-side data in dwop's storage formats (no ml_dtypes needed).

def to_storage(values, dtype):
  """float64 array -> NumPy array in dtype (bfloat16: uint16 bit patterns)."""
  if dtype == "bfloat16":
    u = np.ascontiguousarray(values, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
  return np.ascontiguousarray(values, {"float16": np.float16,
                                       "float32": np.float32,
                                       "float64": np.float64}[dtype])


def from_storage(values, dtype):
  """The inverse of to_storage, as float64."""
  if dtype == "bfloat16":
    return (values.astype(np.uint32) << 16).view(np.float32).astype(
        np.float64)
  return values.astype(np.float64)


def oracle(case, x, dy, absolute=False):
  """The float64 oracle (testing.oracle); absolute: that of |x| and |dy|."""
  if absolute:
    x, dy = np.abs(x), np.abs(dy)
  return testing.oracle(case, x, dy)


def case_tolerance(case, x, dy, factor=1.0):
  """The absolute tolerance of a case's result (python/tolerance.py's policy,
  as every suite uses it); factor 2 compares two computed results."""
  return testing.tolerance(case.dtype, x, dy, case) * factor


def within_tolerance(got, want, atol):
  """(ok, max |got - want|): finite and within atol of want."""
  if got.size == 0:
    return True, 0.0
  err = np.abs(got - want)
  ok = bool(np.all(np.isfinite(got)) and np.all(err <= atol))
  return ok, float(np.nanmax(err)) if np.isfinite(err).any() else float("inf")


def emulate(lib, case, xs, dys, path, sm_count):
  """The host emulator's bytes for this case and path (None if no kernel)."""
  return lib.filter_grad(xs, case.filter, dys, case.tf_strides,
                         case.tf_padding, case.data_format, case.tf_dilations,
                         dtype=case.dtype, backend="cuda_emulator",
                         cuda_path=path, sm_count=sm_count,
                         shared_memory_per_block=48 * 1024)


# ---- The forward and the input gradient, host side.

def conv_inputs(case, op, seed=1):
  """The op's two operands as float64 arrays exactly representable in the
  dtype: (input, filter) for the forward, (filter, out_backprop) for the
  input gradient."""
  x, dy = case.random_inputs(seed=seed)
  rng = np.random.default_rng(seed + 1000)
  w = rng.integers(-8, 9, case.filter) / 8.0
  return (x, w) if op == "forward" else (w, dy)


def conv_oracle(case, op, a, b):
  """The float64 oracle of op on operands (a, b) (conv_inputs' order)."""
  if op == "forward":
    return reference.depthwise_conv2d(
        a, b, case.tf_strides, case.tf_padding, case.data_format,
        case.tf_dilations)
  return reference.depthwise_conv2d_backprop_input(
      case.input_shape, a, b, case.tf_strides, case.tf_padding,
      case.data_format, case.tf_dilations)


def conv_result_shape(case, op):
  return tuple(case.out_backprop_shape if op == "forward" else
               case.input_shape)


def conv_emulate(lib, case, op, a, b, sm_count=132):
  """The host emulator's result (storage format) of op on storage operands."""
  if op == "forward":
    return lib.forward(a, b, case.tf_strides, case.tf_padding,
                       case.data_format, case.tf_dilations, dtype=case.dtype,
                       backend="cuda_emulator", sm_count=sm_count)
  return lib.input_grad(case.input_shape, a, b, case.tf_strides,
                        case.tf_padding, case.data_format, case.tf_dilations,
                        dtype=case.dtype, backend="cuda_emulator",
                        sm_count=sm_count)


def conv_plan(lib, case, op, sm_count=0):
  return lib.cuda_conv_plan(op, case.dtype, case.input_shape, case.filter,
                            case.out_backprop_shape if op == "input_grad"
                            else (), case.tf_strides, case.tf_padding,
                            case.data_format, case.tf_dilations,
                            sm_count=sm_count)


def torch_conv_geometry(lib, case):
  """(pad_top, pad_bottom, pad_left, pad_right) that give the output size
  exactly (negative: crop), from dwop's resolved geometry."""
  g = lib.validate(lib.problem(
      case.dtype, case.input_shape, case.filter, case.out_backprop_shape,
      case.tf_strides, case.tf_padding, case.data_format, case.tf_dilations))
  kh, kw = case.filter[:2]
  sh, sw = case.strides
  dh, dw = case.dilations
  pb = ((g["out_rows"] - 1) * sh + (kh - 1) * dh + 1 - g["in_rows"] -
        g["pad_top"])
  pr = ((g["out_cols"] - 1) * sw + (kw - 1) * dw + 1 - g["in_cols"] -
        g["pad_left"])
  return g["pad_top"], pb, g["pad_left"], pr


# ---- The GPU side (PyTorch owns the buffers).

class Gpu:
  """Device buffers, dwop and PyTorch calls on the current CUDA device."""

  def __init__(self, lib):
    import torch  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.lib = lib
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    props = torch.cuda.get_device_properties(0)
    self.device_name = props.name
    self.sm_count = props.multi_processor_count
    self.torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                        "float32": torch.float32, "float64": torch.float64}

  def upload(self, storage, dtype):
    t = self.torch.from_numpy(
        storage.view(np.int16) if dtype == "bfloat16" else storage).cuda()
    return t.view(self.torch.bfloat16) if dtype == "bfloat16" else t

  def nan_filled(self, shape, dtype):
    t = self.torch.empty(shape, dtype=self.torch_dtype[dtype], device="cuda")
    bits = {2: self.torch.int16, 4: self.torch.int32, 8: self.torch.int64}
    t.view(bits[t.element_size()]).fill_(-1)  # all ones: NaN
    return t

  def stream(self):
    return self.torch.cuda.current_stream().cuda_stream

  def plan(self, case, path):
    return self.lib.cuda_plan(case.dtype, case.input_shape, case.filter,
                              case.out_backprop_shape, case.tf_strides,
                              case.tf_padding, case.data_format,
                              case.tf_dilations, path=path)

  def dwop_call(self, case, x, dy, path):
    """A closure running dwop into a fresh NaN-filled output; returns it."""
    plan = self.plan(case, path)
    workspace = self.torch.empty(max(1, plan["workspace_bytes"]),
                                 dtype=self.torch.uint8, device="cuda")

    def run(out=None):
      if out is None:
        out = self.nan_filled(case.filter, case.dtype)
      self.lib.filter_grad_cuda(
          case.dtype, case.input_shape, case.filter, case.out_backprop_shape,
          case.tf_strides, case.tf_padding, x.data_ptr(), dy.data_ptr(),
          out.data_ptr(), case.data_format, case.tf_dilations,
          stream=self.stream(), path=path, workspace_ptr=workspace.data_ptr(),
          workspace_bytes=plan["workspace_bytes"])
      return out

    return plan, run

  def to_host(self, t, dtype):
    self.torch.cuda.synchronize()
    if dtype == "bfloat16":
      return t.view(self.torch.int16).cpu().numpy().view(np.uint16)
    return t.cpu().numpy()

  def torch_call(self, case, x, dy):
    """A closure computing PyTorch's filter gradient of the same problem, and
    a function mapping its result to [KH, KW, C, M]."""
    torch = self.torch
    functional = torch.nn.functional
    kh, kw, c, m = case.filter
    nhwc = case.data_format == "NHWC"
    # PyTorch's logical layout is NCHW; NHWC data becomes channels_last.
    xt = x.permute(0, 3, 1, 2) if nhwc else x
    dyt = dy.permute(0, 3, 1, 2) if nhwc else dy
    _, _, h, w = xt.shape
    _, _, oh, ow = dyt.shape
    sh, sw = case.strides
    dh, dw = case.dilations
    geometry = self.lib.validate(self.lib.problem(
        case.dtype, case.input_shape, case.filter, case.out_backprop_shape,
        case.tf_strides, case.tf_padding, case.data_format,
        case.tf_dilations))
    pt, pl = geometry["pad_top"], geometry["pad_left"]
    # Padding after the input that makes the output exactly (oh, ow); it is
    # negative when the last input rows or columns are never read.
    pb = (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt
    pr = (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl
    padding = (pt, pl)
    if pt != pb or pl != pr:
      # Asymmetric (or cropping) padding: pad the input once, outside timing.
      xt = functional.pad(xt, (pl, pr, pt, pb))
      padding = (0, 0)
    if nhwc:
      xt = xt.contiguous(memory_format=torch.channels_last)
      dyt = dyt.contiguous(memory_format=torch.channels_last)
    weight_size = (c * m, 1, kh, kw)

    def run():
      return torch.nn.grad.conv2d_weight(xt, weight_size, dyt, stride=(sh, sw),
                                         padding=padding, dilation=(dh, dw),
                                         groups=c)

    def to_filter(result):
      r = result.float().cpu().numpy().astype(np.float64)
      return r.reshape(c, m, kh, kw).transpose(2, 3, 0, 1)

    return run, to_filter

  def conv_call(self, case, op, a, b):
    """A closure running dwop's op on device operands (a, b) into a fresh
    NaN-filled result (or `out`); returns it."""
    shape = conv_result_shape(case, op)

    def run(out=None):
      if out is None:
        out = self.nan_filled(shape, case.dtype)
      if op == "forward":
        self.lib.forward_cuda(
            case.dtype, case.input_shape, case.filter, case.tf_strides,
            case.tf_padding, a.data_ptr(), b.data_ptr(), out.data_ptr(),
            case.data_format, case.tf_dilations, stream=self.stream())
      else:
        self.lib.input_grad_cuda(
            case.dtype, case.input_shape, case.filter,
            case.out_backprop_shape, case.tf_strides, case.tf_padding,
            a.data_ptr(), b.data_ptr(), out.data_ptr(), case.data_format,
            case.tf_dilations, stream=self.stream())
      return out

    return run

  def torch_conv_call(self, case, op, a, b):
    """A closure computing PyTorch's forward (conv2d, groups=C) or input
    gradient (torch.nn.grad.conv2d_input) of the same problem, and a
    function mapping its result to dwop's layout as float64."""
    torch = self.torch
    functional = torch.nn.functional
    kh, kw, c, m = case.filter
    nhwc = case.data_format == "NHWC"
    to_nchw = (lambda t: t.permute(0, 3, 1, 2)) if nhwc else (lambda t: t)
    w = a if op == "input_grad" else b
    weight = w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()
    pt, pb, pl, pr = torch_conv_geometry(self.lib, case)
    symmetric = pt == pb and pl == pr
    memory = torch.channels_last if nhwc else torch.contiguous_format
    stride, dilation = tuple(case.strides), tuple(case.dilations)
    if op == "forward":
      xt = to_nchw(a)
      if not symmetric:  # pad (or crop) once, outside timing
        xt = functional.pad(xt, (pl, pr, pt, pb))
      xt = xt.contiguous(memory_format=memory)
      padding = (pt, pl) if symmetric else (0, 0)

      def run():
        return functional.conv2d(xt, weight, None, stride, padding, dilation,
                                 c)
    else:
      dyt = to_nchw(b).contiguous(memory_format=memory)
      n, h, wd, _ = case.input
      size = (n, c, h + (0 if symmetric else pt + pb),
              wd + (0 if symmetric else pl + pr))
      padding = (pt, pl) if symmetric else (0, 0)

      def run():
        dx = torch.nn.grad.conv2d_input(size, weight, dyt, stride, padding,
                                        dilation, c)
        if not symmetric:
          dx = functional.pad(dx, (-pl, -pr, -pt, -pb))
        return dx

    def to_layout(result):
      r = result.float().cpu().numpy().astype(np.float64)
      return r.transpose(0, 2, 3, 1) if nhwc else r

    return run, to_layout

  def time_ms(self, fn, warmup, repeats):
    """Median milliseconds of fn() on the GPU (CUDA events)."""
    torch = self.torch
    for _ in range(warmup):
      fn()
    times = []
    for _ in range(repeats):
      start = torch.cuda.Event(enable_timing=True)
      end = torch.cuda.Event(enable_timing=True)
      torch.cuda._sleep(1_000_000)  # GPU busy while the host enqueues
      start.record()
      fn()
      end.record()
      end.synchronize()
      times.append(start.elapsed_time(end))
    return statistics.median(times)


# ---- One case.

def check_case(lib, gpu, case, args, small):
  """Runs every check of one case; returns its JSON record."""
  record = {"case": case.name, "dtype": case.dtype, "layout": case.data_format,
            "input": list(case.input), "filter": list(case.filter),
            "flops": case.flops, "ok": True, "notes": []}
  x64, dy64 = case.random_inputs(seed=1)
  xs, dys = to_storage(x64, case.dtype), to_storage(dy64, case.dtype)
  want = oracle(case, x64, dy64)
  tol = case_tolerance(case, x64, dy64)
  x, dy = gpu.upload(xs, case.dtype), gpu.upload(dys, case.dtype)

  paths = PATHS if (small or args.paths) else ("auto",)
  for path in paths:
    try:
      plan, run = gpu.dwop_call(case, x, dy, path)
    except cabi.DwopError as e:
      if path != "auto" and e.status == "INVALID_ARGUMENT":
        continue  # this kernel family cannot run the problem
      raise
    out = run()
    first = gpu.to_host(out, case.dtype)
    second = gpu.to_host(run(), case.dtype)
    got = from_storage(first, case.dtype)
    if path == "auto":
      auto_got = got
    ok, err = within_tolerance(got, want, tol)
    deterministic = first.tobytes() == second.tobytes()
    entry = {"kernel": plan["kernel"], "splits": plan["splits"],
             "blocks": plan["blocks"], "max_error": err, "correct": ok,
             "deterministic": deterministic}
    if small:
      emulated = emulate(lib, case, xs, dys, path, gpu.sm_count)
      entry["emulator_bitwise"] = emulated.tobytes() == first.tobytes()
    if (path == "auto" or args.paths) and not args.no_timing:
      entry["dwop_ms"] = gpu.time_ms(lambda: run(out), args.warmup,
                                     args.repeats)
    record[path] = entry
    if not ok or not deterministic:
      record["ok"] = False

  if not (args.quick and not small):
    cpu = from_storage(lib.filter_grad(
        xs, case.filter, dys, case.tf_strides, case.tf_padding,
        case.data_format, case.tf_dilations, dtype=case.dtype), case.dtype)
    cpu_ok, record["cpu_max_error"] = within_tolerance(cpu, want, tol)
    agree, _ = within_tolerance(
        cpu, auto_got, case_tolerance(case, x64, dy64,
                                      tolerance.TWO_RESULTS))
    record["cpu_agrees"] = agree
    if not cpu_ok or not agree:
      record["ok"] = False
      record["notes"].append("the CPU kernel is off" if not cpu_ok else
                             "CUDA and CPU kernels disagree")

  if not case.is_empty and not args.no_timing and not args.no_torch:
    try:
      trun, to_filter = gpu.torch_call(case, x, dy)
      record["torch_max_error"] = float(np.max(np.abs(to_filter(trun()) -
                                                      want)))
      record["torch_ms"] = gpu.time_ms(trun, args.warmup, args.repeats)
    except Exception as e:  # pylint: disable=broad-except
      record["notes"].append(f"torch: {type(e).__name__}: {e}"[:200])
  return record


def check_conv_case(lib, gpu, case, op, args, small):
  """The forward's or input gradient's checks of one case; its record."""
  record = {"case": f"{op}:{case.name}", "op": op, "dtype": case.dtype,
            "layout": case.data_format, "input": list(case.input),
            "filter": list(case.filter), "flops": case.flops, "ok": True,
            "notes": []}
  a64, b64 = conv_inputs(case, op)
  a_st, b_st = to_storage(a64, case.dtype), to_storage(b64, case.dtype)
  want = conv_oracle(case, op, a64, b64)
  tol = tolerance.atol(case.dtype, a64, b64,
                       tolerance.conv_terms(op, case.filter))
  a, b = gpu.upload(a_st, case.dtype), gpu.upload(b_st, case.dtype)
  plan = conv_plan(lib, case, op)
  run = gpu.conv_call(case, op, a, b)
  out = run()
  first = gpu.to_host(out, case.dtype)
  second = gpu.to_host(run(), case.dtype)
  ok, err = within_tolerance(from_storage(first, case.dtype), want, tol)
  entry = {"kernel": plan["kernel"], "splits": 1, "blocks": plan["blocks"],
           "max_error": err, "correct": ok,
           "deterministic": first.tobytes() == second.tobytes()}
  if small:
    emulated = conv_emulate(lib, case, op, a_st, b_st, gpu.sm_count)
    entry["emulator_bitwise"] = emulated.tobytes() == first.tobytes()
  if not args.no_timing:
    entry["dwop_ms"] = gpu.time_ms(lambda: run(out), args.warmup,
                                   args.repeats)
  record["auto"] = entry
  record["ok"] = ok and entry["deterministic"]
  if not case.is_empty and not args.no_timing and not args.no_torch:
    try:
      trun, to_layout = gpu.torch_conv_call(case, op, a, b)
      record["torch_max_error"] = float(np.max(np.abs(to_layout(trun()) -
                                                      want)))
      record["torch_ms"] = gpu.time_ms(trun, args.warmup, args.repeats)
    except Exception as e:  # pylint: disable=broad-except
      record["notes"].append(f"torch: {type(e).__name__}: {e}"[:200])
  return record


def row(record):
  auto = record.get("auto", {})
  dwop_ms, torch_ms = auto.get("dwop_ms"), record.get("torch_ms")
  speedup = (f"{torch_ms / dwop_ms:7.2f}x" if dwop_ms and torch_ms
             else "      -")
  emu = [record[p].get("emulator_bitwise") for p in PATHS if p in record]
  emu = "-" if None in emu or not emu else ("yes" if all(emu) else "NO")
  det = all(record[p]["deterministic"] for p in PATHS if p in record)
  fmt = lambda v: f"{v:9.4f}" if v is not None else "        -"
  return (f"{record['case'][:40]:40s} {auto.get('kernel', '-')[:13]:13s} "
          f"{fmt(dwop_ms)} {fmt(torch_ms)} {speedup} "
          f"{auto.get('max_error', 0.0):9.2e} {'yes' if det else 'NO':>4s} "
          f"{emu:>4s} {'ok' if record['ok'] else 'FAIL'}")


def select_groups(selection, ops):
  """[(op, case, small)] for the ops and the cases whose names contain one
  of the comma-separated substrings of `selection` (all when empty). The
  filter gradient runs CONFORMANCE, CUDA_CASES and BENCH; the forward and
  input gradient CONFORMANCE, CONV_CASES and BENCH."""
  selected = [s for s in selection.split(",") if s]
  groups = []
  for op in ops:
    extra = CUDA_CASES if op == "filter_grad" else CONV_CASES
    groups += [(op, c, True) for c in cases.CONFORMANCE + extra]
    groups += [(op, c, False) for c in cases.BENCH]
  return [(op, c, small) for op, c, small in groups
          if not selected or any(s in c.name for s in selected)]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cases", default="",
                      help="comma-separated substrings of case names")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--ops", default=",".join(OPS),
                      help="comma-separated ops: " + ", ".join(OPS))
  parser.add_argument("--paths", action="store_true")
  parser.add_argument("--no-timing", action="store_true")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--no-build", action="store_true")
  parser.add_argument("--json", default=os.path.join(ROOT, ".bench",
                                                     "gpu_check.json"))
  args = parser.parse_args(argv)
  args.warmup, args.repeats = (2, 5) if args.quick else (5, 20)
  ops = [o for o in args.ops.split(",") if o]
  unknown = sorted(set(ops) - set(OPS))
  if unknown:
    parser.error(f"unknown ops {unknown}; choose from {list(OPS)}")

  if not args.no_build:
    subprocess.run(["make", "cabi"], cwd=ROOT, check=True)
  lib = cabi.Library()
  if not lib.cuda_built():
    print("build/libdwop_c.so was built without CUDA (is nvcc on the PATH? "
          "DWOP_CUDA=0?)", file=sys.stderr)
    return 2
  count, why = lib.cuda_device_count()
  if count == 0:
    print(f"no usable CUDA device: {why}", file=sys.stderr)
    return 2
  gpu = Gpu(lib)

  groups = select_groups(args.cases, ops)
  print(f"# {gpu.device_name}, {gpu.sm_count} SMs; torch "
        f"{gpu.torch.__version__}, CUDA {gpu.torch.version.cuda}, cuDNN "
        f"{gpu.torch.backends.cudnn.version()}; {len(groups)} cases")
  print(f"{'case':40s} {'kernel':13s} {'dwop ms':>9s} {'torch ms':>9s} "
        f"{'speedup':>8s} {'max err':>9s} {'det':>4s} {'emu':>4s} result")
  records, started = [], time.time()
  for op, case, small in groups:
    try:
      if op == "filter_grad":
        record = check_case(lib, gpu, case, args, small)
      else:
        record = check_conv_case(lib, gpu, case, op, args, small)
    except Exception as e:  # pylint: disable=broad-except
      name = case.name if op == "filter_grad" else f"{op}:{case.name}"
      record = {"case": name, "ok": False,
                "notes": [f"{type(e).__name__}: {e}"]}
      print(f"{name[:40]:40s} ERROR {e}")
      records.append(record)
      continue
    records.append(record)
    print(row(record) + ("  " + "; ".join(record["notes"])
                         if record["notes"] else ""), flush=True)

  failed = [r["case"] for r in records if not r["ok"]]
  emulator_mismatch = [r["case"] for r in records if any(
      r.get(p, {}).get("emulator_bitwise") is False for p in PATHS)]
  bench = {c.name: c for c in cases.BENCH}
  base = lambda r: r["case"].split(":", 1)[-1]
  timed = [r for r in records if base(r) in bench and r.get("torch_ms")
           and r.get("auto", {}).get("dwop_ms")]
  summary = {"device": gpu.device_name, "sm_count": gpu.sm_count,
             "torch": gpu.torch.__version__, "cases": len(records),
             "failed": failed, "emulator_mismatch": emulator_mismatch,
             "seconds": time.time() - started, "records": records}
  os.makedirs(os.path.dirname(args.json), exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(summary, f, indent=1)
  print(f"# {len(records)} cases, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
        + f"; JSON in {args.json}")
  for op in ops:
    mine = [r for r in timed if r.get("op", "filter_grad") == op]
    for label, chosen in (("BENCH", mine), ("BENCH filters >= 7x7", [
        r for r in mine if min(bench[base(r)].filter[:2]) >= 7])):
      if chosen:
        speedups = [r["torch_ms"] / r["auto"]["dwop_ms"] for r in chosen]
        print(f"# {op} speedup over PyTorch, {label}: min "
              f"{min(speedups):.2f}x, geomean "
              f"{float(np.exp(np.mean(np.log(speedups)))):.2f}x "
              f"({len(chosen)} cases)")
  if emulator_mismatch:
    print("# warning: GPU bytes differ from the host emulator's for: "
          + ", ".join(emulator_mismatch))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
