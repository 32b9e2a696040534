// The naive filter gradient: six nested loops straight from the definition in
// params.h. Kept forever as the C++ truth the fast kernels are tested against;
// never used by the op.
#ifndef DWOP_CC_KERNELS_REFERENCE_H_
#define DWOP_CC_KERNELS_REFERENCE_H_

#include "cc/kernels/params.h"
#include "cc/kernels/status.h"

namespace dwop {

// Single-threaded. Accumulates in float (double for double) over n, oh, ow in
// that order and writes every element of params.filter_backprop.
Status RunReference(const FilterGradParams& params);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_REFERENCE_H_
