// The op's interface: inputs, attributes and shape function. Same as
// TensorFlow's DepthwiseConv2dNativeBackpropFilter, plus Tsizes so that
// filter_sizes may also be int64.
#include <cstdint>
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
absl::Status CheckFilterSizesShape(InferenceContext* c) {
  const ShapeHandle shape = c->input(1);
  if (!c->RankKnown(shape)) return absl::OkStatus();
  std::vector<int64_t> dims;
  for (int i = 0; i < c->Rank(shape); ++i) {
    dims.push_back(c->Value(c->Dim(shape, i)));  // -1 when unknown
  }
  const ::dwop::Status status = ::dwop::CheckFilterSizes(
      {dims.data(), static_cast<int>(dims.size())}, nullptr);
  return status.ok() ? absl::OkStatus()
                     : absl::InvalidArgumentError(status.message());
}

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
      // Like TensorFlow's: the exact shape when filter_sizes is constant,
      // rank 4 with unknown dimensions otherwise. Everything else is checked
      // once, at run time, by ComputeGeometry.
      TF_RETURN_IF_ERROR(CheckFilterSizesShape(c));
      ShapeHandle filter_shape;
      TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(1, &filter_shape));
      TF_RETURN_IF_ERROR(c->WithRank(filter_shape, 4, &filter_shape));
      c->set_output(0, filter_shape);
      return absl::OkStatus();
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
