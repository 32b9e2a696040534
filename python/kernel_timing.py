"""Quick timing of the CPU kernel on the benchmark layers (not `make bench`).

Runs dwop through the TensorFlow-free C ABI and, unless --no-tf, TensorFlow's
DepthwiseConv2dBackpropFilter with oneDNN on and off (each in its own
subprocess, since TF_ENABLE_ONEDNN_OPTS is read at import). Interleaves
repetitions and reports medians in ms, with the roofline from a measured copy
bandwidth and matmul peak.

  .venv/bin/python python/kernel_timing.py [--cases a,b] [--reps 7] [--threads 2]
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
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import cabi  # pylint: disable=g-import-not-at-top,wrong-import-position
import cases  # pylint: disable=g-import-not-at-top,wrong-import-position

_NUMPY = {"float32": np.float32, "float64": np.float64, "float16": np.float16}


def _inputs(case):
  x, dy = case.random_inputs()
  if case.dtype == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return x.astype(ml_dtypes.bfloat16), dy.astype(ml_dtypes.bfloat16)
  return x.astype(_NUMPY[case.dtype]), dy.astype(_NUMPY[case.dtype])


def _roofline_worker():
  """Prints "bandwidth peak": a 1 GB copy and a 4096^3 float32 matmul."""
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
    m @ m
    peak = max(peak, 2 * 4096**3 / (time.perf_counter() - t))
  print(bw, peak)


def machine_roofline():
  """(bytes/s, flop/s), best of 3, measured in a subprocess so that BLAS
  threads left spinning by the matmul do not steal the cores from dwop."""
  out = subprocess.run([sys.executable, os.path.abspath(__file__),
                        "--roofline-worker"], capture_output=True, text=True,
                       check=True).stdout.split()
  return float(out[0]), float(out[1])


def roofline_s(case, bw, peak):
  elem = 2 if case.dtype in ("float16", "bfloat16") else (
      8 if case.dtype == "float64" else 4)
  n, h, w, c = case.input
  _, oh, ow, oc = case.out_backprop_nhwc
  kh, kw, _, m = case.filter
  nbytes = elem * (n * h * w * c + n * oh * ow * oc + kh * kw * c * m)
  return max(nbytes / bw, case.flops / peak)


def time_dwop(selected, reps, threads, cpu_time=False):
  lib = cabi.Library()
  data = [_inputs(c) for c in selected]
  out = [None] * len(selected)
  times = [[] for _ in selected]
  for rep in range(reps + 1):
    for i, c in enumerate(selected):
      x, dy = data[i]
      clock = time.thread_time if cpu_time else time.perf_counter
      t = clock()
      out[i] = lib.filter_grad(x, c.filter, dy, c.tf_strides, c.tf_padding,
                               c.data_format, c.tf_dilations,
                               dtype=c.dtype, num_threads=threads, out=out[i])
      if rep:  # the first round warms up
        times[i].append(clock() - t)
  return [statistics.median(t) for t in times]


def _tf_worker(names, reps, threads):
  """Runs in a subprocess: prints {name: median seconds} for TensorFlow."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  selected = [c for c in cases.BENCH if c.name in names]
  result = {}
  for c in selected:
    x, dy = _inputs(c)
    dtype = tf.bfloat16 if c.dtype == "bfloat16" else tf.as_dtype(c.dtype)
    xt = tf.constant(x.astype(np.float32), dtype=tf.float32)
    dyt = tf.constant(dy.astype(np.float32), dtype=tf.float32)
    xt, dyt = tf.cast(xt, dtype), tf.cast(dyt, dtype)
    sizes = tf.constant(c.filter, tf.int32)
    dil = c.tf_dilations
    pad = c.tf_padding
    explicit = []
    if not isinstance(pad, str):
      explicit = [v for pair in pad for v in pair]
      pad = "EXPLICIT"

    def run():
      return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
          input=xt, filter_sizes=sizes, out_backprop=dyt,
          strides=c.tf_strides, padding=pad, explicit_paddings=explicit,
          data_format=c.data_format, dilations=dil)
    try:
      run().numpy()
    except Exception as e:  # pylint: disable=broad-except
      result[c.name] = None
      print(f"# {c.name}: {type(e).__name__}", file=sys.stderr)
      continue
    times = []
    for _ in range(reps):
      t = time.perf_counter()
      run().numpy()
      times.append(time.perf_counter() - t)
    result[c.name] = statistics.median(times)
  print(json.dumps(result))


def time_tf(selected, reps, threads, onednn):
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0",
             TF_CPP_MIN_LOG_LEVEL="3")
  names = ",".join(c.name for c in selected)
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), "--tf-worker", names,
       "--reps", str(reps), "--threads", str(threads)],
      env=env, capture_output=True, text=True, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default="")
  parser.add_argument("--reps", type=int, default=7)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--no-tf", action="store_true")
  parser.add_argument("--tf-worker", default="")
  parser.add_argument("--roofline-worker", action="store_true")
  parser.add_argument("--json", default="")
  parser.add_argument("--cpu-time", action="store_true",
                      help="time dwop by the calling thread's CPU time "
                      "(with --threads 1: immune to other processes)")
  args = parser.parse_args()
  if args.roofline_worker:
    _roofline_worker()
    return
  if args.tf_worker:
    _tf_worker(args.tf_worker.split(","), args.reps, args.threads)
    return
  wanted = set(args.cases.split(",")) if args.cases else None
  selected = [c for c in cases.BENCH if wanted is None or c.name in wanted]
  bw, peak = machine_roofline()
  print(f"# bandwidth {bw / 1e9:.1f} GB/s, peak {peak / 1e9:.0f} GFLOP/s, "
        f"{args.threads} threads, isa {cabi_isa()}")
  dwop = time_dwop(selected, args.reps, args.threads, args.cpu_time)
  native = onednn = {}
  if not args.no_tf:
    native = time_tf(selected, args.reps, args.threads, onednn=False)
    onednn = time_tf(selected, args.reps, args.threads, onednn=True)
  rows = []
  print(f"{'case':34s} {'dwop':>8s} {'native':>8s} {'onednn':>8s} "
        f"{'speedup':>8s} {'roofline':>8s} {'x roof':>7s} {'GFLOP/s':>8s}")
  for c, t in zip(selected, dwop):
    tn, to = native.get(c.name), onednn.get(c.name)
    best = min([v for v in (tn, to) if v], default=None)
    roof = roofline_s(c, bw, peak)
    rows.append(dict(case=c.name, dwop=t, native=tn, onednn=to,
                     roofline=roof, flops=c.flops))
    fmt = lambda v: f"{v * 1e3:8.2f}" if v else "       -"  # pylint: disable=g-long-lambda
    speed = f"{best / t:8.2f}" if best else "       -"
    print(f"{c.name:34s} {fmt(t)} {fmt(tn)} {fmt(to)} {speed} {fmt(roof)} "
          f"{t / roof:7.2f} {c.flops / t / 1e9:8.1f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(bandwidth=bw, peak=peak, rows=rows), f, indent=1)


def cabi_isa():
  import ctypes  # pylint: disable=g-import-not-at-top
  lib = cabi.Library().lib
  lib.dwop_cpu_isa.restype = ctypes.c_char_p
  return lib.dwop_cpu_isa().decode()


if __name__ == "__main__":
  main()
