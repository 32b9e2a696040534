"""The benchmark's pure functions: work model, per-case rows, summary, tables.

No TensorFlow, no dwop, no timing: python/bench.py measures, this module
turns measurements into the results (and tests/bench_test.py checks it).

Performance model (DESIGN.md section 4), the same for the three ops:
  useful flops  2*N*C*M * (sum over output rows of the filter rows whose input
                row is inside the image) * (the same over columns): taps over
                padding cost nothing;
  bytes         size(T) * (|first input| + |second input| + |output|), which
                for all three ops is |input| + |filter| + |output of forward|;
  roofline      max(bytes / bandwidth, flops / peak), with the bandwidth (a
                large copy) and the peak (a large float32 matmul on all cores)
                measured on the running machine.
"""

import math

import numpy as np

import reference

OPS = ("forward", "input_grad", "filter_grad")
OP_TITLES = {"forward": "forward", "input_grad": "input gradient",
             "filter_grad": "filter gradient", "total": "layer total"}
# TensorFlow's two settings, each timed in its own worker process.
TF_SETTINGS = ("tf_onednn", "tf_native")
# A result whose max |error| against the float64 oracle, relative to the
# oracle's max |value|, exceeds this is wrong.
WRONG_REL_ERROR = 1e-2
# Cases with at least this many useful flops count as "large" for the thread
# scaling figure (two threads should then be close to twice as fast as one).
LARGE_FLOPS = 2.5e8
# "Large filters" of the summary: both filter dimensions at least this.
LARGE_FILTER = 7

_DTYPE_SIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def dtype_size(dtype):
  return _DTYPE_SIZE[dtype]


def _taps_inside(in_size, filter_size, stride, dilation, padding):
  """Sum over output positions of the filter taps whose input is inside."""
  out, before = reference.output_size(in_size, filter_size, stride, dilation,
                                      padding)
  if not out or filter_size <= 0 or in_size <= 0:
    return 0
  pos = (np.arange(out)[:, None] * stride +
         np.arange(filter_size)[None, :] * dilation - before)
  return int(np.count_nonzero((pos >= 0) & (pos < in_size)))


def _padding_per_dim(case):
  if isinstance(case.padding, str):
    return case.padding, case.padding
  return tuple(case.padding[0]), tuple(case.padding[1])


def useful_flops(case):
  """Multiply-adds (x2) whose input is inside the image, for any of the ops."""
  n, h, w, c = case.input
  kh, kw, _, m = case.filter
  pad_rows, pad_cols = _padding_per_dim(case)
  rows = _taps_inside(h, kh, case.strides[0], case.dilations[0], pad_rows)
  cols = _taps_inside(w, kw, case.strides[1], case.dilations[1], pad_cols)
  return 2 * n * c * m * rows * cols


def nominal_flops(case):
  """2*N*OH*OW*C*M*KH*KW: every tap, padding included."""
  n, oh, ow, depth = case.out_backprop_nhwc
  return 2 * n * oh * ow * depth * case.filter[0] * case.filter[1]


def op_bytes(case):
  """Bytes each op must at least move: its two inputs and its output."""
  elements = (math.prod(case.input) + math.prod(case.filter) +
              math.prod(case.out_backprop_nhwc))
  return dtype_size(case.dtype) * int(elements)


def roofline_ms(flops, nbytes, bandwidth, peak):
  return 1e3 * max(nbytes / bandwidth, flops / peak)


def geomean(values):
  values = [v for v in values if v]
  return float(np.exp(np.mean(np.log(values)))) if values else None


def is_wrong(entry):
  return entry.get("max_rel_error", 0) > WRONG_REL_ERROR


# --------------------------------------------------------------------------
# Rows.


def _op_row(impls, roof_ms):
  """One op's figures from its implementations' measurements."""
  dwop_ms = impls.get("dwop", {}).get("ms")
  tf = {k: impls[k]["ms"] for k in TF_SETTINGS if "ms" in impls.get(k, {})}
  best = min(tf, key=tf.get) if tf else None
  one = impls.get("dwop_1t", {}).get("ms")
  two = impls.get("dwop_2t", {}).get("ms")
  return {
      "impls": impls,
      "dwop_ms": dwop_ms,
      "best_tf": best,
      "best_tf_ms": tf[best] if best else None,
      "speedup": tf[best] / dwop_ms if best and dwop_ms else None,
      "roofline_ms": roof_ms,
      "roofline_ratio": dwop_ms / roof_ms if dwop_ms and roof_ms else None,
      "thread_scaling": one / two if one and two else None,
  }


def _total_row(op_rows, roof_ms):
  """The sum of the ops. Best TensorFlow: the faster setting of the sums (one
  training process has one setting), over settings that ran every op."""
  rows = list(op_rows.values())
  dwop = [r["dwop_ms"] for r in rows]
  dwop_ms = sum(dwop) if rows and all(dwop) else None
  impls = {}
  for setting in TF_SETTINGS:
    entries = [r["impls"].get(setting, {}) for r in rows]
    if rows and all("ms" in e for e in entries):
      impls[setting] = {"ms": sum(e["ms"] for e in entries),
                        "max_rel_error": max(e["max_rel_error"]
                                             for e in entries)}
    else:
      impls[setting] = {"error": "not every op ran"}
  if dwop_ms:
    impls["dwop"] = {"ms": dwop_ms, "max_rel_error": max(
        r["impls"]["dwop"]["max_rel_error"] for r in rows)}
  for threads in ("dwop_1t", "dwop_2t"):
    times = [r["impls"].get(threads, {}).get("ms") for r in rows]
    if rows and all(times):
      impls[threads] = {"ms": sum(times)}
  return _op_row(impls, roof_ms)


def case_row(case, stats, bandwidth, peak, extra_mb=None):
  """The results of one case. stats[op][impl]: {"ms", "max_rel_error", ...}
  or {"error"}; impl in dwop, tf_onednn, tf_native, dwop_1t, dwop_2t."""
  flops, nbytes = useful_flops(case), op_bytes(case)
  roof = roofline_ms(flops, nbytes, bandwidth, peak)
  ops = {op: _op_row(stats[op], roof) for op in OPS if op in stats}
  row = {"case": case.name, "network": case.network, "dtype": case.dtype,
         "data_format": case.data_format, "filter": list(case.filter),
         "flops": flops, "nominal_flops": nominal_flops(case),
         "bytes": nbytes, "roofline_ms": roof, "ops": ops,
         "extra_mb": extra_mb}
  if len(ops) == len(OPS):  # the layer total needs all three ops
    row["ops"]["total"] = _total_row(ops, roof * len(ops))
  return row


# --------------------------------------------------------------------------
# Summary.


def _median(values):
  return float(np.median(values)) if values else None


def op_summary(rows, op):
  """The issue's figures for one op (or "total") over the measured rows."""
  entries = [(r, r["ops"][op]) for r in rows if op in r["ops"]]
  speedups = [(e["speedup"], r["case"]) for r, e in entries if e["speedup"]]
  large = [e["speedup"] for r, e in entries if e["speedup"] and
           min(r["filter"][:2]) >= LARGE_FILTER]
  ratios = [(e["roofline_ratio"], r["case"]) for r, e in entries
            if e["roofline_ratio"]]
  scaling = [e["thread_scaling"] for r, e in entries
             if e["thread_scaling"] and r["flops"] >= LARGE_FLOPS]
  errors = [e["impls"]["dwop"]["max_rel_error"] for _, e in entries
            if "max_rel_error" in e["impls"].get("dwop", {})]
  worst_speedup = min(speedups, default=(None, None))
  worst_ratio = max(ratios, default=(None, None))
  return {
      "geomean_speedup": geomean([s for s, _ in speedups]),
      "geomean_speedup_k7_plus": geomean(large),
      "min_speedup": worst_speedup[0],
      "min_speedup_case": worst_speedup[1],
      "median_roofline_ratio": _median([v for v, _ in ratios]),
      "worst_roofline_ratio": worst_ratio[0],
      "worst_roofline_case": worst_ratio[1],
      "median_2t_1t_large": _median(scaling),
      "min_2t_1t_large": min(scaling, default=None),
      "max_dwop_rel_error": max(errors, default=None),
      "cases_timed": len(speedups),
  }


def summary(rows):
  ops = [op for op in OPS + ("total",) if any(op in r["ops"] for r in rows)]
  result = {op: op_summary(rows, op) for op in ops}
  if "filter_grad" in result:
    result["filter_grad_geomean_speedup"] = (
        result["filter_grad"]["geomean_speedup"])
  result["max_dwop_extra_mb"] = max(
      (r["extra_mb"] for r in rows if r.get("extra_mb") is not None),
      default=None)
  return result


def dwop_failures(rows):
  """(case, op, why) for every dwop result that is wrong or missing."""
  bad = []
  for r in rows:
    for op in OPS:
      entry = r["ops"].get(op, {}).get("impls", {}).get("dwop")
      if entry is None:
        continue
      if "error" in entry:
        bad.append((r["case"], op, entry["error"]))
      elif is_wrong(entry):
        bad.append((r["case"], op,
                    f"max relative error {entry['max_rel_error']:.2e}"))
  return bad


# --------------------------------------------------------------------------
# Rendering.


def fmt(value, spec):
  return format(value, spec) if value is not None else "-"


def ms_cell(entry, wrong_mark, error_text):
  """An implementation's time, marked when its result is wrong."""
  if "ms" not in entry:
    return error_text
  return f"{entry['ms']:.2f}" + (wrong_mark if is_wrong(entry) else "")


def _cells(op_row, wrong_mark, error_text):
  impls = op_row["impls"]
  dwop_err = impls.get("dwop", {}).get("max_rel_error")
  return [ms_cell(impls.get("dwop", {}), wrong_mark, error_text),
          ms_cell(impls.get("tf_onednn", {}), wrong_mark, error_text),
          ms_cell(impls.get("tf_native", {}), wrong_mark, error_text),
          fmt(op_row["speedup"], ".3g") + ("x" if op_row["speedup"] else ""),
          fmt(op_row["roofline_ms"], ".2f"),
          fmt(op_row["roofline_ratio"], ".3g"),
          fmt(op_row["thread_scaling"], ".2f"),
          fmt(dwop_err, ".1e")]


TEXT_COLUMNS = (("case", "<32"), ("op", "<11"), ("dwop ms", ">9"),
                ("oneDNN ms", ">10"), ("native ms", ">10"), ("speedup", ">8"),
                ("roof ms", ">9"), ("dwop/roof", ">9"), ("2T/1T", ">6"),
                ("dwop err", ">8"))


def text_header():
  return " ".join(format(name, spec) for name, spec in TEXT_COLUMNS)


def text_lines(row):
  """The stdout lines of one case: one per op and the layer total."""
  lines = []
  for op, op_row in row["ops"].items():
    cells = [row["case"], OP_TITLES[op].replace("gradient", "grad")]
    cells += _cells(op_row, "*", "err")
    lines.append(" ".join(format(c, spec) for c, (_, spec) in
                          zip(cells, TEXT_COLUMNS)))
  return lines


def _summary_table(summ):
  ops = [op for op in OPS + ("total",) if op in summ]
  metrics = [
      ("geomean speed-up over best TF", "geomean_speedup", ".3g", "x"),
      (f"geomean speed-up, filters >= {LARGE_FILTER}x{LARGE_FILTER}",
       "geomean_speedup_k7_plus", ".3g", "x"),
      ("min speed-up", "min_speedup", ".3g", "x"),
      ("median dwop / roofline", "median_roofline_ratio", ".3g", ""),
      ("worst dwop / roofline", "worst_roofline_ratio", ".3g", ""),
      ("median 2T/1T, large cases", "median_2t_1t_large", ".2f", ""),
      ("min 2T/1T, large cases", "min_2t_1t_large", ".2f", ""),
      ("max dwop relative error", "max_dwop_rel_error", ".1e", ""),
  ]
  lines = ["| | " + " | ".join(OP_TITLES[op] for op in ops) + " |",
           "|---|" + "---:|" * len(ops)]
  for title, key, spec, unit in metrics:
    cells = []
    for op in ops:
      value = summ[op].get(key)
      cells.append(fmt(value, spec) + (unit if value is not None else ""))
    lines.append(f"| {title} | " + " | ".join(cells) + " |")
  worst = []
  for op in ops:
    if summ[op].get("min_speedup_case"):
      worst.append(f"{OP_TITLES[op]}: slowest against TF "
                   f"{summ[op]['min_speedup_case']}, farthest from the "
                   f"roofline {summ[op]['worst_roofline_case']}")
  return lines, worst


def summary_text(summ):
  """The summary as plain lines for stdout."""
  lines, worst = _summary_table(summ)
  out = []
  for line in lines[:1] + lines[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    out.append(f"{cells[0]:<38}" + "".join(f"{c:>16}" for c in cells[1:]))
  out += worst
  if summ.get("max_dwop_extra_mb") is not None:
    out.append(f"dwop's max extra memory (filter gradient): "
               f"{summ['max_dwop_extra_mb']:.1f} MB")
  return out


def markdown(results):
  """The results as Markdown, for the README: the machine, one table per op
  and the layer total, then the summary."""
  machine = results["machine"]
  lines = [
      f"{machine['cores']} cores, copy bandwidth "
      f"{machine['bandwidth_gbs']:.1f} GB/s, float32 matmul peak "
      f"{machine['peak_gflops']:.0f} GFLOP/s; medians of up to "
      f"{results['rounds']} interleaved rounds; (wrong): more than "
      f"{WRONG_REL_ERROR:g} away from the float64 oracle; error: TensorFlow "
      "refused the case.", ""]
  rows = results["cases"]
  for op in OPS + ("total",):
    if not any(op in r["ops"] for r in rows):
      continue
    lines += [f"**{OP_TITLES[op]}**", "",
              "| case | dwop ms | TF oneDNN ms | TF native ms | speed-up "
              "| roofline ms | dwop / roofline | 2T/1T | dwop rel. error |",
              "|---|" + "---:|" * 8]
    for r in rows:
      if op in r["ops"]:
        cells = _cells(r["ops"][op], " (wrong)", "error")
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    lines.append("")
  def cases_with_api(ops, api):
    return sorted({r["case"] for r in rows for op in ops
                   for e in r["ops"].get(op, {}).get("impls", {}).values()
                   if e.get("api") == api})

  nn_forward = cases_with_api(("forward",), "nn.depthwise_conv2d")
  if nn_forward:
    lines += ["TensorFlow's forward is tf.nn.depthwise_conv2d (space_to_batch "
              "around the raw op) where a setting's DepthwiseConv2dNative "
              f"refused the case: {', '.join(nn_forward)}.", ""]
  nn_gradient = cases_with_api(("input_grad", "filter_grad"),
                               "gradient of nn.depthwise_conv2d")
  if nn_gradient:
    lines += ["TensorFlow's gradients are those of tf.nn.depthwise_conv2d "
              "(space_to_batch around the undilated raw ops, as Keras runs "
              "them) where the raw gradient ops would ignore the dilations: "
              f"{', '.join(nn_gradient)}.", ""]
  table, worst = _summary_table(results["summary"])
  lines += table + [""] + [f"- {w}" for w in worst]
  if results["summary"].get("max_dwop_extra_mb") is not None:
    lines.append(f"- dwop's largest extra peak memory (filter gradient, two "
                 f"threads): {results['summary']['max_dwop_extra_mb']:.1f} MB")
  return "\n".join(lines) + "\n"


def plot(rows, path, title):
  """Per op (and the layer total): speed-up over the best TensorFlow and
  dwop's time over the roofline time."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  ops = [op for op in OPS + ("total",) if any(op in r["ops"] for r in rows)]
  names = [r["case"] for r in rows]
  fig, axes = plt.subplots(len(ops), 2, figsize=(18, 3.2 * len(ops) + 2),
                           sharex=True, squeeze=False)
  for (ax1, ax2), op in zip(axes, ops):
    entries = [r["ops"].get(op, {}) for r in rows]
    # Hatched: the best TensorFlow result is wrong (still timed).
    ax1.bar(names, [e.get("speedup") or 0 for e in entries],
            color="tab:blue", hatch=[
                "//" if e.get("best_tf") and is_wrong(e["impls"][e["best_tf"]])
                else "" for e in entries])
    ax1.axhline(1, color="black", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_ylabel(f"{OP_TITLES[op]}\nspeed-up over best TF")
    ax2.bar(names, [e.get("roofline_ratio") or 0 for e in entries],
            color="tab:green")
    ax2.axhline(1, color="black", linewidth=0.8)
    ax2.set_yscale("log")
    ax2.set_ylabel("dwop time / roofline")
    for ax in (ax1, ax2):
      ax.yaxis.set_major_locator(ticker.LogLocator(10, subs=(1, 2, 5)))
      ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
      ax.yaxis.set_minor_formatter(ticker.NullFormatter())
  for ax in axes[-1]:
    plt.setp(ax.get_xticklabels(), rotation=75, ha="right", fontsize=8)
  fig.suptitle(f"{title}\n(hatched: the best TensorFlow result is wrong; "
               "dwop / roofline: 1 is the machine's limit)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True
