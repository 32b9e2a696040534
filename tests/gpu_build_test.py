"""The CUDA build, checked where no GPU is needed.

- The op library built with CUDA registers GPU kernels for every dtype, with
  filter_sizes in host memory, and still runs its CPU kernel on a machine
  without a GPU (skipped, saying so, when it was built without CUDA).
- The C ABI reports CUDA availability consistently, and its CUDA entry points
  answer with a clean error on a machine without a GPU.
- The launch planner (cc/kernels/cuda/plan.h), by its invariants rather than
  its formulas: for every case of python/cases.py the grid covers all the
  work (taps, channels, rows, splits; no empty part), the device's limits
  hold, shared memory and workspace hold what the kernels write, and it
  refuses what its 32-bit indices cannot reach.
- The CUDA kernels' code, run by the host emulator (cc/kernels/cuda/cuda.h,
  EmulateCuda), matches the float64 oracle for every CONFORMANCE case and the
  CUDA-specific cases of python/gpu_check.py, through every kernel family and
  several reduction splits. On a GPU, python/gpu_check.py runs the same code
  on the device.
"""

import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import cabi
import cases
import gpu_check
import testing

OP = "Dwop>DepthwiseConv2dBackpropFilter"
CUDA_STAMP = b"DWOP_BUILT_WITH_CUDA=1"
ACC_BYTES = {"float16": 4, "bfloat16": 4, "float32": 4, "float64": 8}
KERNELS = {"NHWC": "register_nhwc", "NCHW": "register_nchw"}
SMEM = 48 * 1024


def op_library_path():
  """The op library the dwop package loads (make's or Bazel's)."""
  from dwop import _loader  # pylint: disable=g-import-not-at-top
  return _loader.library_path()


def op_library_has_cuda():
  with open(op_library_path(), "rb") as f:
    return CUDA_STAMP in f.read()


def library():
  return cabi.Library()


def plan(case, path="auto", sm_count=132, smem=SMEM):
  return library().cuda_plan(case.dtype, case.input_shape, case.filter,
                             case.out_backprop_shape, case.tf_strides,
                             case.tf_padding, case.data_format,
                             case.tf_dilations, path=path, sm_count=sm_count,
                             shared_memory_per_block=smem)


def ceil_div(a, b):
  return -(-a // b)


class GpuRegistrationTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not op_library_has_cuda():
      raise absltest.SkipTest(
          f"{op_library_path()} was built without CUDA (nvcc not on the "
          "PATH, or DWOP_CUDA=0): no GPU kernels to check")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import dwop  # pylint: disable=g-import-not-at-top
    from dwop import _loader  # pylint: disable=g-import-not-at-top
    from tensorflow.python.framework import kernels  # pylint: disable=g-import-not-at-top
    _loader.load()
    cls.dwop = dwop
    cls.registered = kernels.get_registered_kernels_for_op(OP).kernel

  @parameterized.named_parameters(
      ("half", 19), ("bfloat16", 14), ("float", 1), ("double", 2))
  def test_gpu_kernel_registered(self, type_enum):
    gpu = [k for k in self.registered if k.device_type == "GPU" and any(
        c.name == "T" and type_enum in c.allowed_values.list.type
        for c in k.constraint)]
    self.assertLen(gpu, 1)
    self.assertEqual(list(gpu[0].host_memory_arg), ["filter_sizes"])

  def test_cpu_kernels_remain(self):
    cpu = [k for k in self.registered if k.device_type == "CPU"]
    self.assertLen(cpu, 4)

  def test_cpu_kernel_runs_in_the_cuda_build(self):
    case = cases.Case("k3", (2, 7, 6, 5), (3, 3, 5, 2), strides=(2, 1))
    x, dy = case.random_inputs(seed=3)
    got = self.dwop.depthwise_conv2d_backprop_filter(
        x.astype(np.float32), case.filter, dy.astype(np.float32),
        case.tf_strides, case.tf_padding)
    testing.assert_close(got.numpy(), gpu_check.oracle(case, x, dy),
                         gpu_check.case_tolerance(case, x, dy),
                         "dwop (CUDA build, CPU kernel) vs the float64 oracle")

  def test_c_abi_built_alike(self):
    self.assertTrue(library().cuda_built())


class CudaAbiTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.lib = library()
    self.case = cases.Case("k3", (1, 4, 4, 2), (3, 3, 2, 1))

  def call(self, case, pointers=(16, 32, 64)):
    return self.lib.filter_grad_cuda(
        case.dtype, case.input_shape, case.filter, case.out_backprop_shape,
        case.tf_strides, case.tf_padding, *pointers, case.data_format,
        case.tf_dilations)

  def test_availability_is_consistent(self):
    count, why = self.lib.cuda_device_count()
    self.assertEqual(self.lib.cuda_built(), op_library_has_cuda())
    if not self.lib.cuda_built():
      self.assertEqual(count, 0)
      self.assertIn("built without CUDA", why)
    elif count == 0:
      self.assertNotEqual(why, "")
    else:
      self.assertEqual(why, "")

  def test_without_gpu_the_entry_point_fails_cleanly(self):
    if self.lib.cuda_device_count()[0] > 0:
      self.skipTest("a GPU is present: python/gpu_check.py runs the kernels")
    # In a subprocess: a crash must fail the test, not end the test run.
    result = testing.run_python("""
        import cabi
        lib = cabi.Library()
        try:
          lib.filter_grad_cuda("float32", (1, 4, 4, 2), (3, 3, 2, 1),
                               (1, 4, 4, 2), (1, 1, 1, 1), "SAME", 16, 32, 64)
        except cabi.DwopError as e:
          print(e.status, e.message)
        """, timeout=120)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertTrue(result.stdout.startswith("UNAVAILABLE "), result.stdout)
    self.assertTrue("built without CUDA" in result.stdout or
                    "no usable CUDA device" in result.stdout, result.stdout)

  def test_invalid_problem_is_rejected_before_cuda(self):
    bad = self.case.replace(filter=(3, 3, 3, 1))  # depth 3 vs input's 2
    with self.assertRaises(cabi.DwopError) as e:
      self.lib.filter_grad_cuda(
          "float32", bad.input_shape, bad.filter, (1, 4, 4, 2), (1, 1, 1, 1),
          "SAME", 16, 32, 64)
    self.assertEqual(e.exception.status, "INVALID_ARGUMENT")

  def test_null_device_buffer_is_rejected(self):
    with self.assertRaises(cabi.DwopError) as e:
      self.call(self.case, pointers=(0, 32, 64))
    self.assertEqual(e.exception.status, "INVALID_ARGUMENT")
    self.assertIn("NULL", e.exception.message)

  def test_planning_for_the_current_device_needs_one(self):
    if self.lib.cuda_device_count()[0] > 0:
      self.skipTest("a GPU is present")
    with self.assertRaises(cabi.DwopError) as e:
      plan(self.case, sm_count=0, smem=0)
    self.assertEqual(e.exception.status, "UNAVAILABLE")


class CudaPlanTest(parameterized.TestCase):

  def check_plan(self, case, p, path):
    """The invariants the kernels (filter_grad_kernels.h) rely on, not the
    planner's formulas: the grid covers all the work and no part of it is
    empty, the device's limits hold, and the shared memory and workspace hold
    what the kernels write."""
    n = case.input[0]
    kh, kw, c, m = case.filter
    _, oh, ow, oc = case.out_backprop_nhwc
    acc = ACC_BYTES[case.dtype]
    if case.is_empty:
      self.assertIn(p["kernel"], ("nothing", "zero"))
      self.assertEqual(p["kernel"] == "nothing", kh * kw * c * m == 0)
      self.assertEqual(p["workspace_bytes"], 0)
      return
    # The grid: one block per (channel block, tap group, split).
    self.assertEqual(
        p["blocks"], p["channel_blocks"] * p["tap_groups_h"] *
        p["tap_groups_w"] * p["splits"])
    # Device limits.
    self.assertBetween(p["blocks"], 1, 2**31 - 1)
    self.assertBetween(p["threads"], 32, 1024)
    self.assertLessEqual(p["smem_bytes"], SMEM)
    # Tap groups cover the filter, none is empty.
    for size, rows, groups in ((kh, p["tap_rows"], p["tap_groups_h"]),
                               (kw, p["tap_cols"], p["tap_groups_w"])):
      self.assertGreaterEqual(groups * rows, size)
      self.assertLess((groups - 1) * rows, size)
    # Splits cover the work items, none is empty.
    self.assertGreaterEqual(p["splits"] * p["work_per_split"], p["work_total"])
    self.assertLess((p["splits"] - 1) * p["work_per_split"], p["work_total"])
    # The workspace holds one partial filter gradient per split (the
    # finalize kernel's input), within its cap; none without splits.
    filter_elements = kh * kw * oc
    if p["splits"] > 1:
      self.assertGreaterEqual(p["workspace_bytes"],
                              p["splits"] * filter_elements * acc)
      self.assertBetween(p["finalize_blocks"], 1,
                         ceil_div(filter_elements, 32))
    else:
      self.assertEqual(p["workspace_bytes"], 0)
    self.assertLessEqual(p["workspace_bytes"], 256 << 20)
    if p["kernel"] == "tiled":
      self.assertNotEqual(path, "register")
      # It steps one input column per output column.
      self.assertEqual(case.strides[1] * case.dilations[1], 1)
      self.assertGreaterEqual(p["channel_blocks"], oc)
      # Chunks and bands cover every image's output rows and columns.
      self.assertGreaterEqual(p["chunks"] * p["chunk_cols"], ow)
      self.assertGreaterEqual(p["bands"], 1)
      self.assertEqual(p["work_total"], n * p["chunks"] * p["bands"])
      # The input tile holds a chunk's columns and the taps' reach, and
      # fits the shared memory the launch asks for.
      self.assertGreaterEqual(p["x_pitch"], p["chunk_cols"] + p["tap_cols"] -
                              1)
      self.assertGreaterEqual(p["x_rows"],
                              (p["tap_rows"] - 1) * case.dilations[0] + 1)
      self.assertGreaterEqual(p["smem_bytes"],
                              p["x_rows"] * p["x_pitch"] * acc)
      return
    self.assertEqual(p["kernel"], KERNELS[case.data_format])
    self.assertNotEqual(path, "tiled")
    self.assertLessEqual(p["lanes_x"] * p["lanes_y"], p["threads"])
    self.assertEqual(p["work_per_split"] % p["lanes_y"], 0)
    if p["kernel"] == "register_nchw":
      self.assertEqual(p["threads"] % 32, 0)  # whole warps: a shuffle reduction
      self.assertGreaterEqual(p["channel_blocks"], oc)
      self.assertEqual(p["work_total"], n * oh)  # every image row
      return
    vector = p["vector"]
    self.assertIn(vector, (1, 2, 4))
    if vector > 1:  # vector loads need whole, aligned channel vectors
      self.assertEqual((m, c % vector), (1, 0))
    # Channel blocks cover the channel vectors, none is empty.
    vectors = ceil_div(oc, vector)
    self.assertLessEqual(p["lanes_x"], 32)
    self.assertGreaterEqual(p["channel_blocks"] * p["lanes_x"], vectors)
    self.assertLess((p["channel_blocks"] - 1) * p["lanes_x"], vectors)
    # Column segments cover every row, none is empty.
    self.assertGreaterEqual(p["col_segments"] * p["segment_cols"], ow)
    self.assertLess((p["col_segments"] - 1) * p["segment_cols"], ow)
    self.assertEqual(p["work_total"], n * oh * p["col_segments"])
    # Shared memory holds every thread's partial sums of a tap row.
    self.assertGreaterEqual(p["smem_bytes"], p["threads"] * vector *
                            p["tap_cols"] * acc)

  @parameterized.named_parameters(
      (f"{c.name}_{path}", c, path)
      for c in cases.CONFORMANCE + cases.BENCH + gpu_check.CUDA_CASES
      for path in gpu_check.PATHS)
  def test_plan(self, case, path):
    for sm_count in (1, 108, 132):
      try:
        p = plan(case, path, sm_count)
      except cabi.DwopError as e:
        self.assertEqual(path, "tiled")
        self.assertEqual(e.status, "INVALID_ARGUMENT")
        self.assertIn("tiled CUDA kernel cannot run", e.message)
        self.assertTrue(case.strides[1] * case.dilations[1] > 1 or
                        "shared memory" in e.message, e.message)
        continue
      self.check_plan(case, p, path)

  @parameterized.named_parameters(cases.named(cases.BENCH))
  def test_bench_plans(self, case):
    p = plan(case)
    self.assertIn(p["kernel"], ("tiled", KERNELS[case.data_format]))
    # Enough blocks to fill an H100 (132 SMs).
    self.assertGreaterEqual(p["blocks"], 132)

  def test_tensors_beyond_2_to_31_elements_plan(self):
    # 2^32 elements: element offsets need 64 bits, which the kernels use.
    case = cases.Case("big", (4096, 256, 256, 16), (3, 3, 16, 1))
    self.check_plan(case, plan(case), "auto")

  @parameterized.named_parameters(
      ("row_of_2_to_31_elements", (1, 2, 2**20, 2**11), (1, 1, 2**11, 1),
       "in_cols * in_depth"),
      ("dimension_over_2_to_30", (1, 2**30 + 2, 1, 1), (1, 1, 1, 1),
       "in_rows"))
  def test_32_bit_index_limits(self, shape, filter_sizes, what):
    case = cases.Case("huge", shape, filter_sizes, padding="VALID")
    with self.assertRaises(cabi.DwopError) as e:
      plan(case)
    self.assertEqual(e.exception.status, "INVALID_ARGUMENT")
    self.assertIn(what, e.exception.message)
    self.assertIn("32-bit", e.exception.message)

  def test_workspace_is_bounded(self):
    case = cases.Case("k51_many", (64, 60, 60, 2048), (51, 51, 2048, 1))
    p = plan(case, sm_count=10000)
    self.assertLessEqual(p["workspace_bytes"], 256 << 20)

  def test_tiled_needs_shared_memory(self):
    case = cases.Case("d12", (1, 64, 64, 2), (31, 31, 2, 1),
                      dilations=(12, 1))
    with self.assertRaises(cabi.DwopError) as e:
      plan(case, "tiled")
    self.assertIn("shared memory", e.exception.message)
    self.assertEqual(plan(case)["kernel"], "register_nhwc")


class CudaEmulatorTest(parameterized.TestCase):
  """The kernels' code on the host against the float64 oracle."""

  @parameterized.named_parameters(
      cases.named(cases.CONFORMANCE + gpu_check.CUDA_CASES))
  def test_matches_oracle(self, case):
    lib = library()
    x, dy = case.random_inputs(seed=2)
    xs = gpu_check.to_storage(x, case.dtype)
    dys = gpu_check.to_storage(dy, case.dtype)
    want = gpu_check.oracle(case, x, dy)
    tol = gpu_check.case_tolerance(case, x, dy)
    ran = []
    # sm_count 1 and 3 put many work items in one split (the tiled kernel's
    # ring of input rows across bands); 132 splits the reduction widely.
    for sm_count in (1, 3, 132):
      for path in gpu_check.PATHS:
        try:
          got = gpu_check.emulate(lib, case, xs, dys, path, sm_count)
        except cabi.DwopError as e:
          self.assertEqual((path, e.status), ("tiled", "INVALID_ARGUMENT"))
          continue
        ok, err = gpu_check.within_tolerance(
            gpu_check.from_storage(got, case.dtype), want, tol)
        self.assertTrue(ok, f"{path} on {sm_count} SMs: max error {err}")
        ran.append(path)
    self.assertIn("register", ran)

  def test_emulation_is_deterministic(self):
    lib = library()
    case = gpu_check.CUDA_CASES[0]
    x, dy = case.random_inputs(seed=4)
    xs = gpu_check.to_storage(x, case.dtype)
    dys = gpu_check.to_storage(dy, case.dtype)
    first = gpu_check.emulate(lib, case, xs, dys, "auto", 132)
    second = gpu_check.emulate(lib, case, xs, dys, "auto", 132)
    self.assertEqual(first.tobytes(), second.tobytes())


if __name__ == "__main__":
  absltest.main()
