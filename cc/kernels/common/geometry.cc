#include "cc/kernels/common/geometry.h"

#include <cstdint>
#include <cstring>
#include <string>

namespace dwop {
namespace {

// Messages are built without the op's name; the public functions prefix it
// (WithOp), so that the three ops share every rule and its wording.
Status Invalid(const std::string& message) {
  return Status::InvalidArgument(message);
}

Status WithOp(OpKind op, Status status) {
  if (status.ok()) return status;
  return Status(status.code(),
                std::string(OpName(op)) + ": " + status.message());
}

std::string Str(int64_t v) { return std::to_string(v); }

std::string FormatVector(const std::vector<int64_t>& v) {
  return FormatDims(v.data(), static_cast<int64_t>(v.size()));
}

std::string FormatShape(ShapeRef shape) {
  return FormatDims(shape.dims, shape.rank);
}

bool CheckedMul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

bool CheckedAdd(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// Index of the height dimension; width follows it, and the depth dimension is
// 3 (NHWC) or 1 (NCHW).
int RowDim(Layout layout) { return layout == Layout::kNHWC ? 1 : 2; }
int DepthDim(Layout layout) { return layout == Layout::kNHWC ? 3 : 1; }

const char* LayoutName(Layout layout) {
  return layout == Layout::kNHWC ? "NHWC" : "NCHW";
}

// strides and dilations share their rules: 4 positive entries, 1 in the batch
// and depth dimensions.
Status ParseWindowAttr(const char* name, const std::vector<int64_t>& values,
                       Layout layout, int64_t* rows, int64_t* cols) {
  const std::string shown = std::string(name) + "=" + FormatVector(values);
  if (values.size() != 4) {
    return Invalid(
        std::string(name) + " must have 4 entries, one per dimension of " +
        LayoutName(layout) + ", but got " + Str(values.size()) + ": " + shown);
  }
  for (int64_t v : values) {
    if (v <= 0) {
      return Invalid(std::string(name) +
                     " must be positive in every dimension, but got " + shown);
    }
  }
  if (values[0] != 1 || values[DepthDim(layout)] != 1) {
    return Invalid(std::string(name) +
                   " must be 1 in the batch and depth dimensions, but got " +
                   shown + " for data_format " + LayoutName(layout));
  }
  *rows = values[RowDim(layout)];
  *cols = values[RowDim(layout) + 1];
  return Status::Ok();
}

Status ParseExplicitPaddings(const OpAttrs& attrs, ConvAttrs* out) {
  const std::vector<int64_t>& p = attrs.explicit_paddings;
  const std::string shown = "explicit_paddings=" + FormatVector(p);
  if (out->padding != Padding::kExplicit) {
    if (!p.empty()) {
      return Invalid(
          "explicit_paddings must be empty unless padding is "
          "EXPLICIT, but got padding=" +
          attrs.padding + " and " + shown);
    }
    return Status::Ok();
  }
  if (p.size() != 8) {
    return Invalid(
        "explicit_paddings must have 8 entries (before and after "
        "each of the 4 dimensions) when padding is EXPLICIT, but "
        "got " +
        Str(p.size()) + ": " + shown);
  }
  for (int64_t v : p) {
    if (v < 0) {
      return Invalid("explicit_paddings must be non-negative, but got " +
                     shown);
    }
  }
  const int depth = DepthDim(out->layout);
  if (p[0] != 0 || p[1] != 0 || p[2 * depth] != 0 || p[2 * depth + 1] != 0) {
    return Invalid(
        "explicit_paddings must be 0 in the batch and depth "
        "dimensions, but got " +
        shown + " for data_format " + LayoutName(out->layout));
  }
  const int row = RowDim(out->layout);
  out->pad_top = p[2 * row];
  out->pad_bottom = p[2 * row + 1];
  out->pad_left = p[2 * row + 2];
  out->pad_right = p[2 * row + 3];
  return Status::Ok();
}

// The convolution's output size along one spatial dimension and the padding
// before it, exactly as TensorFlow's GetWindowedOutputSizeVerbose computes it
// (truncating division included), but with dilation and checked arithmetic.
// One deliberate difference: a zero-sized filter dimension has effective size
// 0 whatever the dilation (TensorFlow's (k-1)*d+1 would be negative); its
// gradient is empty either way.
struct DimSpec {
  const char* name;  // "rows" or "cols"
  int64_t in;
  int64_t filter;
  int64_t dilation;
  int64_t stride;
  int64_t explicit_before;
  int64_t explicit_after;
};

std::string DescribeDim(const DimSpec& d, Padding padding) {
  std::string s = "input " + std::string(d.name) + " " + Str(d.in) +
                  ", filter " + d.name + " " + Str(d.filter) + ", dilation " +
                  Str(d.dilation) + ", stride " + Str(d.stride) + ", padding ";
  switch (padding) {
    case Padding::kSame:
      return s + "SAME";
    case Padding::kValid:
      return s + "VALID";
    case Padding::kExplicit:
      return s + Str(d.explicit_before) + "+" + Str(d.explicit_after);
  }
  return s;
}

Status OutputSize(const DimSpec& d, Padding padding, int64_t* out,
                  int64_t* pad_before) {
  const std::string too_large = std::string("output ") + d.name +
                                " overflow int64 (" + DescribeDim(d, padding) +
                                ")";
  // A zero-sized filter covers nothing, whatever its dilation.
  int64_t effective = 0;
  if (d.filter > 0) {
    if (!CheckedMul(d.filter - 1, d.dilation, &effective) ||
        !CheckedAdd(effective, 1, &effective)) {
      return Invalid("effective filter " + std::string(d.name) +
                     " (filter - 1) * dilation + 1 overflows int64 (" +
                     DescribeDim(d, padding) + ")");
    }
  }
  if (padding == Padding::kSame) {
    // ceil(in / stride), then the total padding that makes it so.
    *out = d.in / d.stride + (d.in % d.stride != 0 ? 1 : 0);
    int64_t needed = 0;
    if (*out > 0) {
      if (!CheckedMul(*out - 1, d.stride, &needed) ||
          !CheckedAdd(needed, effective, &needed)) {
        return Invalid(too_large);
      }
      needed -= d.in;
    }
    *pad_before = needed > 0 ? needed / 2 : 0;
    return Status::Ok();
  }
  int64_t span = d.in;
  *pad_before = 0;
  if (padding == Padding::kExplicit) {
    if (!CheckedAdd(span, d.explicit_before, &span) ||
        !CheckedAdd(span, d.explicit_after, &span)) {
      return Invalid(too_large);
    }
    *pad_before = d.explicit_before;
  }
  int64_t numerator = span - effective;  // both operands are >= 0
  if (!CheckedAdd(numerator, d.stride, &numerator)) {
    return Invalid(too_large);
  }
  *out = numerator / d.stride;  // truncates toward zero, as TensorFlow does
  if (*out < 0) {
    return Invalid("computed output " + std::string(d.name) +
                   " would be negative: the effective filter (" +
                   Str(effective) + ") is larger than the padded input (" +
                   Str(span) + ") by more than the stride (" +
                   DescribeDim(d, padding) + ")");
  }
  return Status::Ok();
}

// The number of elements of a shape, or an error when the product of its
// dimensions, taken in order as TensorFlow's TensorShape does, or that product
// in bytes does not fit in int64. A tensor with a zero dimension before any
// overflow has no elements, whatever its other dimensions ([0, 2^62, 2^62]
// is valid): Geometry's counts are zero-safe for that reason, and the glue
// never hands such a problem to a kernel (see NothingToSum).
Status CheckedSize(const char* name, ShapeRef shape, int64_t* elements) {
  int64_t n = 1;
  for (int i = 0; i < shape.rank; ++i) {
    if (!CheckedMul(n, shape.dims[i], &n)) {
      return Invalid(std::string(name) + " shape " + FormatShape(shape) +
                     " has more elements than int64 can count");
    }
  }
  int64_t bytes;
  if (!CheckedMul(n, 8, &bytes)) {
    return Invalid(std::string(name) + " shape " + FormatShape(shape) +
                   " is too large: its size in bytes overflows int64");
  }
  *elements = n;
  return Status::Ok();
}

// `what` describes the 4 dimensions, e.g. "NHWC".
Status CheckRank4(const char* name, ShapeRef shape, const char* what) {
  if (shape.rank != 4) {
    return Invalid(std::string(name) + " must be 4-dimensional (" + what +
                   "), but got rank " + Str(shape.rank) + " with shape " +
                   FormatShape(shape));
  }
  for (int i = 0; i < 4; ++i) {
    if (shape.dims[i] < 0) {
      return Invalid(std::string(name) +
                     " has a negative dimension: " + FormatShape(shape));
    }
  }
  return Status::Ok();
}

constexpr char kFilterDims[] =
    "[filter_rows, filter_cols, in_depth, depth_multiplier]";

// A 1-D sizes tensor of 4 entries (filter_sizes, input_sizes) and how
// messages describe it.
struct SizesVector {
  const char* name;
  const char* entries;
};
constexpr SizesVector kFilterSizes = {
    "filter_sizes", "[filter_rows, filter_cols, in_depth, depth_multiplier]"};
constexpr SizesVector kInputSizes = {
    "input_sizes", "(the input's shape in data_format order)"};

Status CheckSizesVector(const SizesVector& v, ShapeRef filter_sizes_shape,
                        const int64_t* filter_sizes) {
  if (filter_sizes_shape.rank != 1) {
    return Invalid(std::string(v.name) + " must be a 1-D tensor " + v.entries +
                   ", but got rank " + Str(filter_sizes_shape.rank) +
                   " with shape " + FormatShape(filter_sizes_shape));
  }
  const int64_t length = filter_sizes_shape.dims[0];
  if (length >= 0 && length != 4) {
    return Invalid(std::string(v.name) + " must have 4 entries " + v.entries +
                   ", but got " + Str(length) +
                   // Hostile lengths are not echoed in full.
                   (filter_sizes != nullptr && length <= kMaxEchoedFilterSizes
                        ? ": " + std::string(v.name) + "=" +
                              FormatDims(filter_sizes, length)
                        : std::string()));
  }
  if (filter_sizes == nullptr || length < 0) return Status::Ok();
  for (int i = 0; i < 4; ++i) {
    if (filter_sizes[i] < 0) {
      return Invalid(std::string(v.name) + " must be non-negative, but got " +
                     v.name + "=" + FormatDims(filter_sizes, 4));
    }
  }
  return Status::Ok();
}

Status ParseAttrsUnnamed(const OpAttrs& attrs, ConvAttrs* out) {
  if (attrs.data_format == "NHWC") {
    out->layout = Layout::kNHWC;
  } else if (attrs.data_format == "NCHW") {
    out->layout = Layout::kNCHW;
  } else {
    return Invalid("data_format must be NHWC or NCHW, but got \"" +
                   attrs.data_format + "\"");
  }
  if (attrs.padding == "SAME") {
    out->padding = Padding::kSame;
  } else if (attrs.padding == "VALID") {
    out->padding = Padding::kValid;
  } else if (attrs.padding == "EXPLICIT") {
    out->padding = Padding::kExplicit;
  } else {
    return Invalid("padding must be SAME, VALID or EXPLICIT, but got \"" +
                   attrs.padding + "\"");
  }
  DWOP_RETURN_IF_ERROR(ParseWindowAttr("strides", attrs.strides, out->layout,
                                       &out->stride_rows, &out->stride_cols));
  DWOP_RETURN_IF_ERROR(ParseWindowAttr("dilations", attrs.dilations,
                                       out->layout, &out->dilation_rows,
                                       &out->dilation_cols));
  return ParseExplicitPaddings(attrs, out);
}

// How an op names the tensors that carry the problem's shape, for messages:
// the input ("input" or "input_sizes") and the filter (the filter_sizes
// values, or the filter tensor's shape).
struct TensorNames {
  const char* input;
  const char* filter;
  bool filter_is_sizes;
};

// The core of every Compute*Geometry: validates input [N,H,W,C] (layout
// order; rank already checked), the filter's 4 sizes and, unless it is null
// (the forward computes it), out_backprop against each other and the
// attributes, and resolves output size and padding into *geo.
Status Resolve(const ConvAttrs& attrs, const TensorNames& names, ShapeRef input,
               const int64_t* filter, const ShapeRef* out_backprop,
               Geometry* geo) {
  const Layout layout = attrs.layout;
  const std::string shown_filter =
      names.filter_is_sizes ? "filter_sizes=" + FormatDims(filter, 4)
                            : "filter shape " + FormatDims(filter, 4);
  int64_t input_elements, filter_elements;
  DWOP_RETURN_IF_ERROR(CheckedSize(names.input, input, &input_elements));
  if (out_backprop != nullptr) {
    int64_t out_backprop_elements;
    DWOP_RETURN_IF_ERROR(
        CheckedSize("out_backprop", *out_backprop, &out_backprop_elements));
  }
  DWOP_RETURN_IF_ERROR(
      CheckedSize(names.filter, ShapeRef{filter, 4}, &filter_elements));
  if (filter_elements > kMaxFilterElements) {
    return Invalid(
        shown_filter +
        (names.filter_is_sizes ? " describes a filter gradient of " : " has ") +
        Str(filter_elements) +
        " elements, more than the supported maximum of " +
        Str(kMaxFilterElements));
  }

  const int row = RowDim(layout);
  const int depth = DepthDim(layout);
  const int64_t batch = input.dims[0];
  const int64_t in_depth = input.dims[depth];
  const int64_t multiplier = filter[3];
  if (out_backprop != nullptr && out_backprop->dims[0] != batch) {
    return Invalid(std::string(names.input) +
                   " and out_backprop must have the same batch size, but " +
                   names.input + " has " + Str(batch) + " (shape " +
                   FormatShape(input) + ") and out_backprop has " +
                   Str(out_backprop->dims[0]) + " (shape " +
                   FormatShape(*out_backprop) + ")");
  }
  if (filter[2] != in_depth) {
    return Invalid(std::string(names.filter) +
                   "[2] (in_depth) must equal the depth of " + names.input +
                   ", " + Str(in_depth) + " (" + names.input + " shape " +
                   FormatShape(input) + ", data_format " + LayoutName(layout) +
                   "), but got " + shown_filter);
  }
  // May overflow when the filter is empty (filter_sizes [0,0,2^40,2^40]):
  // wrapping to 0 would accept an out_backprop of depth 0.
  int64_t out_depth;
  if (!CheckedMul(in_depth, multiplier, &out_depth)) {
    return Invalid("in_depth * depth_multiplier overflows int64: " +
                   shown_filter);
  }
  if (out_backprop != nullptr && out_backprop->dims[depth] != out_depth) {
    return Invalid("out_backprop depth must be in_depth * depth_multiplier = " +
                   Str(in_depth) + " * " + Str(multiplier) + " = " +
                   Str(out_depth) + ", but got " +
                   Str(out_backprop->dims[depth]) + " (out_backprop shape " +
                   FormatShape(*out_backprop) + ", data_format " +
                   LayoutName(layout) + ")");
  }

  const DimSpec dims[2] = {
      {"rows", input.dims[row], filter[0], attrs.dilation_rows,
       attrs.stride_rows, attrs.pad_top, attrs.pad_bottom},
      {"cols", input.dims[row + 1], filter[1], attrs.dilation_cols,
       attrs.stride_cols, attrs.pad_left, attrs.pad_right},
  };
  int64_t out_size[2], pad_before[2];
  for (int i = 0; i < 2; ++i) {
    DWOP_RETURN_IF_ERROR(
        OutputSize(dims[i], attrs.padding, &out_size[i], &pad_before[i]));
  }
  if (out_backprop != nullptr) {
    for (int i = 0; i < 2; ++i) {
      const int64_t actual = out_backprop->dims[row + i];
      if (actual != out_size[i]) {
        return Invalid(
            "out_backprop " + std::string(dims[i].name) + " must be " +
            Str(out_size[i]) + ", the output size of the convolution (" +
            DescribeDim(dims[i], attrs.padding) + "), but got " + Str(actual) +
            " (out_backprop shape " + FormatShape(*out_backprop) + ")");
      }
    }
  }

  geo->batch = batch;
  geo->in_rows = dims[0].in;
  geo->in_cols = dims[1].in;
  geo->in_depth = in_depth;
  geo->depth_multiplier = multiplier;
  geo->filter_rows = filter[0];
  geo->filter_cols = filter[1];
  geo->out_rows = out_size[0];
  geo->out_cols = out_size[1];
  geo->stride_rows = attrs.stride_rows;
  geo->stride_cols = attrs.stride_cols;
  geo->dilation_rows = attrs.dilation_rows;
  geo->dilation_cols = attrs.dilation_cols;
  geo->pad_top = pad_before[0];
  geo->pad_left = pad_before[1];
  geo->layout = layout;
  if (out_backprop == nullptr) {
    // The forward's output is computed, so its size is checked here.
    int64_t output_dims[4];
    OutputDims(*geo, output_dims);
    int64_t output_elements;
    DWOP_RETURN_IF_ERROR(
        CheckedSize("output", ShapeRef{output_dims, 4}, &output_elements));
  }
  return Status::Ok();
}

template <typename Params, typename Out>
bool ZeroOutputIfNothingToSum(const Params& params, Out* output,
                              int64_t elements) {
  if (!NothingToSum(params.geo)) return false;
  if (elements > 0) {  // all-zero bits are +0 in every dtype
    std::memset(output, 0,
                static_cast<size_t>(elements * DTypeSize(params.dtype)));
  }
  return true;
}

}  // namespace

const char* OpName(OpKind op) {
  switch (op) {
    case OpKind::kForward:
      return "DepthwiseConv2dNative";
    case OpKind::kInputGrad:
      return "DepthwiseConv2dBackpropInput";
    case OpKind::kFilterGrad:
      return "DepthwiseConv2dBackpropFilter";
  }
  return "DepthwiseConv2d";
}

std::string FormatDims(const int64_t* dims, int64_t size) {
  std::string s = "[";
  for (int64_t i = 0; i < size; ++i) {
    if (i > 0) s += ",";
    s += Str(dims[i]);
  }
  return s + "]";
}

void InputDims(const Geometry& geo, int64_t dims[4]) {
  const bool nhwc = geo.layout == Layout::kNHWC;
  dims[0] = geo.batch;
  dims[nhwc ? 1 : 2] = geo.in_rows;
  dims[nhwc ? 2 : 3] = geo.in_cols;
  dims[nhwc ? 3 : 1] = geo.in_depth;
}

void OutputDims(const Geometry& geo, int64_t dims[4]) {
  const bool nhwc = geo.layout == Layout::kNHWC;
  dims[0] = geo.batch;
  dims[nhwc ? 1 : 2] = geo.out_rows;
  dims[nhwc ? 2 : 3] = geo.out_cols;
  dims[nhwc ? 3 : 1] = geo.out_depth();
}

Status ParseAttrs(const OpAttrs& attrs, ConvAttrs* out, OpKind op) {
  return WithOp(op, ParseAttrsUnnamed(attrs, out));
}

Status CheckFilterSizes(ShapeRef filter_sizes_shape,
                        const int64_t* filter_sizes) {
  return WithOp(
      OpKind::kFilterGrad,
      CheckSizesVector(kFilterSizes, filter_sizes_shape, filter_sizes));
}

Status CheckInputSizes(ShapeRef input_sizes_shape, const int64_t* input_sizes) {
  return WithOp(OpKind::kInputGrad,
                CheckSizesVector(kInputSizes, input_sizes_shape, input_sizes));
}

Status CheckFilterBytes(const Geometry& geo, DType dtype) {
  const int64_t elements = geo.filter_elements();  // <= kMaxFilterElements
  const int64_t bytes = elements * DTypeSize(dtype);
  if (bytes > kMaxFilterBytes) {
    const int64_t sizes[4] = {geo.filter_rows, geo.filter_cols, geo.in_depth,
                              geo.depth_multiplier};
    static const char* const kNames[] = {"float16", "bfloat16", "float32",
                                         "float64"};
    return WithOp(OpKind::kFilterGrad,
                  Invalid("filter_sizes=" + FormatDims(sizes, 4) +
                          " describes a filter gradient of " + Str(bytes) +
                          " bytes of " + kNames[static_cast<int>(dtype)] +
                          ", more than the supported maximum of " +
                          Str(kMaxFilterBytes) + " (2 GiB)"));
  }
  return Status::Ok();
}

bool WriteZerosIfNothingToSum(const FilterGradParams& params) {
  return ZeroOutputIfNothingToSum(params, params.filter_backprop,
                                  params.geo.filter_elements());
}

bool WriteZerosIfNothingToSum(const ForwardParams& params) {
  return ZeroOutputIfNothingToSum(params, params.output,
                                  params.geo.out_backprop_elements());
}

bool WriteZerosIfNothingToSum(const InputGradParams& params) {
  return ZeroOutputIfNothingToSum(params, params.in_backprop,
                                  params.geo.input_elements());
}

Status CheckWorkspaceBytes(const Geometry& geo, int64_t bytes, OpKind op) {
  if (bytes < 0 || bytes > kMaxWorkspaceBytes) {
    const int64_t sizes[4] = {geo.filter_rows, geo.filter_cols, geo.in_depth,
                              geo.depth_multiplier};
    return Status::ResourceExhausted(
        std::string(OpName(op)) + ": " +
        (op == OpKind::kFilterGrad ? "filter_sizes=" : "filter shape ") +
        FormatDims(sizes, 4) + " would need " + Str(bytes) +
        " bytes of kernel workspace, more than the supported maximum of " +
        Str(kMaxWorkspaceBytes) + " (4 GiB)");
  }
  return Status::Ok();
}

Status ComputeGeometry(const ConvAttrs& attrs, ShapeRef input,
                       ShapeRef filter_sizes_shape, const int64_t* filter_sizes,
                       ShapeRef out_backprop, Geometry* geo) {
  const Layout layout = attrs.layout;
  const OpKind op = OpKind::kFilterGrad;
  DWOP_RETURN_IF_ERROR(
      WithOp(op, CheckRank4("input", input, LayoutName(layout))));
  DWOP_RETURN_IF_ERROR(CheckFilterSizes(filter_sizes_shape, filter_sizes));
  // CheckFilterSizes also serves shape inference, where the values may be
  // unknown; a kernel cannot run without them.
  if (filter_sizes == nullptr || filter_sizes_shape.dims[0] != 4) {
    return Status::Internal("ComputeGeometry needs the 4 filter_sizes values");
  }
  DWOP_RETURN_IF_ERROR(
      WithOp(op, CheckRank4("out_backprop", out_backprop, LayoutName(layout))));
  return WithOp(op, Resolve(attrs, {"input", "filter_sizes", true}, input,
                            filter_sizes, &out_backprop, geo));
}

Status ComputeForwardGeometry(const ConvAttrs& attrs, ShapeRef input,
                              ShapeRef filter, Geometry* geo) {
  const OpKind op = OpKind::kForward;
  DWOP_RETURN_IF_ERROR(
      WithOp(op, CheckRank4("input", input, LayoutName(attrs.layout))));
  DWOP_RETURN_IF_ERROR(WithOp(op, CheckRank4("filter", filter, kFilterDims)));
  return WithOp(op, Resolve(attrs, {"input", "filter", false}, input,
                            filter.dims, nullptr, geo));
}

Status ComputeInputGradGeometry(const ConvAttrs& attrs,
                                ShapeRef input_sizes_shape,
                                const int64_t* input_sizes, ShapeRef filter,
                                ShapeRef out_backprop, Geometry* geo) {
  const OpKind op = OpKind::kInputGrad;
  DWOP_RETURN_IF_ERROR(CheckInputSizes(input_sizes_shape, input_sizes));
  if (input_sizes == nullptr || input_sizes_shape.dims[0] != 4) {
    return Status::Internal(
        "ComputeInputGradGeometry needs the 4 input_sizes values");
  }
  DWOP_RETURN_IF_ERROR(WithOp(op, CheckRank4("filter", filter, kFilterDims)));
  DWOP_RETURN_IF_ERROR(WithOp(
      op, CheckRank4("out_backprop", out_backprop, LayoutName(attrs.layout))));
  return WithOp(
      op, Resolve(attrs, {"input_sizes", "filter", false},
                  ShapeRef{input_sizes, 4}, filter.dims, &out_backprop, geo));
}

}  // namespace dwop
