// Validation and shape arithmetic of the three depthwise ops (forward, input
// gradient, filter gradient): the single source of truth for every device and
// every entry point (TensorFlow CPU and GPU kernels, the C ABI). Nothing else
// in dwop computes output sizes or pads. Every message starts with the op's
// name (OpName).
#ifndef DWOP_CC_KERNELS_COMMON_GEOMETRY_H_
#define DWOP_CC_KERNELS_COMMON_GEOMETRY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"

namespace dwop {

// Largest filter gradient dwop computes, in elements (so that a filter index
// fits in int32) and in bytes. A depthwise filter this large is never a real
// layer (the largest in real networks, 31x31 x 2048 channels, has 2^21
// elements), while filter_sizes alone, with empty input tensors, would
// otherwise make dwop allocate and zero-fill up to 16 GiB: refusing it early
// turns a fuzzer's filter_sizes into a clear error, not an OOM kill.
constexpr int64_t kMaxFilterElements = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxFilterBytes = int64_t{1} << 31;  // 2 GiB
// A filter_sizes of a wrong length is echoed in messages up to this length.
constexpr int64_t kMaxEchoedFilterSizes = 16;

enum class Padding : int32_t { kSame = 0, kValid = 1, kExplicit = 2 };

// The op's attributes exactly as the user gave them.
struct OpAttrs {
  std::vector<int64_t> strides;
  std::string padding;
  std::vector<int64_t> explicit_paddings;
  std::string data_format;
  std::vector<int64_t> dilations;
};

// The attributes after validation, in spatial terms.
struct ConvAttrs {
  Layout layout = Layout::kNHWC;
  Padding padding = Padding::kValid;
  int64_t stride_rows = 1;
  int64_t stride_cols = 1;
  int64_t dilation_rows = 1;
  int64_t dilation_cols = 1;
  // Only meaningful for Padding::kExplicit.
  int64_t pad_top = 0;
  int64_t pad_bottom = 0;
  int64_t pad_left = 0;
  int64_t pad_right = 0;
};

// A tensor's dimensions as the glue sees them (any rank, unchecked).
struct ShapeRef {
  const int64_t* dims = nullptr;
  int rank = 0;
};

// "DepthwiseConv2dNative", "DepthwiseConv2dBackpropInput" or
// "DepthwiseConv2dBackpropFilter": TensorFlow's names of the three ops.
const char* OpName(OpKind op);

// Validates the attributes (lengths, batch/depth entries, signs, enums).
// Every error is kInvalidArgument and names the attribute, its value and what
// was expected. Safe on any input.
Status ParseAttrs(const OpAttrs& attrs, ConvAttrs* out,
                  OpKind op = OpKind::kFilterGrad);

// Validates filter_sizes alone: a 1-D tensor of 4 non-negative entries.
// Also serves the shape function, which may know less: a dimension of
// `filter_sizes_shape` may be -1 (unknown length, not checked) and
// `filter_sizes` may be null (values unknown, only the shape is checked).
Status CheckFilterSizes(ShapeRef filter_sizes_shape,
                        const int64_t* filter_sizes);

// Validates input_sizes alone, as CheckFilterSizes does filter_sizes.
Status CheckInputSizes(ShapeRef input_sizes_shape, const int64_t* input_sizes);

// Validates the three inputs against each other and the attributes, and
// resolves the output size and padding. `filter_sizes` points to the values of
// the filter_sizes tensor, whose shape is `filter_sizes_shape` (the values are
// only read once that shape is known to be [4]). On success `geo` satisfies
// every REQUIRES of Geometry. Safe on any input: all arithmetic is checked.
Status ComputeGeometry(const ConvAttrs& attrs, ShapeRef input,
                       ShapeRef filter_sizes_shape, const int64_t* filter_sizes,
                       ShapeRef out_backprop, Geometry* geo);

// The forward's ComputeGeometry: input [N,H,W,C] (data_format order) and
// filter [KH,KW,C,M]; resolves the output size (OutputDims) and checks that
// its element count fits in int64.
Status ComputeForwardGeometry(const ConvAttrs& attrs, ShapeRef input,
                              ShapeRef filter, Geometry* geo);

// The input gradient's ComputeGeometry: the input_sizes values (shape
// `input_sizes_shape`), filter [KH,KW,C,M] and out_backprop.
Status ComputeInputGradGeometry(const ConvAttrs& attrs,
                                ShapeRef input_sizes_shape,
                                const int64_t* input_sizes, ShapeRef filter,
                                ShapeRef out_backprop, Geometry* geo);

// The input's (and input gradient's) and the output's (and out_backprop's)
// dimensions in geo.layout order.
void InputDims(const Geometry& geo, int64_t dims[4]);
void OutputDims(const Geometry& geo, int64_t dims[4]);

// Largest scratch memory a kernel may ask the glue for. The CPU kernel's
// plans stay far below it on real layers; a pathological filter (one channel,
// 2^28 taps: its per-chunk partial sums are padded to a vector of channels)
// could otherwise ask for 16x the filter. The glue refuses more with
// ResourceExhausted before allocating anything.
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 32;  // 4 GiB

// ResourceExhausted when a kernel asks for more than kMaxWorkspaceBytes.
Status CheckWorkspaceBytes(const Geometry& geo, int64_t bytes,
                           OpKind op = OpKind::kFilterGrad);

// Refuses a filter gradient of more than kMaxFilterBytes bytes of `dtype`.
// Called by the glue after ComputeGeometry, which does not know the dtype.
Status CheckFilterBytes(const Geometry& geo, DType dtype);

// True when no kernel needs to run, for any of the three ops: one of input,
// filter and out_backprop (output) is empty, so the op's result is empty or
// all zeros (nothing to sum). The glue then writes the zeros itself: an empty
// tensor may carry huge other dimensions (a [0, 2^40, 2^40, 3] input, a [2^62,
// 0, 1, 1] filter are valid), and no kernel should iterate over, or multiply,
// those.
inline bool NothingToSum(const Geometry& geo) {
  return geo.filter_elements() == 0 || geo.input_elements() == 0 ||
         geo.out_backprop_elements() == 0;
}

// For host buffers: when NothingToSum, writes the zero result into the op's
// output and returns true (no kernel is to run).
bool WriteZerosIfNothingToSum(const FilterGradParams& params);
bool WriteZerosIfNothingToSum(const ForwardParams& params);
bool WriteZerosIfNothingToSum(const InputGradParams& params);

// "[1,2,3]"; used in messages.
std::string FormatDims(const int64_t* dims, int64_t size);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_COMMON_GEOMETRY_H_
