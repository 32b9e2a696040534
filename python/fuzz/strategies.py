"""The hypothesis strategies that generate specs (see fuzz/__init__.py).

A spec is a JSON-serialisable dict: a well-formed problem (`base`), then up
to two hostile mutations (`mutate`); `runnable` keeps what can run cheaply.
hypothesis is imported lazily: the parent process never needs it.
"""

from fuzz.model import (DTYPE_BYTES, FLOATS, HOSTILE, HUGE, INT32_MAX,
                        INT64_MAX, INT64_MIN, JUNK_DTYPES, LAYOUTS,
                        MAX_ELEMENTS, MAX_FILTER_BYTES, MAX_OUTPUT, MAX_TAPS,
                        _attrs_stage, _depth_dim, _elements, _Fault, _fits,
                        _flatten, _is_int, _list_attr, _output_size, _rank,
                        _row_dim, OP_BUFFERS, OPS, expect, op_of)




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
        c[how] = draw(st.sampled_from(OP_BUFFERS[op_of(s)]))
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
    # The op, per case: the C ABI runs all three; TensorFlow the filter
    # gradient (see fuzz/__init__.py). For the forward and the input gradient
    # the spec's fields keep their meaning as shapes: input (the input
    # gradient's input_sizes), filter_sizes (the filter's shape) and
    # out_backprop (the forward's output shape as the C ABI's
    # out_backprop_shape: [] leaves it to be computed).
    # TensorFlow runs the new ops eagerly only (graph mode adds their shape
    # functions, which this model does not restate).
    op = draw(st.sampled_from(OPS))
    if op != "filter_grad":
      spec["op"] = op
      if op == "forward" and draw(st.integers(0, 2)) == 0:
        spec["out_backprop"] = []
      if backend == "tf":
        spec["graph"] = None
        if op == "input_grad" and spec["sizes_dtype"] == "list":
          spec["sizes_dtype"] = "int64"
    mutations = draw(st.sampled_from([0] * 10 + [1] * 7 + [2] * 3))
    spec["mutations"] = [mutate(draw, spec, backend) for _ in range(mutations)]
    if op != "filter_grad":  # a shape: no nested filter_sizes
      spec["filter_sizes"] = _flatten(spec["filter_sizes"])
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
  sizes = spec["input"] if op_of(spec) == "input_grad" else spec[
      "filter_sizes"]
  values = [v for v in _flatten(sizes) if _is_int(v)]
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
    tensors = {"filter_grad": ("input", "out_backprop"),
               "forward": ("input", "filter_sizes"),
               "input_grad": ("filter_sizes", "out_backprop")}[op_of(spec)]
    if op_of(spec) != "filter_grad":
      if not all(_is_int(v) for v in _flatten(spec["filter_sizes"]) +
                 _flatten(spec["input"])):
        return False
      if ex.ok and not cheap_new(spec, ex):
        return False
    for key in tensors:
      shape = _flatten(spec[key])
      if not _tf_constructible(shape):
        return False
      if _elements(shape) > MAX_ELEMENTS:
        return False
    if ex.ok and op_of(spec) == "filter_grad" and not _cheap_output(spec):
      return False
  else:
    for key in ("input", "out_backprop"):
      if len(spec[key]) > 8:
        return False
    if op_of(spec) != "filter_grad" and ex.ok and not cheap_new(spec, ex):
      return False  # no validation-only entry for these ops: must run
  return True


def new_op_shapes(spec, ex):
  """{buffer name: shape} of a valid forward or input-gradient spec."""
  fs = _flatten(spec["filter_sizes"])
  if op_of(spec) == "forward":
    return {"input": spec["input"], "filter": fs,
            "output": ex.geometry["output_shape"]}
  return {"filter": fs, "out_backprop": spec["out_backprop"],
          "in_backprop": spec["input"]}


def nothing_to_sum(spec, ex):
  """geometry.h's NothingToSum: an empty input, filter or output."""
  fs = _flatten(spec["filter_sizes"])
  out = (ex.geometry["output_shape"] if op_of(spec) == "forward" else
         spec["out_backprop"])
  return 0 in (_elements(spec["input"]), _elements(fs), _elements(out))


def cheap_new(spec, ex):
  """A valid forward / input gradient whose buffers and oracle are small."""
  if any(_elements(shape) > MAX_ELEMENTS
         for shape in new_op_shapes(spec, ex).values()):
    return False
  fs = _flatten(spec["filter_sizes"])
  return nothing_to_sum(spec, ex) or fs[0] * fs[1] <= MAX_TAPS


def _cheap_output(spec):
  """A valid problem whose output and oracle are small enough to compute."""
  out = _elements(spec["filter_sizes"])
  if out > MAX_OUTPUT:
    return False
  empty = _elements(spec["input"]) == 0 or _elements(spec["out_backprop"]) == 0
  return empty or spec["filter_sizes"][0] * spec["filter_sizes"][1] <= MAX_TAPS
