// The naive kernels of the three ops: nested loops straight from the
// definitions in params.h. Kept forever as the C++ truth the fast kernels are
// tested against; never used by the op.
#ifndef DWOP_CC_KERNELS_COMMON_REFERENCE_H_
#define DWOP_CC_KERNELS_COMMON_REFERENCE_H_

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"

namespace dwop {

// Single-threaded. Accumulates in float (double for double) over n, oh, ow in
// that order and writes every element of params.filter_backprop.
Status RunReference(const FilterGradParams& params);

// The forward sums over kh, kw in that order; the input gradient over kh, kw,
// m. Both write every element of their output.
Status RunReference(const ForwardParams& params);
Status RunReference(const InputGradParams& params);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_COMMON_REFERENCE_H_
