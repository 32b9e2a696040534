"""Quick timing of the CPU kernel on the benchmark layers (not `make bench`).

For each TensorFlow setting (oneDNN on, then off: TF_ENABLE_ONEDNN_OPTS is
read at import, so each runs in its own subprocess) a worker times dwop's op
and tf.raw_ops.DepthwiseConv2dNativeBackpropFilter interleaved, on the same
tensors and the same intra-op pool, so both see the same machine load. dwop's
figure is the median over both workers. The roofline comes from a 1 GB copy
(bandwidth) and a 4096^3 float32 matmul (peak), measured in a subprocess.

  .venv/bin/python python/kernel_timing.py [--cases a,b] [--reps 9] [--threads 2]
  .venv/bin/python python/kernel_timing.py --scaling   # C ABI, 1 vs 2 threads
  .venv/bin/python python/kernel_timing.py --cpu-time  # 1 thread, CPU time

--cpu-time compares per-core efficiency on a shared machine: one intra-op
thread, and the process's CPU time instead of the wall clock, so time spent
descheduled by other processes does not count (memory contention still does).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import cases  # pylint: disable=g-import-not-at-top,wrong-import-position


def _inputs(case):
  x, dy = case.random_inputs()
  if case.dtype == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return x.astype(ml_dtypes.bfloat16), dy.astype(ml_dtypes.bfloat16)
  return x.astype(case.dtype), dy.astype(case.dtype)


def _select(names):
  wanted = set(names.split(",")) if names else None
  return [c for c in cases.BENCH if wanted is None or c.name in wanted]


def _run_worker(flag, env=None, extra=()):
  out = subprocess.run([sys.executable, os.path.abspath(__file__), flag,
                        *extra], env=env, capture_output=True, text=True,
                       check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def _roofline_worker():
  """Prints [bytes/s, flop/s], best of 3."""
  a = np.ones(1 << 28, np.float32)
  b = np.empty_like(a)
  bw = 0
  for _ in range(3):
    t = time.perf_counter()
    np.copyto(b, a)
    bw = max(bw, 2 * a.nbytes / (time.perf_counter() - t))
  m = np.random.rand(4096, 4096).astype(np.float32)
  peak = 0
  for _ in range(3):
    t = time.perf_counter()
    m @ m  # pylint: disable=pointless-statement
    peak = max(peak, 2 * 4096**3 / (time.perf_counter() - t))
  print(json.dumps([bw, peak]))


def roofline_s(case, bw, peak):
  elem = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[case.dtype]
  n, h, w, c = case.input
  _, oh, ow, oc = case.out_backprop_nhwc
  kh, kw, _, m = case.filter
  nbytes = elem * (n * h * w * c + n * oh * ow * oc + kh * kw * c * m)
  return max(nbytes / bw, case.flops / peak)


def _tf_worker(names, reps, threads, cpu_time):
  """Prints {case: {"dwop": s, "tf": s or None}}, medians, interleaved."""
  clock = time.process_time if cpu_time else time.perf_counter
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, ROOT)
  import dwop  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  result = {}
  for c in _select(names):
    x, dy = _inputs(c)
    dtype = tf.bfloat16 if c.dtype == "bfloat16" else tf.as_dtype(c.dtype)
    xt = tf.cast(tf.constant(x.astype(np.float32)), dtype)
    dyt = tf.cast(tf.constant(dy.astype(np.float32)), dtype)
    sizes = tf.constant(c.filter, tf.int32)
    pad, explicit = c.tf_padding, []
    if not isinstance(pad, str):
      pad, explicit = "EXPLICIT", [v for pair in pad for v in pair]
    runs = {
        "dwop": lambda: dwop.depthwise_conv2d_backprop_filter(  # pylint: disable=g-long-lambda
            xt, sizes, dyt, c.tf_strides, c.tf_padding, c.data_format,
            c.tf_dilations).numpy(),
        "tf": lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(  # pylint: disable=g-long-lambda
            input=xt, filter_sizes=sizes, out_backprop=dyt,
            strides=c.tf_strides, padding=pad, explicit_paddings=explicit,
            data_format=c.data_format, dilations=c.tf_dilations).numpy(),
    }
    times = {}
    for name, fn in list(runs.items()):
      try:
        fn()
        times[name] = []
      except Exception as e:  # pylint: disable=broad-except
        print(f"# {c.name}: TensorFlow fails: {type(e).__name__}",
              file=sys.stderr)
        del runs[name]
    for _ in range(reps):
      for name, fn in runs.items():
        t = clock()
        fn()
        times[name].append(clock() - t)
    result[c.name] = {k: statistics.median(v) for k, v in times.items()}
    print(f"# {c.name} {result[c.name]}", file=sys.stderr, flush=True)
  print(json.dumps(result))


def _scaling(selected, reps):
  """C ABI medians with 1 and 2 threads, interleaved."""
  import cabi  # pylint: disable=g-import-not-at-top
  lib = cabi.Library()
  print(f"{'case':34s} {'1 thread':>9s} {'2 threads':>9s} {'speedup':>8s}")
  for c in selected:
    x, dy = _inputs(c)
    out = None
    times = {1: [], 2: []}
    for _ in range(reps):
      for threads in times:
        t = time.perf_counter()
        out = lib.filter_grad(x, c.filter, dy, c.tf_strides, c.tf_padding,
                              c.data_format, c.tf_dilations, dtype=c.dtype,
                              num_threads=threads, out=out)
        times[threads].append(time.perf_counter() - t)
    t1, t2 = (statistics.median(times[k]) for k in (1, 2))
    print(f"{c.name:34s} {t1 * 1e3:9.2f} {t2 * 1e3:9.2f} {t1 / t2:8.2f}",
          flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default="")
  parser.add_argument("--reps", type=int, default=9)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--json", default="")
  parser.add_argument("--scaling", action="store_true")
  parser.add_argument("--cpu-time", action="store_true")
  parser.add_argument("--tf-worker", default="")
  parser.add_argument("--roofline-worker", action="store_true")
  args = parser.parse_args()
  if args.roofline_worker:
    _roofline_worker()
    return
  if args.tf_worker:
    _tf_worker(args.tf_worker, args.reps, args.threads, args.cpu_time)
    return
  selected = _select(args.cases)
  if args.scaling:
    _scaling(selected, args.reps)
    return
  if args.cpu_time:
    args.threads = 1
  # All cores for the matmul, whatever the caller set for BLAS threads.
  bw, peak = _run_worker("--roofline-worker", {
      k: v for k, v in os.environ.items()
      if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")})
  print(f"# bandwidth {bw / 1e9:.1f} GB/s, peak {peak / 1e9:.0f} GFLOP/s, "
        f"{args.threads} threads" + (", CPU time" if args.cpu_time else ""))
  names = ",".join(c.name for c in selected)
  measured = {}
  for onednn in ("1", "0"):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn,
               TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1")
    measured[onednn] = _run_worker(
        "--tf-worker", env,
        (names, "--reps", str(args.reps), "--threads", str(args.threads)) +
        (("--cpu-time",) if args.cpu_time else ()))
  rows = []
  print(f"{'case':34s} {'dwop':>8s} {'native':>8s} {'onednn':>8s} "
        f"{'speedup':>8s} {'roofline':>8s} {'x roof':>7s}")
  for c in selected:
    dwop_s = statistics.median(measured[k][c.name]["dwop"] for k in "10")
    native = measured["0"][c.name].get("tf")
    onednn = measured["1"][c.name].get("tf")
    best = min([v for v in (native, onednn) if v], default=None)
    roof = roofline_s(c, bw, peak)
    rows.append(dict(case=c.name, dwop=dwop_s, native=native, onednn=onednn,
                     roofline=roof))
    ms = lambda v: f"{v * 1e3:8.2f}" if v else "       -"  # pylint: disable=g-long-lambda
    speed = f"{best / dwop_s:8.2f}" if best else "       -"
    print(f"{c.name:34s} {ms(dwop_s)} {ms(native)} {ms(onednn)} {speed} "
          f"{ms(roof)} {dwop_s / roof:7.2f}")
  speedups = [min(v for v in (r["native"], r["onednn"]) if v) / r["dwop"]
              for r in rows]
  big = [s for s, c in zip(speedups, selected) if min(c.filter[:2]) >= 7]
  geo = lambda v: float(np.exp(np.mean(np.log(v)))) if v else float("nan")  # pylint: disable=g-long-lambda
  ratios = sorted(r["dwop"] / r["roofline"] for r in rows)
  print(f"# geomean speedup {geo(speedups):.2f} (filters >= 7x7: {geo(big):.2f}); "
        f"x roofline median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(bandwidth=bw, peak=peak, rows=rows), f, indent=1)


if __name__ == "__main__":
  main()
