// The op's interface: inputs, attributes and shape function. Same as
// TensorFlow's DepthwiseConv2dNativeBackpropFilter, plus Tsizes so that
// filter_sizes may also be int64.
#include "absl/strings/str_cat.h"
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
      // TensorFlow's own messages ("Shape must be rank 4 but is rank 3") do
      // not say which input is wrong: name it. (A negative constant size is
      // still reported by TensorFlow's shape refiner as "Invalid value in
      // tensor used for shape: -3", before this function sees the value.)
      ShapeHandle filter_shape;
      absl::Status status = c->MakeShapeFromShapeTensor(1, &filter_shape);
      if (status.ok()) status = c->WithRank(filter_shape, 4, &filter_shape);
      if (!status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "DepthwiseConv2dBackpropFilter: filter_sizes must be a 1-D tensor "
            "of 4 non-negative sizes [filter_rows, filter_cols, in_depth, "
            "depth_multiplier]: ",
            status.message()));
      }
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
