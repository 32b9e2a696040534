// The ops' interfaces: inputs, attributes and shape functions. Same as
// TensorFlow's DepthwiseConv2dNative, DepthwiseConv2dNativeBackpropInput and
// DepthwiseConv2dNativeBackpropFilter, plus Tsizes so that input_sizes and
// filter_sizes may also be int64.
#include <cstdint>
#include <string>
#include <vector>

#include "cc/kernels/common/geometry.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

#ifndef DWOP_TF_VERSION
#error "Build with -DDWOP_TF_VERSION=<the TensorFlow version compiled against>"
#endif

namespace tensorflow {
namespace dwop {

// Read by dwop/_loader.py before it loads the library, so that a build for
// another TensorFlow is refused with advice instead of failing inside dlopen.
__attribute__((used)) extern const char kBuiltAgainst[] =
    "DWOP_BUILT_AGAINST_TENSORFLOW=" DWOP_TF_VERSION;

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// The shape of filter_sizes, checked by the kernel's own rule so that graph
// construction fails with the kernel's message. (Its values are not checked
// here: TensorFlow's shape refiner rejects a negative constant itself, with
// "Invalid value in tensor used for shape", before this function sees it.)
absl::Status CheckSizesShape(InferenceContext* c, int index,
                             ::dwop::OpKind op) {
  const ShapeHandle shape = c->input(index);
  if (!c->RankKnown(shape)) return absl::OkStatus();
  std::vector<int64_t> dims;
  for (int i = 0; i < c->Rank(shape); ++i) {
    dims.push_back(c->Value(c->Dim(shape, i)));  // -1 when unknown
  }
  const ::dwop::ShapeRef ref{dims.data(), static_cast<int>(dims.size())};
  const ::dwop::Status status = op == ::dwop::OpKind::kFilterGrad
                                    ? ::dwop::CheckFilterSizes(ref, nullptr)
                                    : ::dwop::CheckInputSizes(ref, nullptr);
  return status.ok() ? absl::OkStatus()
                     : absl::InvalidArgumentError(status.message());
}

// The shape function of the two gradients, like TensorFlow's: the output's
// shape is the value of input `index` (input_sizes or filter_sizes), exact
// when it is constant, rank 4 with unknown dimensions otherwise.
absl::Status SizesOutputShape(InferenceContext* c, int index,
                              ::dwop::OpKind op) {
  TF_RETURN_IF_ERROR(CheckSizesShape(c, index, op));
  ShapeHandle shape;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(index, &shape));
  TF_RETURN_IF_ERROR(c->WithRank(shape, 4, &shape));
  c->set_output(0, shape);
  return absl::OkStatus();
}

// The forward's output shape, computed by ComputeForwardGeometry (the one
// place output sizes are computed) on the dimensions the graph knows: an
// unknown dimension is stood in for by a value that cannot fail (1 for the
// batch and the filter, 2^40 for an input's spatial size, the other tensor's
// depth for in_depth), and an output dimension is reported only when every
// dimension it depends on is known. When everything is known, an invalid
// problem fails here, at graph construction, with the kernel's message.
absl::Status ForwardShape(InferenceContext* c) {
  const ShapeHandle input = c->input(0), filter = c->input(1);
  std::vector<int64_t> in, f;
  if (c->RankKnown(input) && c->RankKnown(filter)) {
    for (int i = 0; i < c->Rank(input); ++i) {
      in.push_back(c->Value(c->Dim(input, i)));  // -1 when unknown
    }
    for (int i = 0; i < c->Rank(filter); ++i) {
      f.push_back(c->Value(c->Dim(filter, i)));
    }
  }
  const bool all_known = c->FullyDefined(input) && c->FullyDefined(filter);
  if (!all_known && (in.size() != 4 || f.size() != 4)) {
    // Too little is known; the kernel reports a wrong rank.
    c->set_output(0, c->UnknownShapeOfRank(4));
    return absl::OkStatus();
  }
  ::dwop::OpAttrs attrs;
  TF_RETURN_IF_ERROR(c->GetAttr("strides", &attrs.strides));
  TF_RETURN_IF_ERROR(c->GetAttr("padding", &attrs.padding));
  TF_RETURN_IF_ERROR(c->GetAttr("explicit_paddings", &attrs.explicit_paddings));
  TF_RETURN_IF_ERROR(c->GetAttr("data_format", &attrs.data_format));
  TF_RETURN_IF_ERROR(c->GetAttr("dilations", &attrs.dilations));
  ::dwop::ConvAttrs conv;
  ::dwop::Status status =
      ::dwop::ParseAttrs(attrs, &conv, ::dwop::OpKind::kForward);
  if (!status.ok()) return absl::InvalidArgumentError(status.message());
  ::dwop::Geometry geo;
  if (all_known) {
    status = ::dwop::ComputeForwardGeometry(
        conv, {in.data(), static_cast<int>(in.size())},
        {f.data(), static_cast<int>(f.size())}, &geo);
    if (!status.ok()) return absl::InvalidArgumentError(status.message());
  }
  const bool nhwc = conv.layout == ::dwop::Layout::kNHWC;
  const int row = nhwc ? 1 : 2, depth = nhwc ? 3 : 1;
  if (!all_known) {
    constexpr int64_t kLargeInput = int64_t{1} << 40;
    const int64_t in_depth = in[depth] >= 0 ? in[depth] : f[2] >= 0 ? f[2] : 1;
    int64_t in_sub[4], f_sub[4];
    for (int i = 0; i < 4; ++i) {
      in_sub[i] = in[i] >= 0                   ? in[i]
                  : (i == row || i == row + 1) ? kLargeInput
                                               : 1;
      f_sub[i] = f[i] >= 0 ? f[i] : 1;
    }
    in_sub[depth] = in_depth;
    f_sub[2] = in_depth;
    status =
        ::dwop::ComputeForwardGeometry(conv, {in_sub, 4}, {f_sub, 4}, &geo);
    if (!status.ok()) {
      // Known dimensions that do not fit together: the kernel says why.
      c->set_output(0, c->UnknownShapeOfRank(4));
      return absl::OkStatus();
    }
  }
  const auto dim = [c](bool known, int64_t value) {
    return known ? c->MakeDim(value) : c->UnknownDim();
  };
  const auto batch = dim(in[0] >= 0, in[0]);
  const auto out_depth =
      dim(f[3] >= 0 && (in[depth] >= 0 || f[2] >= 0), geo.out_depth());
  const auto out_rows = dim(in[row] >= 0 && f[0] >= 0, geo.out_rows);
  const auto out_cols = dim(in[row + 1] >= 0 && f[1] >= 0, geo.out_cols);
  c->set_output(0, nhwc ? c->MakeShape({batch, out_rows, out_cols, out_depth})
                        : c->MakeShape({batch, out_depth, out_rows, out_cols}));
  return absl::OkStatus();
}

REGISTER_OP("Dwop>DepthwiseConv2dNative")
    .Input("input: T")
    .Input("filter: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Computes a depthwise 2-D convolution.

Drop-in for DepthwiseConv2dNative: dilations are honoured (with or without
strides), strides may differ in rows and columns, NCHW runs on CPU, half and
bfloat16 accumulate in float32, and the result is bitwise reproducible.

input: 4-D [batch, in_rows, in_cols, in_depth] (NHWC) or [batch, in_depth, in_rows, in_cols] (NCHW).
filter: 4-D [filter_rows, filter_cols, in_depth, depth_multiplier].
output: 4-D [batch, out_rows, out_cols, in_depth * depth_multiplier] (or NCHW).
)doc");

REGISTER_OP("Dwop>DepthwiseConv2dBackpropInput")
    .Input("input_sizes: Tsizes")
    .Input("filter: T")
    .Input("out_backprop: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tsizes: {int32, int64} = DT_INT32")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn([](InferenceContext* c) {
      return SizesOutputShape(c, 0, ::dwop::OpKind::kInputGrad);
    })
    .Doc(R"doc(
Computes the gradient of a depthwise 2-D convolution with respect to its input.

Drop-in for DepthwiseConv2dNativeBackpropInput: dilations are honoured (TensorFlow
ignores them), strides may differ in rows and columns, NCHW runs on CPU, half and
bfloat16 accumulate in float32, and the result is bitwise reproducible.

input_sizes: 1-D, the shape of input in data_format order.
filter: 4-D [filter_rows, filter_cols, in_depth, depth_multiplier].
out_backprop: 4-D gradient of the convolution's output, in_depth * depth_multiplier channels.
output: the gradient of input, of shape input_sizes.
)doc");

REGISTER_OP("Dwop>DepthwiseConv2dBackpropFilter")
    .Input("input: T")
    .Input("filter_sizes: Tsizes")
    .Input("out_backprop: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tsizes: {int32, int64} = DT_INT32")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn([](InferenceContext* c) {
      // Everything else is checked once, at run time, by ComputeGeometry.
      return SizesOutputShape(c, 1, ::dwop::OpKind::kFilterGrad);
    })
    .Doc(R"doc(
Computes the gradient of a depthwise 2-D convolution with respect to its filter.

Drop-in for DepthwiseConv2dNativeBackpropFilter: dilations are honoured, strides
may differ in rows and columns, NCHW runs on CPU, half and bfloat16 accumulate in
float32, and the result is bitwise reproducible.

input: 4-D [batch, in_rows, in_cols, in_depth] (NHWC) or [batch, in_depth, in_rows, in_cols] (NCHW).
filter_sizes: 1-D [filter_rows, filter_cols, in_depth, depth_multiplier].
out_backprop: 4-D gradient of the convolution's output, in_depth * depth_multiplier channels.
output: [filter_rows, filter_cols, in_depth, depth_multiplier].
)doc");

}  // namespace dwop
}  // namespace tensorflow
