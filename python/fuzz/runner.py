"""The campaign: hypothesis in child processes, each journalling every spec
before running it, and a parent that isolates crashes and hangs."""

import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from fuzz.model import expect, op_of
from fuzz.strategies import _strategies
from fuzz.backends import backend_named


RESULT_TAG = "FUZZ-RESULT "
# python/, which holds this package: the children's PYTHONPATH.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(PYTHON_DIR)


# --------------------------------------------------------------------------
# The child: hypothesis, with a journal.


def run_child(backend_name, seed, cases, journal_path):
  from hypothesis import HealthCheck, Phase, given, settings  # pylint: disable=g-import-not-at-top
  from hypothesis import seed as hseed  # pylint: disable=g-import-not-at-top
  backend = backend_named(backend_name)
  specs = _strategies()
  stats = collections.Counter()
  journal = open(journal_path, "w", buffering=1)  # pylint: disable=consider-using-with

  @settings(max_examples=cases, database=None, deadline=None,
            suppress_health_check=list(HealthCheck), print_blob=False,
            phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False)
  @hseed(seed)
  @given(specs(backend_name))
  def prop(spec):
    journal.write(json.dumps(spec) + "\n")
    journal.flush()
    outcome = backend.run(spec)
    stats["cases"] += 1
    stats[outcome] += 1
    stats["stage:" + expect(spec, backend_name).stage] += 1
    stats["op:" + op_of(spec)] += 1

  try:
    prop()
    status = 0
  except Exception as e:  # pylint: disable=broad-except
    traceback.print_exc()
    print(f"FAILURE: {type(e).__name__}: {e}", file=sys.stderr)
    status = 1
  print(RESULT_TAG + json.dumps(dict(stats)), flush=True)
  return status


def read_specs(path):
  """Specs from a JSON list (the corpus) or JSON lines (a reproducer)."""
  with open(path) as f:
    text = f.read()
  if text.lstrip().startswith("["):
    return json.loads(text)
  return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_replay(backend_name, path):
  backend = backend_named(backend_name)
  stats = collections.Counter()
  failures = 0
  specs = read_specs(path)
  for spec in specs:
    if backend_name not in spec.get("backends", (backend_name,)):
      continue
    try:
      outcome = backend.run(spec)
    except Exception as e:  # pylint: disable=broad-except
      failures += 1
      print(f"FAILURE: {type(e).__name__}: {e}\n  spec: {json.dumps(spec)}",
            file=sys.stderr)
      outcome = "failed"
    stats["cases"] += 1
    stats[outcome] += 1
    stats["op:" + op_of(spec)] += 1
  print(RESULT_TAG + json.dumps(dict(stats)), flush=True)
  return 1 if failures else 0


# --------------------------------------------------------------------------
# The parent.


def _child_cmd(args):
  return [sys.executable, "-m", "fuzz"] + args


def _env(extra=None):
  env = dict(os.environ)
  env.update(extra or {})
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  env["PYTHONPATH"] = os.pathsep.join([PYTHON_DIR, ROOT,
                                      env.get("PYTHONPATH", "")])
  return env


def _run(cmd, timeout, env=None):
  try:
    p = subprocess.run(cmd, env=_env(env), capture_output=True, text=True,
                       timeout=timeout, check=False)
    return p.returncode, p.stdout, p.stderr
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout
    err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr
    return "timeout", out or "", err or ""


def _result(stdout):
  for line in reversed(stdout.splitlines()):
    if line.startswith(RESULT_TAG):
      return json.loads(line[len(RESULT_TAG):])
  return None


def _describe(rc):
  if rc == "timeout":
    return "hung (timeout)"
  if isinstance(rc, int) and rc < 0:
    return f"killed by signal {-rc}"
  return f"exit status {rc}"


@dataclasses.dataclass
class Report:
  stats: collections.Counter
  failures: list  # dicts: kind, spec, detail

  @property
  def ok(self):
    return not self.failures


def fuzz(backend, cases, per_child=1000, seed=0, timeout=900, jobs=1,
         work_dir=None, log=print, env=None):
  """Runs `cases` generated calls on `backend` in child processes.

  Child i runs `per_child` hypothesis examples under seed
  `seed * 1000003 + i`, so a run is reproducible. Returns a Report; each
  failure carries its reproducer spec.
  """
  temporary = work_dir is None  # removed at the end unless it holds a crash
  work_dir = work_dir or tempfile.mkdtemp(prefix="dwop-fuzz-")
  os.makedirs(work_dir, exist_ok=True)
  chunks = []
  remaining, i = cases, 0
  while remaining > 0:
    n = min(per_child, remaining)
    chunks.append((seed * 1_000_003 + i, n))
    remaining -= n
    i += 1
  stats, failures = collections.Counter(), []
  running = []

  def start(chunk_seed, n):
    journal = os.path.join(work_dir, f"{backend}-{chunk_seed}.jsonl")
    cmd = _child_cmd(["--child", "--backend", backend, "--seed",
                      str(chunk_seed), "--cases", str(n), "--journal",
                      journal])
    proc = subprocess.Popen(cmd, env=_env(env), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                            stderr=subprocess.PIPE, text=True)
    return proc, chunk_seed, journal, time.time()

  def finish(proc, chunk_seed, journal):
    try:
      out, err = proc.communicate(timeout=timeout)
      rc = proc.returncode
    except subprocess.TimeoutExpired:
      proc.kill()
      out, err = proc.communicate()
      rc = "timeout"
    result = _result(out)
    if result:
      stats.update(result)
    if rc == 0 and result is not None:
      return
    specs = _journal(journal)
    last = specs[-1] if specs else None
    if rc == 1 and result is not None:  # a property failure, shrunk
      failures.append(dict(kind="wrong answer", spec=last,
                           detail=_tail(err)))
      log(f"[{backend} seed {chunk_seed}] FAILURE: {_tail(err, 600)}\n"
          f"  reproducer: {json.dumps(last)}")
      return
    failures.append(_isolate(backend, specs, rc, err, work_dir, timeout,
                             log, chunk_seed, env))

  pending = list(chunks)
  while pending or running:
    while pending and len(running) < jobs:
      running.append(start(*pending.pop(0)))
    proc, chunk_seed, journal, _ = running.pop(0)
    finish(proc, chunk_seed, journal)
  if temporary and not any(f.get("reproducer") for f in failures):
    shutil.rmtree(work_dir, ignore_errors=True)
  return Report(stats, failures)


def _tail(text, n=3000):
  return text[-n:] if text else ""


def _journal(path):
  if not os.path.exists(path):
    return []
  specs = []
  with open(path) as f:
    for line in f:
      try:
        specs.append(json.loads(line))
      except json.JSONDecodeError:
        break  # a torn last line
  return specs


def _isolate(backend, specs, rc, err, work_dir, timeout, log, chunk_seed,
             env=None):
  """A child crashed or hung: re-run its last spec alone to confirm."""
  if not specs:
    log(f"[{backend} seed {chunk_seed}] child died before any case "
        f"({_describe(rc)}): {_tail(err, 2000)}")
    return dict(kind="child failed to start", spec=None, detail=_tail(err))
  suspect = specs[-1]
  path = os.path.join(work_dir, f"crash-{backend}-{chunk_seed}.jsonl")
  with open(path, "w") as f:
    f.write(json.dumps(suspect) + "\n")
  rc2, out2, err2 = _run(_child_cmd(["--replay", path, "--backend", backend]),
                         min(timeout, 120), env)
  # Exit status 1 with a result line is a checked failure; without one (e.g.
  # UBSan's halt_on_error exits with 1) the process died.
  alone = rc2 not in (0, 1) or _result(out2) is None
  if not alone:  # depends on earlier calls: keep the whole sequence
    with open(path, "w") as f:
      for s in specs:
        f.write(json.dumps(s) + "\n")
  what = ("this spec (reproduced alone)" if alone else
          f"a sequence of {len(specs)} specs")
  detail = _tail(err2 if alone else err, 2000)
  log(f"[{backend} seed {chunk_seed}] CRASH: child {_describe(rc)} on "
      f"{what}:\n  {json.dumps(suspect)}\n  reproduce: PYTHONPATH=python "
      f"python -m fuzz --backend {backend} --replay {path}\n  {detail}")
  return dict(kind="crash", spec=suspect, detail=_tail(err), reproducer=path,
              alone=alone)
