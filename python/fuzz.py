"""Property-based fuzzing of dwop's op and of its C ABI (hypothesis).

The property, for every generated call: it either returns the float64 oracle's
answer (python/reference.py) within the dtype's tolerance, bit-identical for any
thread count, or it raises InvalidArgumentError / ValueError / TypeError (the C
ABI: returns DWOP_INVALID_ARGUMENT and leaves the output untouched) with a
message that names one of the faulty arguments. Which of the two must happen is
decided by `expect`, a model of the op's contract written here in Python with
exact integers (int64 overflow included), so a call that dwop wrongly accepts
or wrongly refuses fails too.

A call is described by a JSON "spec" (see `specs`), which is also its
reproducer. Calls run in child processes, many per child, each child running
hypothesis under its own fixed seed: a crash, abort or hang kills only the
child; the child journals every spec before running it, so the parent knows the
suspect, re-runs it alone in a fresh child to confirm, and prints it. Wrong
answers are shrunk by hypothesis inside the child.

  python python/fuzz.py --backend tf   --cases 10000        # through TensorFlow
  python python/fuzz.py --backend cabi --cases 20000        # C ABI, no TensorFlow
  python python/fuzz.py --backend tf --replay specs.jsonl   # re-run reproducers
  python python/fuzz.py --export cases.txt --cases 2000     # for the sanitizer

Huge shapes are never materialised: a tensor with a zero dimension has no
elements whatever its other dimensions, so huge-but-valid problems are built
around empty tensors; valid problems whose output would be large are only
validated (dwop_validate) on the C ABI and skipped on TensorFlow.
"""

import argparse
import collections
import ctypes
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import types

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
for _path in (ROOT, _HERE, os.path.join(ROOT, "tests")):
  if _path not in sys.path:
    sys.path.insert(0, _path)

import reference  # pylint: disable=g-import-not-at-top,wrong-import-position
import testing  # pylint: disable=g-import-not-at-top,wrong-import-position

INT64_MAX = 2**63 - 1
INT64_MIN = -2**63
INT32_MAX = 2**31 - 1
# cc/kernels/common/geometry.h
MAX_FILTER_ELEMENTS = 2**31 - 1
MAX_FILTER_BYTES = 2**31
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}

FLOATS = ("float16", "bfloat16", "float32", "float64")
# Element types the op must refuse.
JUNK_DTYPES = ("int32", "uint16", "complex64", "bool")
LAYOUTS = ("NHWC", "NCHW")

# Materialised tensors stay this small (elements); larger valid problems are
# validation-only.
MAX_ELEMENTS = 8000
MAX_OUTPUT = 1 << 16
MAX_TAPS = 1024  # oracle cost: one einsum per filter tap

# Values that break arithmetic in interesting ways.
HUGE = (2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**62, INT64_MAX)
HOSTILE = HUGE + (-1, -2, -2**31, INT64_MIN, 0)

RESULT_TAG = "FUZZ-RESULT "


# --------------------------------------------------------------------------
# The model of the contract.


@dataclasses.dataclass
class Expect:
  """What a call must do: succeed (with `geometry`), or fail naming one of
  `keywords` at `stage`."""
  ok: bool
  keywords: tuple = ()  # any one of them must appear in the error message
  reason: str = ""
  geometry: dict = None  # out_rows, out_cols, pad_top, pad_left when ok
  stage: str = ""


class _Fault(Exception):

  def __init__(self, reason, *keywords):
    super().__init__(reason)
    self.reason = reason
    self.keywords = keywords


def _is_int(v):
  return isinstance(v, int) and not isinstance(v, bool)


def _as_int64(v):
  """TensorFlow's attr conversion: an int outside int64 silently becomes -1."""
  return v if INT64_MIN <= v <= INT64_MAX else -1


def _fits(v):
  return INT64_MIN <= v <= INT64_MAX


def _trunc_div(a, b):
  q = abs(a) // abs(b)
  return q if (a >= 0) == (b >= 0) else -q


def _flatten(v):
  if isinstance(v, (list, tuple)):
    return [x for item in v for x in _flatten(item)]
  return [v]


def _rank(v):
  if isinstance(v, (list, tuple)):
    return 1 + (_rank(v[0]) if v else 0)
  return 0


def _depth_dim(layout):
  return 3 if layout == "NHWC" else 1


def _row_dim(layout):
  return 1 if layout == "NHWC" else 2


def _window_attr(name, values, layout):
  """ParseWindowAttr: 4 positive entries, 1 in batch and depth."""
  if len(values) != 4:
    raise _Fault(f"{name} length {len(values)}", name)
  if any(v <= 0 for v in values):
    raise _Fault(f"{name} not positive", name)
  if values[0] != 1 or values[_depth_dim(layout)] != 1:
    raise _Fault(f"{name} batch/depth != 1", name)
  return values[_row_dim(layout)], values[_row_dim(layout) + 1]


def _checked_size(name, dims):
  """CheckedSize: the in-order product (as TensorShape builds it) and its
  size in bytes fit in int64; a zero ends the product."""
  n = 1
  for d in dims:
    n *= d
    if n > INT64_MAX:
      raise _Fault(f"{name} size overflows int64", name)
  if n * 8 > INT64_MAX:
    raise _Fault(f"{name} bytes overflow int64", name)
  return n


def _output_size(name, in_size, k, d, s, padding, before, after):
  """OutputSize: (out, pad_before) with geometry.cc's int64 checks."""
  kw = ("filter", "dilation", "stride", "padding", "out_backprop", "input")
  effective = 0
  if k > 0:
    effective = (k - 1) * d + 1
    if not _fits((k - 1) * d) or not _fits(effective):
      raise _Fault(f"effective filter {name} overflows", *kw)
  if padding == "SAME":
    out = -(-in_size // s)
    needed = 0
    if out > 0:
      needed = (out - 1) * s
      if not _fits(needed) or not _fits(needed + effective):
        raise _Fault(f"SAME {name} overflows", *kw)
      needed = needed + effective - in_size
    return out, (needed // 2 if needed > 0 else 0)
  span = in_size
  if padding == "EXPLICIT":
    if not _fits(span + before) or not _fits(span + before + after):
      raise _Fault(f"padded {name} overflows", *kw)
    span += before + after
  else:
    before = 0
  numerator = span - effective
  if not _fits(numerator + s):
    raise _Fault(f"{name} numerator overflows", *kw)
  out = _trunc_div(numerator + s, s)
  if out < 0:
    raise _Fault(f"negative output {name}", *kw)
  return out, before


def _python_stage(spec):
  """dwop's Python wrapper and TensorFlow's op wrapper (backend tf only)."""
  padding = spec["padding"]
  # dwop._ops.convert_padding: ValueError.
  if padding == "EXPLICIT":
    raise _Fault("padding EXPLICIT string", "padding")
  if isinstance(padding, (list, tuple)):
    for pair in padding:
      if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise _Fault("padding pair malformed", "padding")
    if len(padding) != 4:
      raise _Fault("padding list length", "padding")
  # The generated op wrapper and the OpDef (TypeError / InvalidArgument):
  # these are reported in an order that depends on eager vs graph mode, so
  # all of them are collected.
  faults = []
  if not isinstance(padding, (str, list, tuple)):
    faults.append(("padding type", ("padding",)))
  elif isinstance(padding, str) and padding not in ("SAME", "VALID"):
    faults.append(("padding value", ("padding",)))
  df = spec["data_format"]
  if df is not None and not isinstance(df, str):
    faults.append(("data_format type", ("data_format",)))
  elif df is not None and df not in LAYOUTS:
    faults.append(("data_format value", ("data_format",)))
  for name in ("strides", "dilations"):
    v = spec[name]
    if v is None and name == "dilations":
      continue  # the op's default, [1, 1, 1, 1]
    if not isinstance(v, (list, tuple)) or not all(_is_int(x) for x in v):
      faults.append((f"{name} type", (name,)))
  if spec["dtype"] not in FLOATS:
    faults.append(("T not allowed", ("'T'", "input", "out_backprop")))
  if spec["dy_dtype"] != spec["dtype"]:
    faults.append(("dtype mismatch", ("input #2", "out_backprop", "'T'")))
  if spec["sizes_dtype"] not in ("int32", "int64", "list"):
    faults.append(("Tsizes not allowed", ("Tsizes", "filter_sizes")))
  if faults:
    raise _Fault("; ".join(f[0] for f in faults),
                 *sorted({k for f in faults for k in f[1]}))


def _shape_fn_stage(spec):
  """The op's shape function on a constant filter_sizes (graph mode)."""
  fs = spec["filter_sizes"]
  if _rank(fs) != 1 or len(fs) != 4:
    raise _Fault("shape fn: filter_sizes not [4]", "filter_sizes")
  if any(v < -1 for v in fs):  # -1 means an unknown dimension in a shape
    # Reported by TensorFlow's shape refiner itself, see cc/tf/ops.cc.
    raise _Fault("shape fn: negative filter size", "filter_sizes",
                 "Invalid value in tensor used for shape")


def _cabi_stage(spec):
  """Resolve() in cc/c_api/dwop_c.cc, before ParseAttrs."""
  c = spec.get("cabi") or {}
  if c.get("null_problem"):
    raise _Fault("NULL problem", "problem")
  if "dtype_enum" in c:
    raise _Fault("dtype enum", "dtype")
  if spec["dtype"] not in FLOATS:
    raise _Fault("dtype enum", "dtype")
  order = ("strides", "explicit_paddings", "dilations", "padding",
           "data_format", "input_shape", "filter_sizes", "out_backprop_shape")
  # A NULL strides/dilations with a count of 0 reads as an empty list, which
  # ParseAttrs refuses later.
  bad = {c.get("null"), c.get("negative_count")}
  bad.update(name for name in ("padding", "data_format") if spec[name] is None)
  for name in order:
    if name in bad:
      raise _Fault(f"{name} NULL or negative count", name)


def _attrs_stage(spec, backend):
  """ParseAttrs (cc/kernels/common/geometry.cc), in its order."""
  df = _c_string(spec["data_format"], backend)
  df = "NHWC" if df is None else df
  if df not in LAYOUTS:
    raise _Fault("data_format value", "data_format")
  padding, explicit = attr_padding(spec, backend)
  if padding not in ("SAME", "VALID", "EXPLICIT"):
    raise _Fault("padding value", "padding")
  strides = [_as_int64(v) for v in _list_attr(spec["strides"])]
  dilations = spec["dilations"]
  if dilations is None and backend == "tf":
    dilations = [1, 1, 1, 1]  # the op's default
  dilations = [_as_int64(v) for v in _list_attr(dilations)]
  sh, sw = _window_attr("strides", strides, df)
  dh, dw = _window_attr("dilations", dilations, df)
  explicit = [_as_int64(v) for v in explicit]
  pads = (0, 0, 0, 0)
  if padding != "EXPLICIT":
    if explicit:
      raise _Fault("explicit_paddings without EXPLICIT", "explicit_paddings")
  else:
    if len(explicit) != 8:
      raise _Fault("explicit_paddings length", "explicit_paddings")
    if any(v < 0 for v in explicit):
      raise _Fault("explicit_paddings negative", "explicit_paddings")
    depth = _depth_dim(df)
    if explicit[0] or explicit[1] or explicit[2 * depth] or explicit[2 * depth
                                                                     + 1]:
      raise _Fault("explicit_paddings batch/depth", "explicit_paddings")
    row = _row_dim(df)
    pads = tuple(explicit[2 * row:2 * row + 4])
  return df, padding, (sh, sw), (dh, dw), pads


def _list_attr(v):
  return list(v) if isinstance(v, (list, tuple)) else []


def _c_string(v, backend):
  """A string attribute as the op sees it: C strings end at the first NUL."""
  if backend == "cabi" and isinstance(v, str):
    return v.split("\x00")[0]
  return v


def attr_padding(spec, backend):
  """(padding attr, explicit_paddings attr) as the op receives them."""
  padding = spec["padding"]
  if isinstance(padding, (list, tuple)):
    return "EXPLICIT", [x for pair in padding for x in _list_attr(pair)]
  if backend == "cabi" and padding is not None and not isinstance(padding,
                                                                  str):
    return str(padding), []
  return _c_string(padding, backend), []


def _geometry_stage(spec, attrs):
  """ComputeGeometry (cc/kernels/common/geometry.cc), in its order."""
  df, padding, (sh, sw), (dh, dw), (pt, pb, pl, pr) = attrs
  x, dy = spec["input"], spec["out_backprop"]
  fs = spec["filter_sizes"]
  fs_rank = _rank(fs)
  if len(x) != 4:
    raise _Fault("input rank", "input")
  if any(v < 0 for v in x):
    raise _Fault("input negative dim", "input")
  if fs_rank != 1:
    raise _Fault("filter_sizes rank", "filter_sizes")
  if len(fs) != 4:
    raise _Fault("filter_sizes length", "filter_sizes")
  if any(v < 0 for v in fs):
    raise _Fault("filter_sizes negative", "filter_sizes")
  if len(dy) != 4:
    raise _Fault("out_backprop rank", "out_backprop")
  if any(v < 0 for v in dy):
    raise _Fault("out_backprop negative dim", "out_backprop")
  _checked_size("input", x)
  _checked_size("out_backprop", dy)
  if _checked_size("filter_sizes", fs) > MAX_FILTER_ELEMENTS:
    raise _Fault("filter too large", "filter_sizes")
  row, depth = _row_dim(df), _depth_dim(df)
  if dy[0] != x[0]:
    raise _Fault("batch mismatch", "batch", "input", "out_backprop")
  if fs[2] != x[depth]:
    raise _Fault("in_depth mismatch", "filter_sizes", "in_depth")
  if not _fits(fs[2] * fs[3]):
    raise _Fault("in_depth * depth_multiplier overflows", "filter_sizes",
                 "depth_multiplier")
  if dy[depth] != fs[2] * fs[3]:
    raise _Fault("out_depth mismatch", "out_backprop")
  oh, pad_top = _output_size("rows", x[row], fs[0], dh, sh, padding, pt, pb)
  ow, pad_left = _output_size("cols", x[row + 1], fs[1], dw, sw, padding, pl,
                              pr)
  if dy[row] != oh:
    raise _Fault("out_backprop rows", "out_backprop")
  if dy[row + 1] != ow:
    raise _Fault("out_backprop cols", "out_backprop")
  # CheckFilterBytes, after ComputeGeometry.
  if _elements(fs) * DTYPE_BYTES.get(spec["dtype"], 0) > MAX_FILTER_BYTES:
    raise _Fault("filter gradient over 2 GiB", "filter_sizes")
  return dict(out_rows=oh, out_cols=ow, pad_top=pad_top, pad_left=pad_left,
              stride_rows=sh, stride_cols=sw, dilation_rows=dh,
              dilation_cols=dw)


def expect(spec, backend):
  """The model: what `spec` must do on `backend` ("tf" or "cabi")."""
  if backend == "cabi":  # the C ABI takes a flat int64 array
    spec = dict(spec, filter_sizes=_flatten(spec["filter_sizes"]))
  stages = []
  if backend == "tf":
    stages.append(("python", lambda: _python_stage(spec)))
    if spec.get("graph") == "const":
      stages.append(("shape_fn", lambda: _shape_fn_stage(spec)))
  else:
    stages.append(("cabi", lambda: _cabi_stage(spec)))
  attrs = []
  stages.append(("attrs", lambda: attrs.append(_attrs_stage(spec, backend))))
  geometry = []
  stages.append(("geometry",
                 lambda: geometry.append(_geometry_stage(spec, attrs[0]))))
  if backend == "cabi":
    stages.append(("buffers", lambda: _buffer_stage(spec)))
  for name, stage in stages:
    try:
      stage()
    except _Fault as f:
      return Expect(False, f.keywords, f.reason, stage=name)
  return Expect(True, geometry=geometry[0], stage="ok")


def _buffer_stage(spec):
  null = (spec.get("cabi") or {}).get("null_buffer")
  if null:
    shape = {"input": spec["input"], "out_backprop": spec["out_backprop"],
             "filter_backprop": spec["filter_sizes"]}[null]
    if _elements(shape) > 0:
      raise _Fault(f"{null} buffer NULL", null, "buffer is NULL")


def _elements(shape):
  return int(np.prod(shape, dtype=object)) if len(shape) else 1


# --------------------------------------------------------------------------
# Generators.


def _strategies():
  """The hypothesis strategies (imported lazily: the parent never needs it)."""
  from hypothesis import strategies as st  # pylint: disable=g-import-not-at-top

  huge = st.sampled_from(HUGE)
  hostile = st.sampled_from(HOSTILE)

  def per_dim(layout, rows, cols, batch_depth):
    return ([batch_depth, rows, cols, batch_depth] if layout == "NHWC" else
            [batch_depth, batch_depth, rows, cols])

  @st.composite
  def base(draw):
    """A well-formed problem (its output size may still be negative)."""
    layout = draw(st.sampled_from(LAYOUTS))
    dtype = draw(st.sampled_from(FLOATS))
    n = draw(st.integers(0, 3))
    c = draw(st.integers(0, 4))
    m = draw(st.integers(0, 3))
    h = draw(st.integers(0, 10))
    w = draw(st.integers(0, 10))
    kh = draw(st.integers(0, 5))
    kw = draw(st.integers(0, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad_kind = draw(st.sampled_from(["SAME", "VALID", "EXPLICIT"]))
    pads = [draw(st.integers(0, 4)) for _ in range(4)]
    scale = draw(st.sampled_from(["small"] * 5 + ["wide", "tall"] * 2 +
                                 ["huge_spatial", "huge_window",
                                  "huge_filter", "filter_limit"]))
    if scale == "wide":  # whole SIMD vectors of channels, and their tails
      c = draw(st.integers(5, 70))
      n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(
          st.integers(1, 7))
    elif scale == "tall":  # row bands and column tiles of the CPU kernel
      c, m = draw(st.integers(1, 2)), draw(st.integers(1, 2))
      h, w = draw(st.integers(8, 45)), draw(st.integers(8, 45))
      kh, kw = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    elif scale == "huge_spatial":  # an empty tensor with huge spatial dims
      h, w = draw(st.sampled_from([h, *HUGE[:5]])), draw(
          st.sampled_from([w, *HUGE[:5]]))
      n = 0 if draw(st.booleans()) else n
      c = 0 if n and draw(st.booleans()) else c
    elif scale == "huge_window":
      which = draw(st.sampled_from(["sh", "sw", "dh", "dw", "pads",
                                    "padded_stride"]))
      v = draw(huge)
      if which == "padded_stride":  # several outputs a huge stride apart
        pad_kind, big = "EXPLICIT", 2**draw(st.integers(31, 61))
        axis = draw(st.integers(0, 1))
        pads[2 * axis:2 * axis + 2] = [big, big]
        sh, sw = (big, sw) if axis == 0 else (sh, big)
      elif which == "pads":
        pads[draw(st.integers(0, 3))] = v
      else:
        sh, sw, dh, dw = [v if which == k else old for k, old in
                          (("sh", sh), ("sw", sw), ("dh", dh), ("dw", dw))]
    elif scale == "huge_filter":
      which = draw(st.integers(0, 3))
      v = draw(huge)
      kh, kw, c, m = [v if i == which else old for i, old in
                      enumerate((kh, kw, c, m))]
      if which == 2:
        n = 0  # an input with a huge depth must be empty
    elif scale == "filter_limit":  # around kMaxFilterBytes
      kh = 2**14
      kw = MAX_FILTER_BYTES // (kh * DTYPE_BYTES[dtype]) + draw(
          st.integers(-1, 1))
      c, m = 1, 1
      n = 0
    if pad_kind == "EXPLICIT":
      padding = [list(p) for p in per_dim(layout, pads[:2], pads[2:], (0, 0))]
    else:
      padding = pad_kind
    x = [n, h, w, c] if layout == "NHWC" else [n, c, h, w]
    spec = dict(
        dtype=dtype,
        input=x,
        filter_sizes=[kh, kw, c, m],
        strides=per_dim(layout, sh, sw, 1),
        padding=padding,
        data_format=layout,
        dilations=per_dim(layout, dh, dw, 1),
        sizes_dtype=draw(st.sampled_from(["int32", "int64", "list"])),
        graph=draw(st.sampled_from([None] * 16 + ["const", "arg"])),
        values=draw(st.sampled_from(["small"] * 9 + ["special"])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )
    spec["dy_dtype"] = spec["dtype"]
    spec["out_backprop"] = _true_out_backprop(spec, draw)
    return spec

  def mutate(draw, spec, backend):
    """One hostile change."""
    kinds = ["input_rank", "dy_rank", "input_dim", "dy_dim", "fs_value",
             "fs_len", "fs_rank", "fs_dtype", "strides", "dilations",
             "padding", "data_format", "dtype"]
    if backend == "cabi":
      kinds += ["cabi"] * 3
    kind = draw(st.sampled_from(kinds))
    s = spec
    if kind in ("input_rank", "dy_rank"):
      key = "input" if kind == "input_rank" else "out_backprop"
      rank = draw(st.sampled_from([0, 1, 2, 3, 5, 6]))
      dims = list(s[key]) + [1, 2]
      s[key] = dims[:rank]
    elif kind in ("input_dim", "dy_dim"):
      key = "input" if kind == "input_dim" else "out_backprop"
      if not s[key]:
        return kind
      i = draw(st.integers(0, len(s[key]) - 1))
      old = s[key][i]
      choices = [old + 1, max(0, old - 1), 0, *HUGE[:5]]
      if backend == "cabi":
        choices += [-1, INT64_MIN]
      s[key][i] = draw(st.sampled_from(choices))
    elif kind == "fs_value":
      if _rank(s["filter_sizes"]) != 1 or not s["filter_sizes"]:
        return kind
      i = draw(st.integers(0, len(s["filter_sizes"]) - 1))
      s["filter_sizes"][i] = draw(
          st.sampled_from([s["filter_sizes"][i] + 1, -1, *HOSTILE]))
    elif kind == "fs_len":
      n = draw(st.sampled_from([0, 1, 3, 5, 6, 20]))
      fs = s["filter_sizes"] if _rank(s["filter_sizes"]) == 1 else []
      s["filter_sizes"] = (fs + [1] * 20)[:n]
    elif kind == "fs_rank":
      fs = s["filter_sizes"]
      choices = [[fs], fs[0] if _rank(fs) == 1 and fs else 3]
      if _rank(fs) == 1 and len(fs) == 4:
        choices.append([fs[:2], fs[2:]])
      s["filter_sizes"] = draw(st.sampled_from(choices))
      if s["sizes_dtype"] == "list" and _rank(s["filter_sizes"]) == 0:
        s["sizes_dtype"] = "int32"
    elif kind == "fs_dtype":
      s["sizes_dtype"] = draw(st.sampled_from(["int16", "float32", "uint8"]))
    elif kind in ("strides", "dilations"):
      v = _list_attr(s[kind])
      how = draw(st.sampled_from(["len", "value", "batch", "depth", "junk"]))
      if how == "len":
        v = (v + [1, 1, 1])[:draw(st.sampled_from([0, 1, 2, 3, 5, 7]))]
      elif how == "value" and v:
        v[draw(st.integers(0, len(v) - 1))] = draw(hostile)
      elif how == "batch" and v:
        v[0] = draw(st.sampled_from([0, 2, -1, 2**40]))
      elif how == "depth" and len(v) == 4:
        v[_depth_dim(s["data_format"])] = draw(st.sampled_from([0, 2, 3]))
      elif how == "junk" and backend == "tf":
        v = draw(st.sampled_from([None, "1111", 1, [[1], 1, 1, 1]]))
      elif how == "junk":
        v = None
      s[kind] = v
    elif kind == "padding":
      how = draw(st.sampled_from(["string", "pairs", "value", "junk"]))
      if how == "string":
        s["padding"] = draw(st.sampled_from(
            ["EXPLICIT", "same", "", "FULL", "SAME ", "VALID\x00x", "\u00e9"]))
      elif how in ("pairs", "value"):
        pairs = s["padding"] if isinstance(s["padding"], list) else [
            [0, 0]] * 4
        pairs = [list(p) for p in pairs]
        i = draw(st.integers(0, len(pairs) - 1))
        sub = draw(st.sampled_from(["short", "long", "pair3", "pair1"]))
        if how == "value":
          if pairs[i]:
            pairs[i][draw(st.integers(0, len(pairs[i]) - 1))] = draw(hostile)
        elif sub == "short":
          pairs = pairs[:3]
        elif sub == "long":
          pairs = pairs + [[0, 0]]
        elif sub == "pair3":
          pairs[i] = [0, 0, 0]
        else:
          pairs[i] = [1]
        s["padding"] = pairs
      else:
        s["padding"] = None if backend == "cabi" else draw(
            st.sampled_from([None, 3, {"a": 1}]))
    elif kind == "data_format":
      s["data_format"] = draw(st.sampled_from(
          ["NCWH", "nhwc", "", "NHWC\x00", "NDHWC"] +
          ([None, 4] if backend == "tf" else [None])))
    elif kind == "dtype":
      how = draw(st.sampled_from(["junk", "mismatch"]))
      if how == "junk" or backend == "cabi":
        s["dtype"] = s["dy_dtype"] = draw(st.sampled_from(JUNK_DTYPES))
      else:
        s["dy_dtype"] = draw(st.sampled_from(
            [d for d in FLOATS + JUNK_DTYPES if d != s["dtype"]]))
    elif kind == "cabi":
      c = {}
      how = draw(st.sampled_from(["null", "negative_count", "dtype_enum",
                                  "null_buffer", "null_problem", "threads",
                                  "error_size"]))
      fields = ["strides", "explicit_paddings", "dilations", "padding",
                "data_format", "input_shape", "filter_sizes",
                "out_backprop_shape"]
      if how in ("null", "negative_count"):
        c[how] = draw(st.sampled_from(fields if how == "null" else [
            f for f in fields if f not in ("padding", "data_format")]))
      elif how == "dtype_enum":
        c[how] = draw(st.sampled_from([4, 5, -1, 2**31 - 1, -2**31]))
      elif how == "null_buffer":
        c[how] = draw(st.sampled_from(["input", "out_backprop",
                                       "filter_backprop"]))
      elif how == "null_problem":
        c[how] = True
      elif how == "threads":
        c[how] = draw(st.sampled_from([-1, 64, 1000, 2**31 - 1, -2**31]))
      else:
        c[how] = draw(st.sampled_from([0, 1, 2, 7]))
      s["cabi"] = c
    return kind

  @st.composite
  def specs(draw, backend):
    from hypothesis import assume  # pylint: disable=g-import-not-at-top
    spec = draw(base())
    mutations = draw(st.sampled_from([0] * 10 + [1] * 7 + [2] * 3))
    spec["mutations"] = [mutate(draw, spec, backend) for _ in range(mutations)]
    if backend == "cabi":  # filter_sizes is a flat int64 array there
      spec.pop("graph")
      spec["sizes_dtype"] = "int64"
      spec["filter_sizes"] = _flatten(spec["filter_sizes"])
    _fix_sizes_dtype(spec)
    assume(_all_int64(spec))
    assume(runnable(spec, backend))
    return spec

  return specs


def _true_out_backprop(spec, draw):
  """out_backprop's shape for the problem (a random one if it has none)."""
  layout = spec["data_format"]
  _, padding, (sh, sw), (dh, dw), pads = _attrs_stage(spec, "tf")
  x, fs = spec["input"], spec["filter_sizes"]
  row, depth = _row_dim(layout), _depth_dim(layout)
  try:
    oh, _ = _output_size("rows", x[row], fs[0], dh, sh, padding, pads[0],
                         pads[1])
    ow, _ = _output_size("cols", x[row + 1], fs[1], dw, sw, padding, pads[2],
                         pads[3])
  except _Fault:
    from hypothesis import strategies as st  # pylint: disable=g-import-not-at-top
    oh, ow = draw(st.integers(0, 3)), draw(st.integers(0, 3))
  dy = [x[0], 0, 0, 0]
  dy[depth] = fs[2] * fs[3]
  dy[row], dy[row + 1] = oh, ow
  return dy


def _fix_sizes_dtype(spec):
  """int32 filter_sizes cannot hold larger values: use int64 then."""
  values = [v for v in _flatten(spec["filter_sizes"]) if _is_int(v)]
  if spec["sizes_dtype"] == "int32" and any(abs(v) > INT32_MAX
                                            for v in values):
    spec["sizes_dtype"] = "int64"


def _all_int64(spec):
  """Every integer of the spec fits in int64 (what the op's types hold)."""
  keys = ("input", "out_backprop", "filter_sizes", "strides", "dilations",
          "padding")
  return all(_fits(v) for k in keys for v in _flatten(spec[k]) if _is_int(v))


def _tf_constructible(shape):
  """TensorFlow can build a tensor of this shape (prefix products fit)."""
  if any(d < 0 or d > INT64_MAX for d in shape) or len(shape) > 254:
    return False
  n = 1
  for d in shape:
    n *= d
    if n > INT64_MAX:
      return False
  return True


def runnable(spec, backend):
  """Whether the generated spec can be executed cheaply and safely."""
  ex = expect(spec, backend)
  if backend == "tf":
    for key, dtype in (("input", "dtype"), ("out_backprop", "dy_dtype")):
      shape = spec[key]
      if not _tf_constructible(shape):
        return False
      if _elements(shape) > MAX_ELEMENTS:
        return False
    if ex.ok and not _cheap_output(spec):
      return False
  else:
    for key in ("input", "out_backprop"):
      if len(spec[key]) > 8:
        return False
  return True


def _cheap_output(spec):
  """A valid problem whose output and oracle are small enough to compute."""
  out = _elements(spec["filter_sizes"])
  if out > MAX_OUTPUT:
    return False
  empty = _elements(spec["input"]) == 0 or _elements(spec["out_backprop"]) == 0
  return empty or spec["filter_sizes"][0] * spec["filter_sizes"][1] <= MAX_TAPS


# --------------------------------------------------------------------------
# Values and the oracle.


def values(spec):
  """(x, dy) as float64 arrays, exactly representable in every dtype."""
  rng = np.random.default_rng(spec["seed"])

  def draw(shape):  # an empty tensor may have dims NumPy cannot hold
    if _elements(shape) == 0:
      return np.zeros(0)
    return np.asarray(rng.integers(-8, 9, shape) / 8.0)

  x, dy = draw(spec["input"]), draw(spec["out_backprop"])
  if spec.get("values") == "special" and x.size:
    flat = x.reshape(-1)
    k = max(1, flat.size // 10)
    idx = rng.choice(flat.size, k, replace=False)
    flat[idx] = rng.choice([np.nan, np.inf, -np.inf], k)
  return x, dy


def oracle(spec, x, dy):
  """The float64 filter gradient (zeros when there is nothing to sum)."""
  fs = spec["filter_sizes"]
  if x.size == 0 or dy.size == 0 or _elements(fs) == 0:
    return np.zeros(fs, np.float64)
  with np.errstate(invalid="ignore"):
    return reference.depthwise_conv2d_backprop_filter(
        x, fs, dy, spec["strides"], spec["padding"],
        spec["data_format"] or "NHWC", spec["dilations"] or [1, 1, 1, 1])


def tolerance(spec, x, dy):
  """testing.tolerance for the spec; 0 (exact zeros) when nothing is summed."""
  if x.size == 0 or dy.size == 0:
    return 0.0
  ex = expect(spec, "tf" if "graph" in spec else "cabi")
  g = ex.geometry
  shim = types.SimpleNamespace(out_backprop_nhwc=(
      spec["input"][0], g["out_rows"], g["out_cols"], 0))
  finite_x = np.where(np.isfinite(x), x, 0.0)
  return testing.tolerance(spec["dtype"], finite_x, dy, shim)


class Mismatch(AssertionError):
  pass


def check_result(spec, result, x, dy):
  """result (float64) equals the oracle within tolerance; NaN/inf agree."""
  want = oracle(spec, x, dy)
  if result.shape != want.shape:
    raise Mismatch(f"shape {result.shape} != {want.shape}")
  nan_want, nan_got = np.isnan(want), np.isnan(result)
  if not np.array_equal(nan_want, nan_got):
    raise Mismatch(f"NaN at {np.argwhere(nan_want != nan_got)[:5].tolist()} "
                   "differs from the oracle")
  inf_want = np.isinf(want)
  if not np.array_equal(np.where(inf_want, want, 0),
                        np.where(np.isinf(result), result, 0)):
    raise Mismatch("infinities differ from the oracle")
  finite = ~(nan_want | inf_want)
  err = np.abs(result[finite] - want[finite]).max(initial=0.0)
  tol = tolerance(spec, x, dy)
  if not err <= tol:
    raise Mismatch(f"max error {err:.3g} > tolerance {tol:.3g}")


def check_error(spec, ex, kind, message):
  if ex.ok:
    raise Mismatch(f"valid call refused with {kind}: {message[:2000]}")
  if not any(k in message for k in ex.keywords):
    raise Mismatch(f"{kind} does not name any of {list(ex.keywords)} "
                   f"(expected fault: {ex.reason}): {message[:2000]}")


# --------------------------------------------------------------------------
# Backends.


class TfBackend:
  """Calls dwop.depthwise_conv2d_backprop_filter, eagerly or traced."""
  name = "tf"

  def __init__(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import dwop  # pylint: disable=g-import-not-at-top
    self.tf = tf
    self.op = dwop.depthwise_conv2d_backprop_filter
    self.allowed = (tf.errors.InvalidArgumentError, ValueError, TypeError)

  def _tensor(self, shape, dtype, data):
    tf = self.tf
    if _elements(shape) == 0:
      return tf.zeros(shape, dtype)
    t = tf.constant(data)
    if dtype == "bool":
      return tf.not_equal(t, 0)
    return tf.cast(t, dtype)

  def _sizes(self, spec):
    fs, dt = spec["filter_sizes"], spec["sizes_dtype"]
    if dt == "list":
      return fs
    # Through int64: a narrower junk dtype (int16, uint8) wraps silently.
    return self.tf.constant(np.array(fs, np.int64).astype(dt))

  def run(self, spec):
    tf = self.tf
    ex = expect(spec, "tf")
    x, dy = values(spec)
    xt = self._tensor(spec["input"], spec["dtype"], x)
    dyt = self._tensor(spec["out_backprop"], spec["dy_dtype"], dy)
    kwargs = dict(strides=spec["strides"], padding=spec["padding"],
                  dilations=spec["dilations"])
    if spec["data_format"] is not None:
      kwargs["data_format"] = spec["data_format"]
    try:
      if spec.get("graph") == "const":
        fn = tf.function(lambda a, b: self.op(a, self._sizes(spec), b,
                                              **kwargs), autograph=False)
        out = fn(xt, dyt)
      elif spec.get("graph") == "arg":
        fn = tf.function(lambda a, s, b: self.op(a, s, b, **kwargs),
                         autograph=False)
        sizes = self._sizes(spec)
        out = fn(xt, tf.constant(sizes) if isinstance(sizes, list) else sizes,
                 dyt)
      else:
        out = self.op(xt, self._sizes(spec), dyt, **kwargs)
    except self.allowed as e:
      check_error(spec, ex, type(e).__name__, str(e))
      return "error"
    if not ex.ok:
      raise Mismatch(f"accepted, but expected an error ({ex.reason})")
    if out.dtype.name != spec["dtype"]:
      raise Mismatch(f"output dtype {out.dtype.name}")
    if out.shape.as_list() != list(spec["filter_sizes"]):
      raise Mismatch(f"output shape {out.shape}")
    if _elements(spec["filter_sizes"]) == 0:
      return "ok"  # NumPy may not hold its shape ([2^62, 0, 1, 1])
    check_result(spec, np.asarray(out.numpy(), np.float64), x, dy)
    return "ok"


class CabiBackend:
  """Calls the C ABI through ctypes: dwop_validate, then the CPU kernel at
  several thread counts (bitwise equal), the reference kernel and the CUDA
  kernels emulated on the host, on buffers of exactly the right size (so that
  ASan sees any overrun)."""
  name = "cabi"
  STATUS_INVALID = 1

  def __init__(self):
    import cabi  # pylint: disable=g-import-not-at-top
    self.cabi = cabi
    self.lib = cabi.Library()
    # Library declares the exact prototypes (size_t, pointers). The CUDA
    # kernels' bodies run on the host (every build has the emulator, and
    # Library() needs it): the same indexing as on a GPU, so ASan checks it
    # here.
    self.f = self.lib.lib

  def _problem(self, spec):
    c = spec.get("cabi") or {}
    padding, explicit = attr_padding(spec, "cabi")
    p = self.lib.problem(
        spec["dtype"] if spec["dtype"] in FLOATS else "float32",
        list(spec["input"]), _flatten(spec["filter_sizes"]),
        spec["out_backprop"], _list_attr(spec["strides"]), "VALID", "NHWC",
        _list_attr(spec["dilations"]), explicit_paddings=explicit)
    p.padding = padding.encode() if padding is not None else None
    df = spec["data_format"]
    p.data_format = df.encode() if df is not None else None
    if "dtype_enum" in c:
      p.dtype = c["dtype_enum"]
    elif spec["dtype"] not in FLOATS:
      p.dtype = 4 + JUNK_DTYPES.index(spec["dtype"])
    counts = {"strides": "num_strides",
              "explicit_paddings": "num_explicit_paddings",
              "dilations": "num_dilations", "input_shape": "input_rank",
              "filter_sizes": "num_filter_sizes",
              "out_backprop_shape": "out_backprop_rank"}
    if c.get("null"):
      setattr(p, c["null"], None)
      if c["null"] in counts and getattr(p, counts[c["null"]]) == 0:
        setattr(p, counts[c["null"]], 1)
    if c.get("negative_count"):
      setattr(p, counts[c["negative_count"]], -1)
    return p

  @staticmethod
  def _buffer(dtype, data=None, elements=0, null=False):
    """A buffer of exactly `data` or of `elements` 0xFF bytes, or NULL."""
    if null:
      return None, None
    np_dtype = testing.numpy_dtype(dtype if dtype in FLOATS else "float32")
    if data is not None:
      arr = np.ascontiguousarray(data.reshape(-1).astype(np_dtype))
    else:
      arr = np.empty(elements, np_dtype)
      arr.view(np.uint8).fill(0xFF)  # NaN in every float format
    return arr, arr.ctypes.data_as(ctypes.c_void_p)

  def run(self, spec):
    ex = expect(spec, "cabi")
    c = spec.get("cabi") or {}
    problem = self._problem(spec)
    self.pref = None if c.get("null_problem") else ctypes.byref(problem)
    self.err_size = c.get("error_size", 1024)
    self.error = ctypes.create_string_buffer(max(1, self.err_size))
    geometry = self.cabi.Geometry()
    status = self.f.dwop_validate(self.pref, ctypes.byref(geometry),
                                  self.error, self.err_size)
    if ex.ok or ex.stage == "buffers":
      if status != 0:
        raise Mismatch(f"dwop_validate refused a valid problem: "
                       f"{self._message()}")
      for k, v in (ex.geometry or {}).items():
        if getattr(geometry, k) != v:
          raise Mismatch(f"geometry {k}={getattr(geometry, k)}, expected {v}")
    else:
      self._check_refusal(spec, ex, status)
    if not ex.ok:
      self._run_refused(spec, ex, c.get("null_buffer"))
      return "error"
    if not (_cheap_output(spec) and all(
        _elements(spec[k]) <= MAX_ELEMENTS for k in ("input",
                                                      "out_backprop"))):
      return "validated"  # too large to run here
    return self._run_kernels(spec, c)

  def _message(self):
    return self.error.value.decode(errors="replace")

  def _check_refusal(self, spec, ex, status):
    msg = self._message()
    if status != self.STATUS_INVALID:
      raise Mismatch(f"status {status} for an invalid problem "
                     f"({ex.reason}): {msg}")
    if self.err_size >= 1024:
      check_error(spec, ex, "DWOP_INVALID_ARGUMENT", msg)
    elif len(self.error.value) > max(0, self.err_size - 1):
      raise Mismatch(f"message of {len(self.error.value)} bytes in a "
                     f"{self.err_size}-byte buffer")

  def _run_refused(self, spec, ex, null):
    """Both kernels refuse without touching the (tiny, or NULL) buffers."""
    x, _ = self._buffer("float64", np.full(4, np.nan), null=null == "input")
    dy, _ = self._buffer("float64", np.full(4, np.nan),
                         null=null == "out_backprop")
    out, _ = self._buffer("float64", np.full(4, -7.0),
                          null=null == "filter_backprop")
    ptr = lambda a: None if a is None else a.ctypes.data_as(ctypes.c_void_p)
    for call in ("cpu", "reference", "cuda_emulated"):
      self.error.value = b""
      if call == "cpu":
        status = self.f.dwop_filter_grad_cpu(self.pref, ptr(x), ptr(dy),
                                             ptr(out), 2, self.error,
                                             self.err_size)
      elif call == "reference":
        status = self.f.dwop_filter_grad_reference(self.pref, ptr(x), ptr(dy),
                                                   ptr(out), self.error,
                                                   self.err_size)
      else:
        status = self.f.dwop_filter_grad_cuda_emulated(
            self.pref, ptr(x), ptr(dy), ptr(out),
            self.cabi.CUDA_PATHS["auto"], 2, 48 << 10, self.error,
            self.err_size)
      self._check_refusal(spec, ex, status)
      if out is not None and not np.all(out == -7.0):
        raise Mismatch(f"dwop_filter_grad_{call} wrote its output on error")

  def _run_emulated(self, spec, xp, dp, n_out, null):
    """The CUDA paths, emulated: auto, register and tiled."""
    results = []
    sm_count, smem = _emulated_devices(spec["seed"])
    # An empty problem needs no indexing: every path must take it.
    empty = 0 in (n_out, _elements(spec["input"]),
                  _elements(spec["out_backprop"]))
    for name, path in self.cabi.CUDA_PATHS.items():
      oa, op = self._buffer(spec["dtype"], elements=n_out,
                            null=null == "filter_backprop")
      status = self.f.dwop_filter_grad_cuda_emulated(
          self.pref, xp, dp, op, path, sm_count, smem, self.error,
          self.err_size)
      who = f"cuda_emulated {name} ({sm_count} SMs)"
      # A forced path may refuse a problem it cannot run (the tiled one
      # needs unit column stride and dilation, and tiles that fit the
      # device's shared memory); the op's own choice only one beyond the
      # CUDA kernels' 32-bit indexing limit (cuda_plan.h). Never an empty one.
      if status == self.STATUS_INVALID and not empty and (
          name != "auto" or "with 32-bit integers" in self._message()):
        continue
      if status != 0:
        raise Mismatch(f"{who} failed: {self._message()}")
      if oa is None:
        oa = np.zeros(0, testing.numpy_dtype(spec["dtype"]))
      results.append((who, oa))
    return results

  def _run_kernels(self, spec, c):
    # The oracle reads the strings as C does (up to the first NUL).
    spec = dict(spec, padding=_c_string(spec["padding"], "cabi"),
                data_format=_c_string(spec["data_format"], "cabi"))
    dtype = spec["dtype"]
    x, dy = values(spec)
    null = c.get("null_buffer")  # only on an empty tensor here
    xa, xp = self._buffer(dtype, x, null=null == "input")
    da, dp = self._buffer(dtype, dy, null=null == "out_backprop")
    self._alive = (xa, da)
    n_out = _elements(spec["filter_sizes"])
    results = []
    for t in (1, 3, c.get("threads", 0), None):
      oa, op = self._buffer(dtype, elements=n_out,
                            null=null == "filter_backprop")
      if t is None:
        status = self.f.dwop_filter_grad_reference(self.pref, xp, dp, op,
                                                   self.error, self.err_size)
      else:
        status = self.f.dwop_filter_grad_cpu(self.pref, xp, dp, op, t,
                                             self.error, self.err_size)
      name = "reference" if t is None else f"cpu (threads={t})"
      if status != 0:
        raise Mismatch(f"{name} failed: {self._message()}")
      if oa is None:
        oa = np.zeros(0, testing.numpy_dtype(dtype))
      results.append((name, oa))
    results += self._run_emulated(spec, xp, dp, n_out, null)
    cpu = [r for r in results if r[0].startswith("cpu")]
    for name, oa in cpu[1:]:
      if oa.tobytes() != cpu[0][1].tobytes():
        raise Mismatch(f"{name} differs bitwise from 1 thread")
    if n_out == 0:
      return "ok"  # NumPy may not hold its shape ([2^62, 0, 1, 1])
    for name, oa in results:
      try:
        check_result(spec, oa.astype(np.float64).reshape(
            spec["filter_sizes"]), x, dy)
      except Mismatch as e:
        raise Mismatch(f"{name}: {e}") from None
    return "ok"


class _SelfTest:
  """Wraps a backend to misbehave on float64 specs, so that tests can check
  that the harness reports crashes, hangs and wrong answers (environment
  variable DWOP_FUZZ_SELFTEST = abort, hang or wrong)."""

  def __init__(self, backend, mode):
    self.backend, self.mode, self.name = backend, mode, backend.name

  def run(self, spec):
    if spec["dtype"] == "float64":
      if self.mode == "abort":
        os.abort()
      if self.mode == "hang":
        time.sleep(3600)
      if self.mode == "wrong":
        raise Mismatch("self-test: a wrong answer")
    return self.backend.run(spec)


def _emulated_devices(seed):
  """(sm_count, shared memory per block) of a small and a large GPU."""
  return [(2, 48 << 10), (132, 227 << 10)][seed % 2]


def backend_named(name):
  backend = TfBackend() if name == "tf" else CabiBackend()
  mode = os.environ.get("DWOP_FUZZ_SELFTEST")
  return _SelfTest(backend, mode) if mode else backend


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
  print(RESULT_TAG + json.dumps(dict(stats)), flush=True)
  return 1 if failures else 0


# --------------------------------------------------------------------------
# The parent.


def _child_cmd(args):
  return [sys.executable, os.path.abspath(__file__)] + args


def _env(extra=None):
  env = dict(os.environ)
  env.update(extra or {})
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  env["PYTHONPATH"] = os.pathsep.join([ROOT, _HERE, env.get("PYTHONPATH", "")])
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
  log(f"[{backend} seed {chunk_seed}] CRASH: child {_describe(rc)} on "
      f"{'this spec (reproduced alone)' if alone else 'a sequence of ' + str(len(specs)) + ' specs'}:\n"
      f"  {json.dumps(suspect)}\n  reproduce: python python/fuzz.py "
      f"--backend {backend} --replay {path}\n  {_tail(err2 if alone else err, 2000)}")
  return dict(kind="crash", spec=suspect, detail=_tail(err), reproducer=path,
              alone=alone)


# --------------------------------------------------------------------------
# Export for the sanitizer driver (tests/sanitize/replay.cc).


def _hex(s):
  return "-" if s is None else "x" + s.encode().hex()


def _ints(v):
  return ",".join(str(int(x)) for x in v) if v else "."


def export_line(spec):
  """One line of the sanitizer driver's format (see replay.cc)."""
  c = spec.get("cabi") or {}
  padding, explicit = attr_padding(spec, "cabi")
  dtype = c.get("dtype_enum", FLOATS.index(spec["dtype"])
                if spec["dtype"] in FLOATS else 4)
  fields = dict(
      dtype=dtype, input=_ints(_flatten(spec["input"]) if spec["input"] else
                               []),
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
      valid=int(expect(spec, "cabi").ok))
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


# --------------------------------------------------------------------------


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
  if s["cases"] < args.cases and report.ok:
    print(f"  only {s['cases']} of {args.cases} cases ran")
    return 1
  return 0 if report.ok else 1


if __name__ == "__main__":
  sys.exit(main())
