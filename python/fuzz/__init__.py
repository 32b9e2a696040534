"""Property-based fuzzing of dwop's ops and of its C ABI (hypothesis).

Each generated call is one of the three ops, chosen per case (the spec's
"op"; absent means the filter gradient): the filter gradient
(dwop.depthwise_conv2d_backprop_filter, dwop_filter_grad_*), the forward
(dwop.depthwise_conv2d_native, dwop_forward_*) or the input gradient
(dwop.depthwise_conv2d_backprop_input, dwop_input_grad_*). On the C ABI the
CPU and reference entries of all three run (and the CUDA kernels emulated on
the host for the filter gradient); on TensorFlow the new ops run eagerly only
(their shape functions, which graph mode adds, are not modelled). The C ABI has
no validation-only entry for the new ops, so their valid problems are only
generated small enough to run.

The property, for every generated call: it either returns the float64 oracle's
answer (python/reference.py) within the dtype's tolerance, bit-identical for any
thread count, or it raises InvalidArgumentError / ValueError / TypeError (the C
ABI: returns DWOP_INVALID_ARGUMENT and leaves the output untouched) with a
message that names one of the faulty arguments. Which of the two must happen is
decided by `expect`, a model of the op's contract written here in Python with
exact integers (int64 overflow included), so a call that dwop wrongly accepts
or wrongly refuses fails too.

A call is described by a JSON "spec" (see fuzz.strategies), which is also its
reproducer. Calls run in child processes, many per child, each child running
hypothesis under its own fixed seed: a crash, abort or hang kills only the
child; the child journals every spec before running it, so the parent knows the
suspect, re-runs it alone in a fresh child to confirm, and prints it. Wrong
answers are shrunk by hypothesis inside the child.

  PYTHONPATH=python python -m fuzz --backend tf   --cases 10000   # TensorFlow
  PYTHONPATH=python python -m fuzz --backend cabi --cases 20000   # C ABI only
  PYTHONPATH=python python -m fuzz --backend tf --replay specs.jsonl
  PYTHONPATH=python python -m fuzz --export cases.txt --cases 2000  # sanitizer

Huge shapes are never materialised: a tensor with a zero dimension has no
elements whatever its other dimensions, so huge-but-valid problems are built
around empty tensors; valid problems whose output would be large are only
validated (dwop_validate) on the C ABI and skipped on TensorFlow.

The package:
  fuzz.model       the contract (`expect`): the independent model of
                   validation and geometry, with exact integers
  fuzz.strategies  the hypothesis strategies that generate specs
  fuzz.backends    running a spec (TensorFlow or C ABI) and checking it
                   against the oracle within python/tolerance.py's bound
  fuzz.runner      children, journals, crash isolation and replay
  fuzz.export      the sanitizer driver's format (documented there)
  fuzz.cli         `python -m fuzz`
"""

from fuzz.backends import (CabiBackend, Mismatch, TfBackend, backend_named,
                           check_error, check_result, oracle, spec_tolerance,
                           values)
from fuzz.export import export, export_line
from fuzz.model import Expect, attr_padding, expect
from fuzz.runner import (Report, _child_cmd, _result, _run, fuzz, read_specs,
                         run_child, run_replay)
from fuzz.strategies import runnable

__all__ = [
    "CabiBackend", "Expect", "Mismatch", "Report", "TfBackend",
    "attr_padding", "backend_named", "check_error", "check_result", "expect",
    "export", "export_line", "fuzz", "oracle", "read_specs", "run_child",
    "run_replay", "runnable", "spec_tolerance", "values", "_child_cmd",
    "_result", "_run",
]
