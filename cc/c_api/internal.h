// What the C ABI's translation units (dwop_c.cc, dwop_c_cuda.cc) share:
// status reporting, problem validation and exception guarding. Internal to
// cc/c_api; not part of the ABI.
#ifndef DWOP_CC_C_API_INTERNAL_H_
#define DWOP_CC_C_API_INTERNAL_H_

#include <cstddef>
#include <exception>
#include <new>
#include <string>

#include "cc/c_api/dwop_c.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/common/params.h"

namespace dwop {

// The status as the C caller sees it, its message copied into `error`.
dwop_status Report(const Status& status, char* error, size_t error_size);

// Validates `problem` as `op` sees it and fills geo and dtype (not the
// buffers); see dwop_c.cc.
Status Resolve(const dwop_problem* problem, OpKind op, Geometry* geo,
               DType* dtype);

// Resolve, then the buffers (a NULL buffer only for an empty tensor).
Status MakeParams(const dwop_problem* problem, const void* input,
                  const void* out_backprop, void* filter_backprop,
                  FilterGradParams* params);
Status MakeParams(const dwop_problem* problem, const void* input,
                  const void* filter, void* output, ForwardParams* params);
Status MakeParams(const dwop_problem* problem, const void* filter,
                  const void* out_backprop, void* in_backprop,
                  InputGradParams* params);

// Runs `body` (which returns a Status) so that no C++ exception crosses the C
// ABI: std::bad_alloc from copying a hostile problem or from the kernel's
// set-up, anything else thrown on the calling thread or, passed on by
// ThreadsParallelFor, on a worker.
template <typename Body>
Status Guarded(Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Status::Internal("unexpected exception");
  }
}

}  // namespace dwop

#endif  // DWOP_CC_C_API_INTERNAL_H_
