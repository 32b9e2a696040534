"""Command line of `python -m fuzz` (see fuzz/__init__.py)."""

import argparse
import time

import fuzz as package
from fuzz.export import export
from fuzz.runner import fuzz, run_child, run_replay


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m fuzz", description=package.__doc__.split("\n\n")[0])
  parser.add_argument("--backend", choices=["tf", "cabi"], default="tf")
  parser.add_argument("--cases", type=int, default=1000)
  parser.add_argument("--per-child", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--jobs", type=int, default=1)
  parser.add_argument("--timeout", type=int, default=900,
                      help="seconds per child")
  parser.add_argument("--work-dir", default=None)
  parser.add_argument("--replay", metavar="JSONL")
  parser.add_argument("--export", metavar="FILE")
  parser.add_argument("--include", metavar="JSONL",
                      help="with --export: corpus specs to export first")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--journal", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    return run_child(args.backend, args.seed, args.cases, args.journal)
  if args.replay:
    return run_replay(args.backend, args.replay)
  if args.export:
    n = export(args.export, args.cases, args.seed, args.include)
    print(f"wrote {n} C ABI problems to {args.export}")
    return 0
  start = time.time()
  report = fuzz(args.backend, args.cases, args.per_child, args.seed,
                args.timeout, args.jobs, args.work_dir)
  s = report.stats
  print(f"fuzz[{args.backend}]: {s['cases']} cases in "
        f"{time.time() - start:.0f} s: {s['ok']} computed and matched the "
        f"oracle, {s['validated']} validated only, {s['error']} refused "
        f"with a clear error; {len(report.failures)} failure(s)")
  stages = {k[6:]: v for k, v in sorted(s.items()) if k.startswith("stage:")}
  print(f"  outcome by stage: {stages}")
  ops = {k[3:]: v for k, v in sorted(s.items()) if k.startswith("op:")}
  if ops:
    print(f"  cases by op: {ops}")
  if s["cases"] < args.cases and report.ok:
    print(f"  only {s['cases']} of {args.cases} cases ran")
    return 1
  return 0 if report.ok else 1

