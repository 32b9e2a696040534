"""The CUDA forward and input gradient, checked where no GPU is needed.

- The host emulator (cc/kernels/cuda/cuda.h, EmulateCuda) runs the kernels'
  code (cc/kernels/cuda/conv_kernels.h) on every CONFORMANCE case and every
  python/gpu_check.py CONV_CASES shape in both layouts and all four dtypes,
  and matches the float64 oracle (python/reference.py) within the per-dtype
  tolerance of tests/testing.py (RTOL, relative to the sum of the terms'
  absolute values), with every element written (outputs start as NaN).
- It is deterministic: a second run, and a plan for another SM count, give
  the same bytes.
- The planner (cc/kernels/cuda/conv_plan.h) covers every result element
  exactly once, and refuses what its 32-bit indices cannot reach.
- The C ABI's GPU entry points fail cleanly without a GPU.
On a GPU, python/gpu_check.py --ops forward,input_grad runs the same code on
the device.
"""


from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import cabi
import cases
import gpu_check
import testing
import tolerance

OPS = ("forward", "input_grad")
KERNELS = {("forward", "NHWC"): "forward_nhwc",
           ("forward", "NCHW"): "forward_nchw",
           ("input_grad", "NHWC"): "input_grad_nhwc",
           ("input_grad", "NCHW"): "input_grad_nchw"}


def conv_cases():
  """CONV_CASES in both layouts and every dtype."""
  out = []
  for case in gpu_check.CONV_CASES:
    for layout in cases.LAYOUTS:
      for dtype in cases.DTYPES:
        out.append(case.replace(name=f"{case.name}_{layout.lower()}_{dtype}",
                                data_format=layout, dtype=dtype))
  return out


ALL_CASES = cases.CONFORMANCE + conv_cases()


def ceil_div(a, b):
  return -(-a // b)


def library():
  return cabi.Library()


def result_elements(case, op):
  return int(np.prod(gpu_check.conv_result_shape(case, op)))


def covered_elements(case, op, p):
  """The result offsets the plan's items write, in item order, derived from
  the item decomposition documented in conv_kernels.h."""
  items = np.arange(p["items"], dtype=np.int64)
  if case.data_format == "NCHW":
    return items  # one element per item: its own offset
  # NHWC: item = ((n * rows + row) * col_runs + run) * depth + channel.
  if op == "forward":
    _, rows, width, depth = case.out_backprop_nhwc
  else:
    _, rows, width, depth = case.input
  cols = p["cols_per_thread"]
  ch = items % depth
  rest = items // depth
  run = rest % p["col_runs"]
  rest //= p["col_runs"]
  row = rest % rows
  img = rest // rows
  offsets = []
  for j in range(cols):
    col = run * cols + j
    ok = col < width
    offsets.append((((img * rows + row) * width + col) * depth + ch)[ok])
  return np.concatenate(offsets)


class CudaConvPlanTest(parameterized.TestCase):

  def check_plan(self, case, op, p):
    elements = result_elements(case, op)
    self.assertEqual(p["output_elements"], elements)
    if elements == 0:
      self.assertEqual(p["kernel"], "nothing")
      return
    if case.is_empty:
      self.assertEqual(p["kernel"], "zero")
      self.assertEqual(p["output_bytes"],
                       elements * {"float16": 2, "bfloat16": 2, "float32": 4,
                                   "float64": 8}[case.dtype])
      return
    self.assertEqual(p["kernel"], KERNELS[(op, case.data_format)])
    self.assertEqual(p["threads"], 256)
    self.assertBetween(p["blocks"], 1, 2**31 - 1)
    # The grid covers the items, no block is empty.
    self.assertGreaterEqual(p["blocks"] * p["threads"], p["items"])
    self.assertLess((p["blocks"] - 1) * p["threads"], p["items"])
    n, h, w, c = case.input
    _, oh, ow, oc = case.out_backprop_nhwc
    if case.data_format == "NHWC":
      if op == "forward":
        rows, width, depth, cols = oh, ow, oc, min(4, ow)
      else:
        rows, width, depth = h, w, c
        cols = min(4, w) if case.strides[1] == 1 else 1
      self.assertEqual(p["cols_per_thread"], cols)
      self.assertEqual(p["col_runs"], ceil_div(width, cols))
      self.assertEqual(p["items"], n * rows * p["col_runs"] * depth)
    else:
      self.assertEqual(p["cols_per_thread"], 1)
      self.assertEqual(p["col_runs"], 0)
      self.assertEqual(p["items"], elements)

  @parameterized.named_parameters(cases.named(ALL_CASES + cases.BENCH))
  def test_plan(self, case):
    lib = library()
    for op in OPS:
      p = gpu_check.conv_plan(lib, case, op, sm_count=132)
      self.check_plan(case, op, p)
      # The plan does not depend on the device.
      self.assertEqual(p, gpu_check.conv_plan(lib, case, op, sm_count=1))

  @parameterized.named_parameters(cases.named(
      [c for c in ALL_CASES if c.dtype == "float32"]))
  def test_every_element_exactly_once(self, case):
    lib = library()
    for op in OPS:
      p = gpu_check.conv_plan(lib, case, op, sm_count=132)
      if p["kernel"] in ("nothing", "zero"):
        continue
      covered = covered_elements(case, op, p)
      counts = np.bincount(covered, minlength=result_elements(case, op))
      self.assertLen(counts, result_elements(case, op))
      self.assertTrue(np.all(counts == 1), f"{op}: {counts}")

  @parameterized.named_parameters(
      ("dimension_over_2_to_30", (1, 2**30 + 2, 1, 1), (1, 1, 1, 1),
       "in_rows"),
      ("column_span", (1, 1, 2**30, 1), (1, 1, 1, 1), "columns",
       (1, 2**30 - 1)),
      ("row_span", (1, 2**30, 1, 1), (1, 1, 1, 1), "rows", (2**29, 1)))
  def test_32_bit_index_limits(self, shape, filter_sizes, what,
                               strides=(1, 1), dilations=(1, 1)):
    case = cases.Case("huge", shape, filter_sizes, padding="VALID",
                      strides=strides, dilations=dilations)
    lib = library()
    for op in OPS:
      with self.assertRaises(cabi.DwopError) as e:
        gpu_check.conv_plan(lib, case, op, sm_count=132)
      self.assertEqual(e.exception.status, "INVALID_ARGUMENT")
      self.assertIn(what, e.exception.message)
      self.assertIn("32-bit", e.exception.message)

  def test_beyond_2_to_31_elements_plans(self):
    case = cases.Case("big", (4096, 256, 256, 16), (3, 3, 16, 1))
    lib = library()
    for op in OPS:
      p = gpu_check.conv_plan(lib, case, op, sm_count=132)
      self.check_plan(case, op, p)
      self.assertGreater(p["output_elements"], 2**31)

  def test_unknown_op_is_rejected(self):
    lib = library()
    case = cases.CONFORMANCE[0]
    problem = lib.problem(case.dtype, case.input_shape, case.filter, (),
                          case.tf_strides, case.tf_padding)
    plan = cabi.CudaConvPlan()
    error = cabi.ctypes.create_string_buffer(256)
    status = lib.lib.dwop_cuda_conv_plan_problem(
        cabi.ctypes.byref(problem), 7, 132, cabi.ctypes.byref(plan), error,
        256)
    self.assertEqual(status, 1)
    self.assertIn(b"dwop_conv_op", error.value)


class CudaConvEmulatorTest(parameterized.TestCase):
  """The kernels' code on the host against the float64 oracle."""

  @parameterized.named_parameters(cases.named(ALL_CASES))
  def test_matches_oracle(self, case):
    lib = library()
    for op in OPS:
      a64, b64 = gpu_check.conv_inputs(case, op, seed=2)
      a = gpu_check.to_storage(a64, case.dtype)
      b = gpu_check.to_storage(b64, case.dtype)
      want = gpu_check.conv_oracle(case, op, a64, b64)
      got = gpu_check.conv_emulate(lib, case, op, a, b, sm_count=132)
      self.assertEqual(got.shape, want.shape)
      values = gpu_check.from_storage(got, case.dtype)
      self.assertTrue(np.all(np.isfinite(values)), f"{op}: unwritten or "
                      "non-finite elements")
      err = np.abs(values - want)
      bound = tolerance.conv_atol(op, case.dtype, a64, b64, case.filter)
      self.assertTrue(np.all(err <= bound),
                      f"{op}: max error {err.max(initial=0.0)}, "
                      f"worst ratio {np.max(err / bound, initial=0.0)}")
      # A second run, planned for another device, gives the same bytes.
      again = gpu_check.conv_emulate(lib, case, op, a, b, sm_count=1)
      self.assertEqual(got.tobytes(), again.tobytes(), op)

  def test_gather_matches_reference_kernel_bitwise_for_exact_sums(self):
    # Small integers over 8: every sum is exact, so the CUDA gather's fused
    # multiply-adds and the C++ reference's products agree bit for bit.
    lib = library()
    case = cases.Case("exact", (2, 7, 6, 5), (3, 3, 5, 2), strides=(2, 1),
                      dilations=(1, 2), data_format="NCHW")
    x, w = gpu_check.conv_inputs(case, "forward")
    got = lib.forward(x, w, case.tf_strides, case.tf_padding,
                      case.data_format, case.tf_dilations,
                      backend="cuda_emulator")
    ref = lib.forward(x, w, case.tf_strides, case.tf_padding,
                      case.data_format, case.tf_dilations)
    self.assertEqual(got.tobytes(), ref.tobytes())
    w, dy = gpu_check.conv_inputs(case, "input_grad")
    got = lib.input_grad(case.input_shape, w, dy, case.tf_strides,
                         case.tf_padding, case.data_format,
                         case.tf_dilations, backend="cuda_emulator")
    ref = lib.input_grad(case.input_shape, w, dy, case.tf_strides,
                         case.tf_padding, case.data_format,
                         case.tf_dilations)
    self.assertEqual(got.tobytes(), ref.tobytes())


class GpuCheckHostSideTest(parameterized.TestCase):
  """What python/gpu_check.py does before it needs a GPU."""

  def test_help(self):
    result = testing.run_python("""
        import sys
        sys.argv = ["gpu_check.py", "--help"]
        import gpu_check
        try:
          gpu_check.main()
        except SystemExit as e:
          print("exit", e.code)
        """, timeout=120)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn("--ops", result.stdout)
    self.assertIn("exit 0", result.stdout)

  def test_case_selection(self):
    groups = gpu_check.select_groups("conv_s2_d2", ["forward", "input_grad"])
    self.assertEqual([(op, c.name) for op, c, _ in groups],
                     [("forward", "conv_s2_d2"), ("input_grad", "conv_s2_d2")])
    everything = gpu_check.select_groups("", gpu_check.OPS)
    per_op = len(cases.CONFORMANCE) + len(cases.BENCH)
    self.assertLen(everything, 3 * per_op + len(gpu_check.CUDA_CASES) +
                   2 * len(gpu_check.CONV_CASES))

  @parameterized.named_parameters(
      ("same", cases.Case("s", (1, 5, 6, 2), (3, 3, 2, 1)), (1, 1, 1, 1)),
      ("same_even", cases.Case("e", (1, 6, 6, 2), (4, 2, 2, 1)),
       (1, 2, 0, 1)),
      ("explicit", cases.Case("x", (1, 6, 5, 3), (3, 2, 3, 2),
                              padding=((2, 0), (1, 3))), (2, 0, 1, 3)),
      ("valid_crop", cases.Case("v", (1, 7, 7, 1), (3, 3, 1, 1),
                                strides=(2, 3), padding="VALID"),
       (0, 0, 0, -1)))
  def test_torch_padding(self, case, want):
    self.assertEqual(gpu_check.torch_conv_geometry(library(), case), want)


class CudaConvAbiTest(parameterized.TestCase):

  def test_without_gpu_the_entry_points_fail_cleanly(self):
    lib = library()
    if lib.cuda_device_count()[0] > 0:
      self.skipTest("a GPU is present: python/gpu_check.py runs the kernels")
    # In a subprocess: a crash must fail the test, not end the test run.
    result = testing.run_python("""
        import cabi
        lib = cabi.Library()
        for call in (
            lambda: lib.forward_cuda("float32", (1, 4, 4, 2), (3, 3, 2, 1),
                                     (1, 1, 1, 1), "SAME", 16, 32, 64),
            lambda: lib.input_grad_cuda("float32", (1, 4, 4, 2),
                                        (3, 3, 2, 1), (1, 4, 4, 2),
                                        (1, 1, 1, 1), "SAME", 16, 32, 64)):
          try:
            call()
            print("OK")
          except cabi.DwopError as e:
            print(e.status, e.message)
        """, timeout=120)
    self.assertEqual(result.returncode, 0, result.stderr)
    lines = result.stdout.splitlines()
    self.assertLen(lines, 2)
    for line in lines:
      self.assertTrue(line.startswith("UNAVAILABLE "), line)

  def test_invalid_problem_is_rejected_before_cuda(self):
    lib = library()
    with self.assertRaises(cabi.DwopError) as e:
      lib.forward_cuda("float32", (1, 4, 4, 2), (3, 3, 3, 1), (1, 1, 1, 1),
                       "SAME", 16, 32, 64)
    self.assertEqual(e.exception.status, "INVALID_ARGUMENT")

  def test_null_buffer_is_rejected(self):
    lib = library()
    with self.assertRaises(cabi.DwopError) as e:
      lib.input_grad_cuda("float32", (1, 4, 4, 2), (3, 3, 2, 1),
                          (1, 4, 4, 2), (1, 1, 1, 1), "SAME", 0, 32, 64)
    self.assertEqual(e.exception.status, "INVALID_ARGUMENT")
    self.assertIn("NULL", e.exception.message)


if __name__ == "__main__":
  absltest.main()
