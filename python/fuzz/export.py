"""The export format: generated C ABI problems for the sanitizer driver.

`python -m fuzz --export FILE` writes one problem per line, which
tests/sanitize/replay.cc (`make sanitize`) replays through the C ABI built
with ASan/UBSan/TSan. This docstring is the format's one description:

  op=filter_grad dtype=2 input=1,5,5,2 filter_sizes=3,3,2,1 out_backprop=1,5,5,2
  strides=1,1,1,1 padding=x53414d45 explicit_paddings=. data_format=x4e485743
  dilations=1,1,1,1 null=. negative_count=. null_buffer=. threads=0 seed=3
  valid=1 atol=0.00012 output=1,5,5,2

(one line, fields separated by single spaces, in this order):
  op                filter_grad, forward or input_grad: which entry points
                    (dwop_<op>_cpu and dwop_<op>_reference) the line calls.
                    For all three, input, filter_sizes and out_backprop are
                    the dwop_problem's input_shape, filter_sizes and
                    out_backprop_shape (dwop_c.h): the input gradient's
                    input_sizes, the filter's shape, and the forward's output
                    shape ("." there: computed, not checked)
  dtype             the dwop_dtype enum value (any int: junk ones too)
  input, filter_sizes, out_backprop, strides, explicit_paddings, dilations
                    comma-separated int64 lists; "." an empty list, "-" a NULL
                    pointer (strides and dilations only)
  padding, data_format   "x" + the string's bytes in hex, or "-" for NULL
  null              a dwop_problem array field set to NULL ("." none)
  negative_count    a dwop_problem count set to -1 ("." none)
  null_buffer       input, out_backprop or filter_backprop passed as NULL
  threads           the CPU kernel's num_threads argument
  seed              seeds the driver's input values: multiples of 1/8 in
                    [-1, 1] (so max|x| and max|dy| are at most 1)
  valid             1 if the model (fuzz.model.expect) says the C ABI must
                    accept the problem
  atol              the absolute tolerance (python/tolerance.py, for two
                    computed results with inputs of magnitude at most 1)
                    within which every kernel must agree with the reference
                    kernel; 0 for invalid problems
"""

import tolerance
from fuzz.model import (FLOATS, _flatten, _list_attr, attr_padding, expect,
                        op_of)
from fuzz.runner import read_specs
from fuzz.strategies import _strategies

# The driver's input values lie in [-1, 1].
REPLAY_MAX_ABS = 1.0


def _hex(s):
  return "-" if s is None else "x" + s.encode().hex()


def _ints(v):
  return ",".join(str(int(x)) for x in v) if v else "."


def replay_atol(spec, ex):
  """The tolerance of a valid problem in the driver: two computed results
  (a kernel and the reference kernel) of inputs in [-1, 1]."""
  if not ex.ok:
    return 0.0
  g = ex.geometry
  if op_of(spec) == "filter_grad":
    terms = _flatten(spec["input"])[0] * g["out_rows"] * g["out_cols"]
  else:  # as fuzz.backends.new_op_terms counts them
    kh, kw, _, m = _flatten(spec["filter_sizes"])
    terms = kh * kw * (m if op_of(spec) == "input_grad" else 1)
  return tolerance.bound(spec["dtype"], REPLAY_MAX_ABS, REPLAY_MAX_ABS, terms,
                         tolerance.TWO_RESULTS)


def export_line(spec):
  """One line of the export format (this module's docstring)."""
  c = spec.get("cabi") or {}
  ex = expect(spec, "cabi")
  padding, explicit = attr_padding(spec, "cabi")
  dtype = c.get("dtype_enum", FLOATS.index(spec["dtype"])
                if spec["dtype"] in FLOATS else 4)
  op = op_of(spec)
  if not ex.ok:
    output = "."
  elif op == "filter_grad":
    output = _ints(_flatten(spec["filter_sizes"]))
  elif op == "forward":
    output = _ints(ex.geometry["output_shape"])
  else:
    output = _ints(spec["input"])
  fields = dict(
      op=op, dtype=dtype,
      input=_ints(_flatten(spec["input"]) if spec["input"] else []),
      filter_sizes=_ints(_flatten(spec["filter_sizes"])),
      out_backprop=_ints(spec["out_backprop"]),
      strides=_ints(_list_attr(spec["strides"])) if spec["strides"] is not
      None else "-", padding=_hex(padding),
      explicit_paddings=_ints(explicit), data_format=_hex(
          spec["data_format"]),
      dilations=_ints(_list_attr(spec["dilations"])) if spec["dilations"] is
      not None else "-", null=c.get("null", "."),
      negative_count=c.get("negative_count", "."),
      null_buffer=c.get("null_buffer", "."),
      threads=c.get("threads", 0), seed=spec["seed"] % 1000,
      valid=int(ex.ok), atol=f"{replay_atol(spec, ex):.17g}", output=output)
  return " ".join(f"{k}={v}" for k, v in fields.items())


def export(path, cases, seed, include=None):
  """Writes `cases` generated C ABI problems for the sanitizer driver, after
  the C ABI specs of the `include` corpus."""
  from hypothesis import HealthCheck, Phase, given, settings  # pylint: disable=g-import-not-at-top
  from hypothesis import seed as hseed  # pylint: disable=g-import-not-at-top
  specs = _strategies()
  lines = []

  @settings(max_examples=cases, database=None, deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate])
  @hseed(seed)
  @given(specs("cabi"))
  def collect(spec):
    if (spec.get("cabi") or {}).get("null_problem") or (
        spec.get("cabi") or {}).get("error_size") is not None:
      return  # the driver exercises these itself
    lines.append(export_line(spec))

  if include:
    for spec in read_specs(include):
      c = spec.get("cabi") or {}
      if "cabi" in spec.get("backends", ["cabi"]) and not (
          c.get("null_problem") or "error_size" in c):
        lines.append(export_line(spec))
  collect()
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return len(lines)
