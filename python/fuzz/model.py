"""The model of the contract: what a generated call must do.

`expect` decides, with exact Python integers (int64 overflow included),
whether a spec must succeed (and with which geometry) or fail naming one of
its faulty arguments, stage by stage in the order dwop checks them. Where the
arithmetic is the oracle's (output sizes, padding), it calls
python/reference.py; the int64 overflow checks of
cc/kernels/common/geometry.cc are modelled here on purpose, independently of
the C++, to cross-check it.
"""

import dataclasses

import numpy as np

import reference


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
  """OutputSize: (out, pad_before), python/reference.py's arithmetic behind
  geometry.cc's int64 overflow checks (which only this model restates)."""
  kw = ("filter", "dilation", "stride", "padding", "out_backprop", "input")
  effective = (k - 1) * d + 1 if k > 0 else 0
  if k > 0 and (not _fits((k - 1) * d) or not _fits(effective)):
    raise _Fault(f"effective filter {name} overflows", *kw)
  if padding == "SAME":
    out = -(-in_size // s)
    if out > 0 and (not _fits((out - 1) * s) or
                    not _fits((out - 1) * s + effective)):
      raise _Fault(f"SAME {name} overflows", *kw)
    pads = "SAME"
  elif padding == "EXPLICIT":
    if not _fits(in_size + before) or not _fits(in_size + before + after):
      raise _Fault(f"padded {name} overflows", *kw)
    pads = (before, after)
  else:
    before, after, pads = 0, 0, "VALID"
  if padding != "SAME" and not _fits(in_size + before + after - effective +
                                     s):
    raise _Fault(f"{name} numerator overflows", *kw)
  out, pad_before = reference.output_size(in_size, k, s, d, pads)
  if out is None:
    raise _Fault(f"negative output {name}", *kw)
  return out, pad_before


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


# The three ops a spec may call (its "op"; absent: the filter gradient).
OPS = ("filter_grad", "forward", "input_grad")
# Each op's buffers, in the C ABI's argument order: two inputs, the output.
OP_BUFFERS = {"filter_grad": ("input", "out_backprop", "filter_backprop"),
              "forward": ("input", "filter", "output"),
              "input_grad": ("filter", "out_backprop", "in_backprop")}


def op_of(spec):
  return spec.get("op", "filter_grad")


def _rank4(name, shape, *keywords):
  """CheckRank4: 4 dimensions, none negative."""
  if len(shape) != 4:
    raise _Fault(f"{name} rank {len(shape)}", name, *keywords)
  if any(v < 0 for v in shape):
    raise _Fault(f"{name} negative dim", name, *keywords)


def _resolve_new(spec, attrs, input_name, dy):
  """Resolve() of geometry.cc for the forward (dy None: computed) and the
  input gradient (input_name "input_sizes"), after the rank checks."""
  df, padding, (sh, sw), (dh, dw), (pt, pb, pl, pr) = attrs
  x, f = spec["input"], _flatten(spec["filter_sizes"])
  _checked_size(input_name, x)
  if dy is not None:
    _checked_size("out_backprop", dy)
  if _checked_size("filter", f) > MAX_FILTER_ELEMENTS:
    raise _Fault("filter too large", "filter")
  row, depth = _row_dim(df), _depth_dim(df)
  if dy is not None and dy[0] != x[0]:
    raise _Fault("batch mismatch", "batch", input_name, "out_backprop")
  if f[2] != x[depth]:
    raise _Fault("in_depth mismatch", "filter", "in_depth")
  if not _fits(f[2] * f[3]):
    raise _Fault("in_depth * depth_multiplier overflows", "filter",
                 "depth_multiplier")
  if dy is not None and dy[depth] != f[2] * f[3]:
    raise _Fault("out_depth mismatch", "out_backprop")
  oh, pad_top = _output_size("rows", x[row], f[0], dh, sh, padding, pt, pb)
  ow, pad_left = _output_size("cols", x[row + 1], f[1], dw, sw, padding, pl,
                              pr)
  if dy is not None:
    if dy[row] != oh:
      raise _Fault("out_backprop rows", "out_backprop")
    if dy[row + 1] != ow:
      raise _Fault("out_backprop cols", "out_backprop")
  out = [x[0], 0, 0, 0]
  out[row], out[row + 1], out[depth] = oh, ow, f[2] * f[3]
  return dict(out_rows=oh, out_cols=ow, pad_top=pad_top, pad_left=pad_left,
              stride_rows=sh, stride_cols=sw, dilation_rows=dh,
              dilation_cols=dw, output_shape=out)


def forward_output_shape(spec, backend="cabi"):
  """The forward's output shape (data_format order), or None if invalid."""
  ex = expect(dict(spec, op="forward", out_backprop=[]), backend)
  return ex.geometry["output_shape"] if ex.ok else None


def _forward_geometry_stage(spec, attrs):
  """ComputeForwardGeometry, then the C ABI's out_backprop_shape check."""
  _rank4("input", spec["input"])
  _rank4("filter", _flatten(spec["filter_sizes"]))
  g = _resolve_new(spec, attrs, "input", None)
  # Resolve's CheckedSize of the computed output.
  _checked_size("output", g["output_shape"])
  dy = spec["out_backprop"]
  # The C ABI's out_backprop_shape (TensorFlow's op has no such input).
  if spec.get("backend") == "cabi" and dy and list(dy) != g["output_shape"]:
    raise _Fault("out_backprop_shape is not the output's",
                 "out_backprop_shape")
  return g


def _input_grad_geometry_stage(spec, attrs):
  """ComputeInputGradGeometry: input_sizes (the C ABI's input_shape, a
  1-D tensor there by construction), filter, out_backprop."""
  x = spec["input"]
  if len(x) != 4:
    raise _Fault(f"input_sizes length {len(x)}", "input_sizes")
  if any(v < 0 for v in x):
    raise _Fault("input_sizes negative", "input_sizes")
  _rank4("filter", _flatten(spec["filter_sizes"]))
  _rank4("out_backprop", spec["out_backprop"])
  return _resolve_new(spec, attrs, "input_sizes", spec["out_backprop"])


def expect(spec, backend):
  """The model: what `spec` must do on `backend` ("tf" or "cabi")."""
  if backend == "cabi":  # the C ABI takes a flat int64 array
    spec = dict(spec, filter_sizes=_flatten(spec["filter_sizes"]))
  op = op_of(spec)
  if op != "filter_grad":
    return _expect_new(spec, backend, op)
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
  return _run_stages(stages, geometry)


def _run_stages(stages, geometry):
  """Runs (name, stage) in order: the first _Fault is the verdict, else valid
  with the geometry the geometry stage appended."""
  for name, stage in stages:
    try:
      stage()
    except _Fault as f:
      return Expect(False, f.keywords, f.reason, stage=name)
  return Expect(True, geometry=geometry[0], stage="ok")


def _expect_new(spec, backend, op):
  """expect() for the forward and the input gradient."""
  stages = []
  if backend == "tf":
    stages.append(("python", lambda: _python_stage_new(spec, op)))
  else:
    stages.append(("cabi", lambda: _cabi_stage(spec)))
  attrs = []
  stages.append(("attrs", lambda: attrs.append(_attrs_stage(spec, backend))))
  geometry = []
  stage_fn = (_forward_geometry_stage if op == "forward" else
              _input_grad_geometry_stage)
  stages.append(("geometry", lambda: geometry.append(
      stage_fn(dict(spec, backend=backend), attrs[0]))))
  if backend == "cabi":
    stages.append(("buffers",
                   lambda: _buffer_stage_new(spec, op, geometry[0])))
  return _run_stages(stages, geometry)


def _python_stage_new(spec, op):
  """The Python wrapper and TensorFlow's op wrapper of the new ops: those of
  the filter gradient, with the forward's filter (input #1, dtype
  `dy_dtype`) or the input gradient's input_sizes (dtype `sizes_dtype`)."""
  try:
    _python_stage(dict(spec, sizes_dtype=spec["sizes_dtype"] if op ==
                       "input_grad" else "list"))
  except _Fault as f:
    extra = ("input #1", "filter") if op == "forward" else (
        "input_sizes", "input #1", "filter")
    raise _Fault(f.reason, *f.keywords, *extra) from None


def _buffer_stage_new(spec, op, geometry):
  null = (spec.get("cabi") or {}).get("null_buffer")
  if not null:
    return
  shapes = {"input": spec["input"], "in_backprop": spec["input"],
            "filter": _flatten(spec["filter_sizes"]),
            "out_backprop": spec["out_backprop"],
            "output": geometry["output_shape"]}
  if null in OP_BUFFERS[op] and _elements(shapes[null]) > 0:
    raise _Fault(f"{null} buffer NULL", null, "buffer is NULL")


def _buffer_stage(spec):
  null = (spec.get("cabi") or {}).get("null_buffer")
  if null:
    shape = {"input": spec["input"], "out_backprop": spec["out_backprop"],
             "filter_backprop": spec["filter_sizes"]}[null]
    if _elements(shape) > 0:
      raise _Fault(f"{null} buffer NULL", null, "buffer is NULL")


def _elements(shape):
  return int(np.prod(shape, dtype=object)) if len(shape) else 1
