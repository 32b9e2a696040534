"""dwop's benchmark: the depthwise layers of real networks, dwop vs TensorFlow.

    python python/bench.py [--quick] [--cases REGEX] [--out DIR]

For every case of python/bench_shapes.json it times dwop's filter gradient and
TensorFlow's own `DepthwiseConv2dNativeBackpropFilter` with oneDNN
(TF_ENABLE_ONEDNN_OPTS=1) and without (=0), each TensorFlow setting in its own
worker process (the variable only acts at start-up). The driver interleaves
the implementations round by round, so machine noise hits all of them alike,
and reports medians. It also measures this machine's memory bandwidth (a
large copy) and float32 peak (a large matmul) to give each case its roofline
time, max(bytes / bandwidth, flops / peak), and checks every result against
the float64 oracle (python/reference.py). dwop's 1- and 2-thread times come
from the C ABI (the same kernel, with an explicit thread count), and so does
its memory: in a fresh process per case, the peak resident memory of one
two-thread call beyond what the process held before it (workspace, per-thread
staging, thread stacks), read from Linux's VmHWM after resetting it.

Writes a table to stdout, and results.json, results.md (the same table in
Markdown, for the README) and benchmark.png to --out.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

import cases as case_table
import reference

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

QUICK_CASES = ("mnv2_56x56x144_k3", "effb0_28x28x240_k5",
               "convnext_28x28x192_k7", "replk_7x7x1024_k13",
               "deeplab_33x33x728_k3d2", "mnv2_56x56x144_k3_nchw",
               "convnext_28x28x192_k7_bf16")
# Cases with at least this many flops count as "large" for the thread-scaling
# figure (two threads should then be close to twice as fast as one).
LARGE_FLOPS = 2.5e8
TIME_PER_ROUND = 0.25  # seconds each implementation runs per round (at least)
# A result whose max relative error against the oracle exceeds this is wrong.
WRONG_REL_ERROR = 1e-2


def case_arrays(case, seed):
  """(input, out_backprop) of a case's random_inputs in its NumPy dtype."""
  from testing import numpy_dtype  # pylint: disable=g-import-not-at-top
  dtype = numpy_dtype(case.dtype)
  return tuple(a.astype(dtype) for a in case.random_inputs(seed))


# --------------------------------------------------------------------------
# Worker: one process per TensorFlow setting.


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

  def setup(name, seed):
    case = case_table.by_name(name, case_table.BENCH)
    x, dy = case_arrays(case, seed)
    xt, dyt = tf.constant(x), tf.constant(dy)
    fs = tf.constant(case.filter, tf.int32)
    padding, explicit = dwop._ops.convert_padding(case.tf_padding)  # pylint: disable=protected-access
    attrs = dict(strides=case.tf_strides, padding=padding,
                 explicit_paddings=explicit, data_format=case.data_format,
                 dilations=case.tf_dilations)
    impls = {
        "dwop": lambda: dwop.depthwise_conv2d_backprop_filter(
            xt, fs, dyt, case.tf_strides, case.tf_padding, case.data_format,
            case.tf_dilations),
        "tf": lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=xt, filter_sizes=fs, out_backprop=dyt, **attrs),
    }
    for threads in (1, 2):
      impls[f"dwop_{threads}t"] = (
          lambda t=threads: lib.filter_grad(
              x, case.filter, dy, case.tf_strides, case.tf_padding,
              case.data_format, case.tf_dilations, dtype=case.dtype,
              num_threads=t, out=state["buffer"]))
    state.update(case=case, impls=impls,
                 buffer=np.empty(case.filter, x.dtype))

  def run(impl):
    result = state["impls"][impl]()
    return np.asarray(result)

  for line in sys.stdin:
    cmd = json.loads(line)
    reply = {}
    try:
      if cmd["op"] == "setup":
        setup(cmd["case"], cmd["seed"])
      elif cmd["op"] == "result":
        result = run(cmd["impl"])  # also the warm-up
        np.save(cmd["path"], result.astype(np.float64))
      elif cmd["op"] == "time":
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
  """Prints dwop's peak memory beyond its inputs for one case, as JSON."""
  import cabi  # pylint: disable=g-import-not-at-top
  case = case_table.by_name(name, case_table.BENCH)
  x, dy = case_arrays(case, 0)
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


def measure_memory(case):
  """dwop's extra peak memory in MB for one case (None where unmeasurable)."""
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), "--memory-probe", case.name],
      capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    print(f"memory probe failed: {proc.stderr.strip()[-300:]}",
          file=sys.stderr)
    return None
  return json.loads(proc.stdout.strip().splitlines()[-1])["extra_mb"]


def measure_bandwidth(size_mb=1024, repeats=5):
  """Copy bandwidth in bytes/s: read + write of a large array, best of N."""
  src = np.ones(size_mb * 2**20 // 8)
  dst = np.empty_like(src)
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    np.copyto(dst, src)
    best = min(best, time.perf_counter() - start)
  return 2 * src.nbytes / best


def measure_peak(n=4096, repeats=5):
  """float32 matmul flops/s (NumPy's BLAS on all cores), best of N."""
  a = np.random.default_rng(0).standard_normal((n, n), np.float32)
  b = np.random.default_rng(1).standard_normal((n, n), np.float32)
  a @ b  # pylint: disable=pointless-statement
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b  # pylint: disable=pointless-statement
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best


def case_bytes(case):
  size = np.dtype(np.float64).itemsize if case.dtype == "float64" else (
      2 if case.dtype in ("float16", "bfloat16") else 4)
  elements = (np.prod(case.input) + np.prod(case.out_backprop_nhwc) +
              np.prod(case.filter))
  return int(size * elements)


# --------------------------------------------------------------------------
# Driver.


def time_case(case, workers, rounds, scratch):
  """Times and checks every implementation of one case."""
  plan = [("dwop", workers["onednn"], "dwop"),
          ("tf_onednn", workers["onednn"], "tf"),
          ("tf_native", workers["native"], "tf"),
          ("dwop_1t", workers["onednn"], "dwop_1t"),
          ("dwop_2t", workers["onednn"], "dwop_2t")]
  for worker in workers.values():
    reply = worker.call(op="setup", case=case.name, seed=0)
    if "error" in reply:
      raise RuntimeError(reply["error"])
  x, dy = (a.astype(np.float64) for a in case_arrays(case, 0))
  oracle = reference.depthwise_conv2d_backprop_filter(
      x, case.filter, dy, case.tf_strides, case.tf_padding, case.data_format,
      case.tf_dilations)
  scale = max(np.abs(oracle).max(), 1e-30)

  stats = {}
  live = []
  for label, worker, impl in plan:
    path = os.path.join(scratch, f"{label}.npy")
    reply = worker.call(op="result", impl=impl, path=path)
    if "error" in reply:
      stats[label] = {"error": reply["error"]}
      continue
    result = np.load(path)
    stats[label] = {"max_rel_error": float(np.abs(result - oracle).max() /
                                           scale)}
    # One timed call decides how many calls fill a round.
    once = worker.call(op="time", impl=impl, iters=1)["times"][0]
    iters = max(1, int(TIME_PER_ROUND / max(once, 1e-6)))
    live.append((label, worker, impl, iters))
    stats[label]["samples"] = []
  for _ in range(rounds):  # interleaved: every implementation each round
    for label, worker, impl, iters in live:
      times = worker.call(op="time", impl=impl, iters=iters)["times"]
      stats[label]["samples"].append(float(np.median(times)))
  for label, _, _, _ in live:
    stats[label]["ms"] = 1e3 * float(np.median(stats[label]["samples"]))
  return stats


def summarise(case, stats, bandwidth, peak, extra_mb):
  """The row of the results table for one case."""
  row = {"case": case.name, "network": case.network, "dtype": case.dtype,
         "data_format": case.data_format, "flops": case.flops,
         "bytes": case_bytes(case)}
  row["roofline_ms"] = 1e3 * max(row["bytes"] / bandwidth, case.flops / peak)
  row.update({k: v for k, v in stats.items()})
  tf_times = [stats[k]["ms"] for k in ("tf_onednn", "tf_native")
              if "ms" in stats[k]]
  dwop_ms = stats["dwop"].get("ms")
  row["dwop_ms"] = dwop_ms
  row["best_tf_ms"] = min(tf_times) if tf_times else None
  row["speedup"] = (row["best_tf_ms"] / dwop_ms
                    if dwop_ms and row["best_tf_ms"] else None)
  row["roofline_fraction"] = row["roofline_ms"] / dwop_ms if dwop_ms else None
  row["gflops"] = case.flops / dwop_ms / 1e6 if dwop_ms else None
  one, two = stats["dwop_1t"].get("ms"), stats["dwop_2t"].get("ms")
  row["thread_scaling"] = one / two if one and two else None
  row["extra_mb"] = extra_mb
  return row


def fmt(value, spec):
  return format(value, spec) if value is not None else "-"


def ms_cell(row, label, wrong_mark, error_text):
  """An implementation's time, marked when its result is wrong."""
  entry = row.get(label, {})
  if "ms" not in entry:
    return error_text
  wrong = entry.get("max_rel_error", 0) > WRONG_REL_ERROR
  return f"{entry['ms']:.2f}" + (wrong_mark if wrong else "")


def print_row(row):
  def ms(label):
    return ms_cell(row, label, "*", "err")
  print(f"{row['case']:<32} {ms('dwop'):>9} {ms('tf_onednn'):>10} "
        f"{ms('tf_native'):>10} {fmt(row['speedup'], '.1f'):>7}x "
        f"{fmt(row['roofline_ms'], '.2f'):>9} "
        f"{fmt(row['roofline_fraction'], '.0%'):>6} "
        f"{fmt(row['gflops'], '.0f'):>7} "
        f"{fmt(row['thread_scaling'], '.2f'):>6} "
        f"{fmt(row['extra_mb'], '.1f'):>6} "
        f"{row['dwop'].get('max_rel_error', float('nan')):>8.1e}",
        flush=True)


HEADER = (f"{'case':<32} {'dwop ms':>9} {'oneDNN ms':>10} {'native ms':>10} "
          f"{'speedup':>8} {'roof ms':>9} {'%roof':>6} {'GFLOP/s':>7} "
          f"{'2T/1T':>6} {'+MB':>6} {'dwop err':>8}")


def geomean(values):
  values = [v for v in values if v]
  return float(np.exp(np.mean(np.log(values)))) if values else None


def summary(rows):
  """The issue's targets, computed over the measured rows."""
  by_name = {c.name: c for c in case_table.BENCH}
  large_filter = [r for r in rows if by_name[r["case"]].filter[0] >= 7]
  fractions = [r["roofline_fraction"] for r in rows if r["roofline_fraction"]]
  scaling = [r["thread_scaling"] for r in rows
             if r["flops"] >= LARGE_FLOPS and r["thread_scaling"]]
  return {
      "geomean_speedup": geomean([r["speedup"] for r in rows]),
      "geomean_speedup_k7_plus": geomean([r["speedup"] for r in large_filter]),
      "min_speedup": min((r["speedup"] for r in rows if r["speedup"]),
                         default=None),
      "median_roofline_ratio": (1 / float(np.median(fractions))
                                if fractions else None),
      "worst_roofline_ratio": 1 / min(fractions) if fractions else None,
      "min_thread_scaling_large": min(scaling, default=None),
      "max_dwop_extra_mb": max((r["extra_mb"] for r in rows
                                if r["extra_mb"] is not None), default=None),
      "max_dwop_rel_error": max(r["dwop"].get("max_rel_error", 0)
                                for r in rows),
  }


def markdown(results):
  """The results as a Markdown table plus the summary, for the README."""
  machine = results["machine"]
  lines = [
      f"{machine['cores']} cores, copy bandwidth "
      f"{machine['bandwidth_gbs']:.1f} GB/s, float32 matmul peak "
      f"{machine['peak_gflops']:.0f} GFLOP/s; medians of "
      f"{results['rounds']} interleaved rounds.", "",
      "| case | dwop ms | TF oneDNN ms | TF native ms | speedup | roofline ms "
      "| roofline / dwop | dwop GFLOP/s | 2T/1T | dwop extra MB "
      "| dwop rel. error |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

  def ms(row, label):
    return ms_cell(row, label, " (wrong)", "error")

  for r in results["cases"]:
    lines.append(
        f"| {r['case']} | {ms(r, 'dwop')} | {ms(r, 'tf_onednn')} | "
        f"{ms(r, 'tf_native')} | {fmt(r['speedup'], '.1f')}x | "
        f"{fmt(r['roofline_ms'], '.2f')} | "
        f"{fmt(r['roofline_fraction'], '.0%')} | {fmt(r['gflops'], '.0f')} | "
        f"{fmt(r['thread_scaling'], '.2f')} | {fmt(r['extra_mb'], '.1f')} | "
        f"{r['dwop'].get('max_rel_error', float('nan')):.1e} |")
  lines.append("")
  for key, value in results["summary"].items():
    lines.append(f"- {key}: {fmt(value, '.3g')}")
  return "\n".join(lines) + "\n"


def plot(rows, path):
  """Speedup over the best TensorFlow kernel and fraction of the roofline."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("matplotlib is not installed: no chart", file=sys.stderr)
    return
  names = [r["case"] for r in rows]
  fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 9), sharex=True)
  ax1.bar(names, [r["speedup"] or 0 for r in rows], color="tab:blue")
  ax1.axhline(1, color="black", linewidth=0.8)
  ax1.set_yscale("log")
  ax1.set_ylabel("speedup over best TensorFlow kernel")
  ax2.bar(names, [r["roofline_fraction"] or 0 for r in rows],
          color="tab:green")
  ax2.axhline(1, color="black", linewidth=0.8)
  ax2.set_ylabel("roofline time / dwop time")
  ax2.set_ylim(0, 1.05)
  plt.setp(ax2.get_xticklabels(), rotation=75, ha="right", fontsize=8)
  fig.suptitle("dwop filter gradient vs TensorFlow "
               f"({platform.processor() or platform.machine()})")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help=f"only {len(QUICK_CASES)} cases and fewer rounds")
  parser.add_argument("--cases", help="regex selecting cases by name")
  parser.add_argument("--rounds", type=int, default=None)
  parser.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker is not None:
    return _worker(args.worker == "1")
  if args.memory_probe is not None:
    return _memory_probe(args.memory_probe)

  selected = case_table.BENCH
  if args.quick:
    selected = [c for c in selected if c.name in QUICK_CASES]
  if args.cases:
    selected = [c for c in selected if re.search(args.cases, c.name)]
  rounds = args.rounds or (3 if args.quick else 7)
  os.makedirs(args.out, exist_ok=True)

  print("measuring the machine...", flush=True)
  bandwidth, peak = measure_bandwidth(), measure_peak()
  print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, float32 peak "
        f"{peak / 1e9:.0f} GFLOP/s, {os.cpu_count()} cores", flush=True)

  workers = {"onednn": Worker(True), "native": Worker(False)}
  rows = []
  try:
    print(HEADER)
    with tempfile.TemporaryDirectory() as scratch:
      for case in selected:
        stats = time_case(case, workers, rounds, scratch)
        row = summarise(case, stats, bandwidth, peak, measure_memory(case))
        rows.append(row)
        print_row(row)
  finally:
    for worker in workers.values():
      worker.close()

  results = {
      "machine": {"cpu": platform.processor(), "cores": os.cpu_count(),
                  "bandwidth_gbs": bandwidth / 1e9,
                  "peak_gflops": peak / 1e9},
      "rounds": rounds,
      "summary": summary(rows),
      "cases": rows,
  }
  print()
  for key, value in results["summary"].items():
    print(f"{key:<28} {fmt(value, '.3g')}")
  print("* TensorFlow's result is wrong (max relative error > "
        f"{WRONG_REL_ERROR:g})")
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(markdown(results))
  plot(rows, os.path.join(args.out, "benchmark.png"))
  print(f"wrote results.json, results.md and benchmark.png to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
