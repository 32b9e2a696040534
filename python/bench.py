"""dwop's benchmark: the depthwise layers of real networks, dwop vs TensorFlow.

    python python/bench.py [--quick] [--cases REGEX] [--ops OPS] [--rounds N]
                           [--out DIR]

For every case of python/bench_shapes.json and each op -- the forward
(dwop.depthwise_conv2d_native), the input gradient
(dwop.depthwise_conv2d_backprop_input) and the filter gradient
(dwop.depthwise_conv2d_backprop_filter) -- it times dwop's TensorFlow op and
TensorFlow's own kernel with oneDNN (TF_ENABLE_ONEDNN_OPTS=1) and without
(=0), each TensorFlow setting in its own worker process (the variable only
acts at start-up). TensorFlow's forward is tf.raw_ops.DepthwiseConv2dNative
where that setting's kernel accepts the case, else tf.nn.depthwise_conv2d
(which runs dilations as space_to_batch around it); its gradients are
DepthwiseConv2dNativeBackpropInput and ...BackpropFilter, but for a dilated
case (which those ignore) the gradients of tf.nn.depthwise_conv2d, as Keras
runs them. The layer total is the sum of the three ops.

The driver interleaves every implementation of a case round by round, so
machine noise hits them alike, and reports medians. It measures this machine's
memory bandwidth (a large copy) and float32 peak (a large matmul), both on
every core, to give each case its roofline time (python/bench_model.py:
useful flops, without taps over padding, and bytes of the op's three
tensors), and checks every result against the float64 oracle
(python/reference.py). dwop's 1- and 2-thread times come from the C ABI
(dwop_<op>_cpu: the same kernels with an explicit thread count), and so does
its extra memory for the filter gradient: in a fresh process per case, the
peak resident memory of one two-thread call beyond what the process held
before it, read from Linux's VmHWM after resetting it.

Writes a table to stdout, and results.json, results.md (the tables in
Markdown, for the README) and benchmark.png to --out. Exits 1 if any dwop
result is wrong or missing.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import bench_model as model
import cases as case_table
import reference

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


QUICK_CASES = ("mnv2_56x56x144_k3", "effb0_28x28x240_k5",
               "convnext_28x28x192_k7", "replk_7x7x1024_k13",
               "deeplab_33x33x728_k3d2", "mnv2_56x56x144_k3_nchw",
               "convnext_28x28x192_k7_bf16")
TIME_PER_ROUND = 0.1  # seconds each implementation runs per round (at least)
ROUNDS, QUICK_ROUNDS = 5, 3
# A case's rounds shrink (to no fewer than MIN_ROUNDS) when one round of all
# its implementations would take TensorFlow's slow kernels past this budget.
CASE_BUDGET_S = 30
MIN_ROUNDS = 3
# dwop's TensorFlow op for each op.
DWOP_OPS = {"forward": "depthwise_conv2d_native",
            "input_grad": "depthwise_conv2d_backprop_input",
            "filter_grad": "depthwise_conv2d_backprop_filter"}
# (label in the results, worker, the worker's name for the implementation).
IMPLS = (("dwop", "onednn", "dwop"), ("tf_onednn", "onednn", "tf"),
         ("tf_native", "native", "tf"), ("dwop_1t", "onednn", "dwop_1t"),
         ("dwop_2t", "onednn", "dwop_2t"))


def case_arrays(case, seed):
  """(input, filter, out_backprop) in the case's NumPy dtype: small integers
  over 8, exact in every dtype (see Case.random_inputs)."""
  from testing import numpy_dtype  # pylint: disable=g-import-not-at-top
  dtype = numpy_dtype(case.dtype)
  x, dy = case.random_inputs(seed)
  f = np.random.default_rng(seed + 1).integers(-8, 9, case.filter) / 8.0
  return tuple(a.astype(dtype) for a in (x, f, dy))


def oracles(case, ops, x, f, dy):
  """The float64 result of each op (python/reference.py)."""
  args = (case.tf_strides, case.tf_padding, case.data_format,
          case.tf_dilations)
  compute = {
      "forward": lambda: reference.depthwise_conv2d(x, f, *args),
      "input_grad": lambda: reference.depthwise_conv2d_backprop_input(
          case.input_shape, f, dy, *args),
      "filter_grad": lambda: reference.depthwise_conv2d_backprop_filter(
          x, case.filter, dy, *args),
  }
  return {op: compute[op]() for op in ops}


def relative_error(result, oracle):
  """max |result - oracle| / max |oracle|; inf for NaN or a wrong shape."""
  if result.shape != oracle.shape:
    return float("inf")
  if result.size == 0:
    return 0.0
  err = float(np.max(np.abs(result - oracle)))
  if not np.isfinite(err):
    return float("inf")
  return err / max(float(np.max(np.abs(oracle))), 1e-30)


# --------------------------------------------------------------------------
# Worker: one process per TensorFlow setting.


def cabi_call(lib, cabi, op, case, arrays, threads):
  """dwop_<op>_cpu on preallocated buffers (no allocation or poisoning in
  the timed call), or None when the C ABI lacks the entry point."""
  fn = getattr(lib.lib, f"dwop_{op}_cpu", None)
  if fn is None:
    return None
  fn.argtypes = [ctypes.POINTER(cabi.Problem), ctypes.c_void_p,
                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32,
                 ctypes.c_char_p, ctypes.c_size_t]
  x, f, dy = arrays
  problem = lib.problem(case.dtype, case.input_shape, case.filter,
                        case.out_backprop_shape, case.tf_strides,
                        case.tf_padding, case.data_format, case.tf_dilations)
  a, b, shape = {"forward": (x, f, case.out_backprop_shape),
                 "input_grad": (f, dy, case.input_shape),
                 "filter_grad": (x, dy, case.filter)}[op]
  # (The call holds the buffers: the pointers do not keep them alive. What
  # the kernel misses stays NaN.)
  buffers = (cabi.aligned(a), cabi.aligned(b),
             cabi.aligned(np.full(shape, np.nan, x.dtype)))
  pointers = [v.ctypes.data_as(ctypes.c_void_p) for v in buffers]
  error = ctypes.create_string_buffer(1024)

  def call():
    status = fn(ctypes.byref(problem), *pointers, threads, error,
                ctypes.sizeof(error))
    if status != 0:
      raise cabi.DwopError(str(status), error.value.decode(errors="replace"))
    return buffers[2]
  return call


def _worker(onednn):
  """Reads JSON commands on stdin, answers JSON lines on stdout."""
  os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import dwop  # pylint: disable=g-import-not-at-top
  import cabi  # pylint: disable=g-import-not-at-top

  lib = cabi.Library()
  state = {}
  out = sys.stdout
  sys.stdout = sys.stderr  # keep stray prints off the protocol channel

  def nn_forward(case, xt, ft):
    """tf.nn.depthwise_conv2d of the case (space_to_batch for dilations)."""
    return tf.nn.depthwise_conv2d(xt, ft, case.tf_strides, case.tf_padding,
                                  case.data_format,
                                  dilations=list(case.dilations))

  def tf_forward(case, xt, ft, attrs):
    """The raw op where this setting's kernel accepts the case, else tf.nn."""
    try:
      tf.raw_ops.DepthwiseConv2dNative(input=xt, filter=ft, **attrs)
      state["api"]["forward/tf"] = "raw_ops.DepthwiseConv2dNative"
      return lambda: tf.raw_ops.DepthwiseConv2dNative(input=xt, filter=ft,
                                                      **attrs)
    except tf.errors.OpError:
      state["api"]["forward/tf"] = "nn.depthwise_conv2d"
      return lambda: nn_forward(case, xt, ft)

  def tf_gradient(case, op, xt, ft, dyt, raw):
    """The raw gradient op, but for a dilated case the gradient of
    tf.nn.depthwise_conv2d, which Keras runs: the raw ops ignore dilations
    (tests/tf_defects_test.py), tf.nn turns them into space_to_batch around
    undilated ops. In a tf.function, whose pruning drops the forward."""
    if max(case.dilations) == 1:
      state["api"][f"{op}/tf"] = ("raw_ops.DepthwiseConv2dNativeBackprop" +
                                  ("Input" if op == "input_grad" else
                                   "Filter"))
      return raw
    state["api"][f"{op}/tf"] = "gradient of nn.depthwise_conv2d"
    wrt = xt if op == "input_grad" else ft

    @tf.function
    def gradient():
      with tf.GradientTape() as tape:
        tape.watch(wrt)
        y = nn_forward(case, xt, ft)
      return tape.gradient(y, wrt, output_gradients=dyt)

    return gradient

  def setup(name, seed, ops, with_dwop):
    state.clear()
    state["api"], state["missing"] = {}, {}
    case = case_table.by_name(name, case_table.BENCH)
    arrays = case_arrays(case, seed)
    xt, ft, dyt = (tf.constant(a) for a in arrays)
    sizes = tf.constant(case.input_shape, tf.int32)
    fs = tf.constant(case.filter, tf.int32)
    conv = (case.tf_strides, case.tf_padding, case.data_format,
            case.tf_dilations)
    padding, explicit = cabi.convert_padding(case.tf_padding)
    attrs = dict(strides=case.tf_strides, padding=padding,
                 explicit_paddings=explicit, data_format=case.data_format,
                 dilations=case.tf_dilations)
    impls = {}
    for op in ops:
      if op == "forward":
        impls["forward/tf"] = tf_forward(case, xt, ft, attrs)
      elif op == "input_grad":
        impls["input_grad/tf"] = tf_gradient(
            case, op, xt, ft, dyt,
            lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=sizes, filter=ft, out_backprop=dyt, **attrs))
      else:
        impls["filter_grad/tf"] = tf_gradient(
            case, op, xt, ft, dyt,
            lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=xt, filter_sizes=fs, out_backprop=dyt, **attrs))
      if not with_dwop:
        continue
      if not hasattr(dwop, DWOP_OPS[op]):
        raise RuntimeError(
            f"dwop.{DWOP_OPS[op]} does not exist yet (merge the branch that "
            "adds it, or leave it out with --ops)")
      entry = getattr(dwop, DWOP_OPS[op])
      first = {"forward": xt, "input_grad": sizes, "filter_grad": xt}[op]
      second = {"forward": ft, "input_grad": ft, "filter_grad": fs}[op]
      third = () if op == "forward" else (dyt,)
      impls[f"{op}/dwop"] = (lambda e=entry, a=first, b=second, c=third:
                             e(a, b, *c, *conv))
      for threads in (1, 2):
        call = cabi_call(lib, cabi, op, case, arrays, threads)
        if call is None:
          state["missing"][f"{op}/dwop_{threads}t"] = (
              f"the C ABI has no dwop_{op}_cpu")
        else:
          impls[f"{op}/dwop_{threads}t"] = call
    state["impls"] = impls

  def run(impl):
    if impl not in state["impls"]:
      raise LookupError(state["missing"].get(impl, f"no {impl}"))
    return state["impls"][impl]()

  for line in sys.stdin:
    cmd = json.loads(line)
    reply = {}
    try:
      if cmd["cmd"] == "setup":
        setup(cmd["case"], cmd["seed"], cmd["ops"], cmd["dwop"])
      elif cmd["cmd"] == "result":
        result = np.asarray(run(cmd["impl"]))  # also the warm-up
        wide = np.float64 if result.dtype == np.float64 else np.float32
        np.save(cmd["path"], result.astype(wide))
        if cmd["impl"] in state["api"]:
          reply["api"] = state["api"][cmd["impl"]]
      elif cmd["cmd"] == "time":
        times = []
        for _ in range(cmd["iters"]):
          start = time.perf_counter()
          run(cmd["impl"])
          times.append(time.perf_counter() - start)
        reply["times"] = times
    except Exception as e:  # pylint: disable=broad-except
      reply["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    out.write(json.dumps(reply) + "\n")
    out.flush()


class Worker:
  """The driver's handle on a worker process."""

  def __init__(self, onednn):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    self.proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", "1" if onednn else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=env)

  def call(self, **cmd):
    self.proc.stdin.write(json.dumps(cmd) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError("benchmark worker died")
    return json.loads(line)

  def close(self):
    self.proc.stdin.close()
    self.proc.wait()


# --------------------------------------------------------------------------
# Machine figures.


def _memory_probe(name):
  """Prints dwop's filter-gradient peak memory beyond its inputs, as JSON."""
  import cabi  # pylint: disable=g-import-not-at-top
  case = case_table.by_name(name, case_table.BENCH)
  x, _, dy = case_arrays(case, 0)
  dtype = x.dtype
  out = np.empty(case.filter, dtype)
  lib = cabi.Library()
  # A tiny call first, so that paging in the library's code is not counted.
  lib.filter_grad(np.ones([1, 4, 4, 1], dtype), [3, 3, 1, 1],
                  np.ones([1, 4, 4, 1], dtype), [1, 1, 1, 1], "SAME")

  def status_kb(field):
    with open("/proc/self/status") as f:
      return next(int(line.split()[1]) for line in f
                  if line.startswith(field + ":"))

  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM, the peak resident set, to the current one
  before = status_kb("VmRSS")
  lib.filter_grad(x, case.filter, dy, case.tf_strides, case.tf_padding,
                  case.data_format, case.tf_dilations, dtype=case.dtype,
                  num_threads=2, out=out)
  print(json.dumps({"extra_mb": (status_kb("VmHWM") - before) / 1024}))


def _run_probe(flag, value, env=None):
  """Runs this script with `flag value` in a fresh process; the JSON of its
  last output line, or None (the reason on stderr) where it failed."""
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), flag, value],
      capture_output=True, text=True, check=False, env=env)
  if proc.returncode != 0:
    name = flag.lstrip("-").replace("-", " ")
    print(f"{name} failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return None
  return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(case):
  """dwop's extra peak memory in MB for one case (None where unmeasurable)."""
  reply = _run_probe("--memory-probe", case.name)
  return None if reply is None else reply["extra_mb"]


def measure_bandwidth(size_mb=1024, repeats=7, threads=None):
  """Copy bandwidth in bytes/s: read + write of a large array, best of N,
  split over `threads` threads (default: every core, as the op's kernels run
  and as the peak is measured). NumPy's copy releases the GIL; one thread
  alone reaches about half of what two cores move on this project's VMs,
  which made rooflines of memory-bound cases up to 2x too lenient."""
  threads = threads or os.cpu_count() or 1
  src = np.ones(size_mb * 2**20 // 8)
  dst = np.empty_like(src)
  bounds = [src.size * i // threads for i in range(threads + 1)]
  parts = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
  best = float("inf")
  for _ in range(repeats):
    workers = [threading.Thread(target=np.copyto, args=(dst[s], src[s]))
               for s in parts]
    start = time.perf_counter()
    for w in workers:
      w.start()
    for w in workers:
      w.join()
    best = min(best, time.perf_counter() - start)
  return 2 * src.nbytes / best


# The BLAS thread-count variables a caller may have narrowed (e.g. to one
# thread, for timing): the peak probe runs with every core.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                         "MKL_NUM_THREADS")


def measure_peak():
  """float32 matmul flops/s on all cores, in a fresh process whose BLAS
  thread variables are set to the core count (they act at start-up only)."""
  cores = str(os.cpu_count() or 1)
  env = dict(os.environ, **{name: cores for name in BLAS_THREAD_VARIABLES})
  reply = _run_probe("--peak-probe", "1", env)
  if reply is None:
    raise RuntimeError("could not measure the float32 peak")
  return reply["flops"]


def _peak_probe(n=4096, repeats=5):
  """Prints NumPy's float32 matmul flops/s, best of N, as JSON."""
  a = np.random.default_rng(0).standard_normal((n, n), np.float32)
  b = np.random.default_rng(1).standard_normal((n, n), np.float32)
  a @ b  # pylint: disable=pointless-statement
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b  # pylint: disable=pointless-statement
    best = min(best, time.perf_counter() - start)
  print(json.dumps({"flops": 2 * n**3 / best}))


# --------------------------------------------------------------------------
# Driver.


def time_case(case, ops, workers, rounds, scratch):
  """Checks and times every implementation of every op of one case.

  Returns (stats, rounds run, seconds per phase): stats[op][label] is
  {"ms", "samples", "max_rel_error"} or {"error"}."""
  phases = {}
  clock = time.perf_counter()
  for name, worker in workers.items():
    reply = worker.call(cmd="setup", case=case.name, seed=0, ops=list(ops),
                        dwop=name == "onednn")
    if "error" in reply:
      raise RuntimeError(f"{case.name}: {reply['error']}")
  x, f, dy = (a.astype(np.float64) for a in case_arrays(case, 0))
  phases["setup_s"] = time.perf_counter() - clock
  clock = time.perf_counter()
  expected = oracles(case, ops, x, f, dy)
  phases["oracle_s"] = time.perf_counter() - clock
  clock = time.perf_counter()

  stats = {op: {} for op in ops}
  live = []
  path = os.path.join(scratch, "result.npy")
  for op in ops:
    for label, worker_name, impl in IMPLS:
      worker, key = workers[worker_name], f"{op}/{impl}"
      reply = worker.call(cmd="result", impl=key, path=path)
      if "error" in reply:
        stats[op][label] = {"error": reply["error"]}
        continue
      entry = {"max_rel_error": relative_error(np.load(path), expected[op]),
               "samples": []}
      os.remove(path)
      if "api" in reply:
        entry["api"] = reply["api"]
      stats[op][label] = entry
      # One timed call decides how many calls fill a round.
      once = worker.call(cmd="time", impl=key, iters=1)["times"][0]
      iters = max(1, int(TIME_PER_ROUND / max(once, 1e-6)))
      live.append((entry, worker, key, iters, once * iters))
  phases["check_s"] = time.perf_counter() - clock
  clock = time.perf_counter()
  per_round = sum(seconds for *_, seconds in live)
  rounds = max(MIN_ROUNDS, min(rounds, int(CASE_BUDGET_S / max(per_round,
                                                                1e-9))))
  for _ in range(rounds):  # interleaved: every implementation each round
    for entry, worker, key, iters, _ in live:
      reply = worker.call(cmd="time", impl=key, iters=iters)
      if "error" in reply:
        raise RuntimeError(f"{case.name} {key}: {reply['error']}")
      entry["samples"].append(float(np.median(reply["times"])))
  for entry, *_ in live:
    entry["ms"] = 1e3 * float(np.median(entry["samples"]))
  phases["timing_s"] = time.perf_counter() - clock
  return stats, rounds, phases


def parse_ops(text):
  ops = [op.strip() for op in text.split(",") if op.strip()]
  unknown = [op for op in ops if op not in model.OPS]
  if unknown or not ops:
    raise argparse.ArgumentTypeError(
        f"--ops takes a comma-separated subset of {','.join(model.OPS)}")
  return [op for op in model.OPS if op in ops]  # the table's order


def select_cases(quick, pattern):
  selected = case_table.BENCH
  if quick:
    selected = [c for c in selected if c.name in QUICK_CASES]
  if pattern:
    selected = [c for c in selected if re.search(pattern, c.name)]
  return selected


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help=f"only {len(QUICK_CASES)} cases and "
                      f"{QUICK_ROUNDS} rounds")
  parser.add_argument("--cases", help="regex selecting cases by name")
  parser.add_argument("--ops", type=parse_ops, default=list(model.OPS),
                      help="comma-separated subset of "
                      f"{','.join(model.OPS)} (default: all)")
  parser.add_argument("--rounds", type=int, default=None,
                      help=f"rounds per case (default {ROUNDS}, "
                      f"--quick {QUICK_ROUNDS})")
  parser.add_argument("--no-memory", action="store_true",
                      help="skip the extra-memory probe")
  parser.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
  parser.add_argument("--peak-probe", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker is not None:
    return _worker(args.worker == "1")
  if args.memory_probe is not None:
    return _memory_probe(args.memory_probe)
  if args.peak_probe is not None:
    return _peak_probe()

  started = time.perf_counter()
  selected = select_cases(args.quick, args.cases)
  if not selected:
    parser.error("no case matches")
  rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
  os.makedirs(args.out, exist_ok=True)

  print("measuring the machine...", flush=True)
  bandwidth, peak = measure_bandwidth(), measure_peak()
  print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, float32 peak "
        f"{peak / 1e9:.0f} GFLOP/s, {os.cpu_count()} cores", flush=True)

  workers = {"onednn": Worker(True), "native": Worker(False)}
  rows = []
  scratch_root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
  try:
    print(model.text_header(), flush=True)
    with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
      for case in selected:
        stats, case_rounds, phases = time_case(case, args.ops, workers,
                                               rounds, scratch)
        clock = time.perf_counter()
        extra_mb = (None if args.no_memory or "filter_grad" not in args.ops
                    else measure_memory(case))
        phases["memory_s"] = time.perf_counter() - clock
        row = model.case_row(case, stats, bandwidth, peak, extra_mb)
        row.update(rounds=case_rounds, phases=phases)
        rows.append(row)
        print("\n".join(model.text_lines(row)), flush=True)
  finally:
    for worker in workers.values():
      worker.close()

  results = {
      "machine": {"cpu": platform.processor(), "cores": os.cpu_count(),
                  "bandwidth_gbs": bandwidth / 1e9,
                  "peak_gflops": peak / 1e9},
      "ops": args.ops,
      "rounds": rounds,
      "time_per_round_s": TIME_PER_ROUND,
      "summary": model.summary(rows),
      "cases": rows,
  }
  print()
  print("\n".join(model.summary_text(results["summary"])))
  print("* the result is wrong (max relative error > "
        f"{model.WRONG_REL_ERROR:g}); err: the implementation refused the "
        "case; speed-up: best TF / dwop; dwop/roof: dwop's time over the "
        "roofline time")
  results["wall_s"] = time.perf_counter() - started
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(model.markdown(results))
  title = ("dwop vs TensorFlow, "
           f"{platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores")
  charted = model.plot(rows, os.path.join(args.out, "benchmark.png"), title)
  print(f"wrote results.json, results.md"
        f"{' and benchmark.png' if charted else ' (no matplotlib: no chart)'}"
        f" to {args.out} in {results['wall_s'] / 60:.1f} minutes")
  failures = model.dwop_failures(rows)
  for name, op, why in failures:
    print(f"dwop FAILED {name} {op}: {why}", file=sys.stderr)
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
