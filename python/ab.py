"""Interleaved A/B timing of dwop's CPU kernels, through the C ABI.

    python python/ab.py [--variants V;V;...] [--ops forward,input_grad,...]
        [--threads 2] [--rounds 7] [--seconds 0.25] CASE [CASE ...]

Each variant is a C ABI library and/or environment settings, written
`[LIB][@KEY=VALUE,...]` (an empty LIB is build/libdwop_c.so), e.g.
`--variants "@;@DWOP_CPU_PLAN=pieces=8;/tmp/b1/libdwop_c.so"`. The kernels
read DWOP_CPU_ISA and DWOP_CPU_PLAN on every call, so both switch between
calls in one process. A CASE is a name from python/bench_shapes.json or
`NxHxWxCxK[xS[xD]]` (float32 NHWC, a KxK filter, stride S, dilation D, SAME);
a `:dtype` suffix picks float16, bfloat16 or float64.

Every round times each variant in turn (calls repeated for --seconds, their
median); the table gives the median over rounds and each variant's speed
against the first (above 1: faster). On shared machines timings drift by
tens of percent within minutes: compare only variants of one run. DIFF marks
a variant whose result is not bitwise the first one's (the inputs are normal
random values, so a change of summation order shows). This is a development
tool: the benchmark is python/bench.py.
"""

import argparse
import os
import sys
import time

import numpy as np

import bench
import cabi
import cases as case_table
from testing import numpy_dtype

OPS = ("forward", "input_grad", "filter_grad")


def parse_case(text):
  """A Case from a bench_shapes.json name or NxHxWxCxK[xS[xD]][:dtype]."""
  spec, _, dtype = text.partition(":")
  try:
    case = case_table.by_name(spec, case_table.BENCH)
  except KeyError:
    dims = [int(v) for v in spec.split("x")]
    if not 5 <= len(dims) <= 7:
      raise argparse.ArgumentTypeError(
          f"{text!r}: not a benchmark case nor NxHxWxCxK[xS[xD]]") from None
    n, h, w, c, k = dims[:5]
    stride = dims[5] if len(dims) > 5 else 1
    dilation = dims[6] if len(dims) > 6 else 1
    case = case_table.Case(spec, (n, h, w, c), (k, k, c, 1), (stride, stride),
                           "SAME", (dilation, dilation))
  return case.replace(dtype=dtype) if dtype else case


def parse_variant(text):
  """(library path or None, {env key: value}) from `[LIB][@K=V,...]`."""
  lib, _, settings = text.partition("@")
  env = {}
  for item in filter(None, settings.split(",")):
    key, eq, value = item.partition("=")
    if not eq:
      raise argparse.ArgumentTypeError(f"{item!r} in {text!r}: not KEY=VALUE")
    env[key] = value
  return lib or None, env


def set_env(env, keys):
  """Sets the keys `keys` to their values in `env`, unsets those it lacks."""
  for key in keys:
    if env.get(key) is not None:
      os.environ[key] = env[key]
    else:
      os.environ.pop(key, None)


def time_op(calls, envs, args):
  """(median milliseconds, result) per variant over the rounds; the
  environment as it was afterwards."""
  keys = {k for env in envs for k in env}
  before = {k: os.environ.get(k) for k in keys}
  samples = [[] for _ in calls]
  results = [None] * len(calls)
  for rnd in range(args.rounds + 1):  # round 0 warms up
    for i, (call, env) in enumerate(zip(calls, envs)):
      set_env(env, keys)
      times = []
      start = time.perf_counter()
      while len(times) < 3 or time.perf_counter() - start < args.seconds:
        t = time.perf_counter()
        results[i] = call()
        times.append(time.perf_counter() - t)
      if rnd:
        samples[i].append(1e3 * float(np.median(times)))
  set_env(before, keys)
  return [float(np.median(s)) for s in samples], results


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("cases", nargs="+", type=parse_case, metavar="CASE")
  parser.add_argument("--variants", default="@",
                      help="';'-separated [LIB][@KEY=VALUE,...] (default: @)")
  parser.add_argument("--ops", default=",".join(OPS),
                      help=f"comma-separated subset of {','.join(OPS)}")
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--seconds", type=float, default=0.25,
                      help="time each variant per round, at least")
  args = parser.parse_args(argv)
  variants = [parse_variant(v) for v in args.variants.split(";")]
  ops = [op for op in args.ops.split(",") if op]
  if not ops or set(ops) - set(OPS):
    parser.error(f"--ops takes a comma-separated subset of {','.join(OPS)}")
  libs = {}
  for path, _ in variants:
    if path not in libs:
      libs[path] = cabi.Library(path)
  for case in args.cases:
    # Normal values, not the suites' exact ones: any change of summation
    # order shows as DIFF.
    rng = np.random.default_rng(0)
    arrays = tuple(
        rng.standard_normal(shape).astype(numpy_dtype(case.dtype))
        for shape in (case.input_shape, case.filter, case.out_backprop_shape))
    label = case.name + ("" if case.dtype == "float32" else f":{case.dtype}")
    for op in ops:
      # The benchmark's C ABI call: 64-byte aligned copies of the buffers.
      calls = [bench.cabi_call(libs[path], cabi, op, case, arrays, args.threads)
               for path, _ in variants]
      ms, results = time_op(calls, [env for _, env in variants], args)
      same = all(np.array_equal(results[0].view(np.uint8), r.view(np.uint8))
                 for r in results[1:])
      cells = [f"{m:8.3f}" for m in ms] + [f"{ms[0] / m:6.3f}x" for m in ms[1:]]
      print(f"{label:32s} {op:11s} {' '.join(cells)}"
            f"{'' if same else '  DIFF'}", flush=True)


if __name__ == "__main__":
  sys.exit(main())
