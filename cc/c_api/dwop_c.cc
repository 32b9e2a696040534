#include "cc/c_api/dwop_c.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "cc/c_api/internal.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/common/reference.h"
#include "cc/kernels/cpu/conv.h"
#include "cc/kernels/cpu/cpu.h"
#include "cc/kernels/cuda/cuda.h"

namespace dwop {
namespace {

// Upper bound on the threads one dwop_filter_grad_cpu call starts.
constexpr int32_t kMaxThreads = 256;

// Copies a (pointer, count) pair from the C caller, rejecting the
// inconsistent ones a hostile caller could pass.
Status ReadArray(const char* name, const int64_t* data, int32_t count,
                 std::vector<int64_t>* out) {
  if (count < 0 || (count > 0 && data == nullptr)) {
    return Status::InvalidArgument(std::string("dwop_problem.") + name +
                                   " is NULL or has a negative count");
  }
  out->assign(data, data + count);
  return Status::Ok();
}

Status ReadString(const char* name, const char* data, std::string* out) {
  if (data == nullptr) {
    return Status::InvalidArgument(std::string("dwop_problem.") + name +
                                   " is NULL");
  }
  *out = data;
  return Status::Ok();
}

// The dtype field as the integer a C caller stored in it. C lets any int into
// an enum field; in C++, loading a value outside the enumerators' range
// through the enum type is undefined behaviour (UBSan flags it).
int32_t RawDType(const dwop_problem* problem) {
  static_assert(sizeof(problem->dtype) == sizeof(int32_t),
                "dwop_dtype is int-sized, as in C");
  int32_t dtype;
  std::memcpy(&dtype, &problem->dtype, sizeof(dtype));
  return dtype;
}

// The problem's fields as the geometry functions take them.
struct ProblemArrays {
  OpAttrs attrs;
  std::vector<int64_t> input, sizes, out_backprop;
  DType dtype = DType::kFloat;

  ShapeRef input_shape() const {
    return ShapeRef{input.data(), static_cast<int>(input.size())};
  }
  ShapeRef filter_shape() const {
    return ShapeRef{sizes.data(), static_cast<int>(sizes.size())};
  }
  ShapeRef out_backprop_shape() const {
    return ShapeRef{out_backprop.data(), static_cast<int>(out_backprop.size())};
  }
};

// Copies and checks `problem`'s fields, then parses its attributes for `op`.
Status ReadProblem(const dwop_problem* problem, OpKind op, ProblemArrays* p,
                   ConvAttrs* conv) {
  if (problem == nullptr) return Status::InvalidArgument("problem is NULL");
  const int32_t dtype = RawDType(problem);
  if (dtype < DWOP_HALF || dtype > DWOP_DOUBLE) {
    return Status::InvalidArgument(
        "dwop_problem.dtype " + std::to_string(dtype) + " is not a dwop_dtype");
  }
  p->dtype = static_cast<DType>(dtype);
  OpAttrs& attrs = p->attrs;
  DWOP_RETURN_IF_ERROR(ReadArray("strides", problem->strides,
                                 problem->num_strides, &attrs.strides));
  DWOP_RETURN_IF_ERROR(
      ReadArray("explicit_paddings", problem->explicit_paddings,
                problem->num_explicit_paddings, &attrs.explicit_paddings));
  DWOP_RETURN_IF_ERROR(ReadArray("dilations", problem->dilations,
                                 problem->num_dilations, &attrs.dilations));
  DWOP_RETURN_IF_ERROR(ReadString("padding", problem->padding, &attrs.padding));
  DWOP_RETURN_IF_ERROR(
      ReadString("data_format", problem->data_format, &attrs.data_format));
  DWOP_RETURN_IF_ERROR(ReadArray("input_shape", problem->input_shape,
                                 problem->input_rank, &p->input));
  DWOP_RETURN_IF_ERROR(ReadArray("filter_sizes", problem->filter_sizes,
                                 problem->num_filter_sizes, &p->sizes));
  DWOP_RETURN_IF_ERROR(ReadArray("out_backprop_shape",
                                 problem->out_backprop_shape,
                                 problem->out_backprop_rank, &p->out_backprop));
  return ParseAttrs(attrs, conv, op);
}

// A NULL buffer is only allowed for an empty tensor.
Status CheckBuffers(std::initializer_list<std::pair<int64_t, const void*>> b) {
  for (const auto& [elements, data] : b) {
    if (elements > 0 && data == nullptr) {
      return Status::InvalidArgument("a non-empty tensor's buffer is NULL");
    }
  }
  return Status::Ok();
}

// A pool of plain threads pulling single units from a shared counter. A
// hostile num_threads is clamped: the result does not depend on it, and
// millions of threads would only exhaust the process.
ParallelFor ThreadsParallelFor(int32_t num_threads) {
  if (num_threads <= 0) {
    num_threads =
        static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  }
  num_threads = std::min(num_threads, kMaxThreads);
  return [num_threads](int64_t n, int64_t,
                       const std::function<void(int64_t, int64_t)>& fn) {
    std::atomic<int64_t> next{0};
    // An exception must not leave a std::thread (std::terminate): the first
    // one stops the remaining units and is rethrown after the join.
    std::mutex mu;
    std::exception_ptr failure;
    auto worker = [&] {
      try {
        for (int64_t i = next++; i < n; i = next++) fn(i, i + 1);
      } catch (...) {
        next = n;
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
      }
    };
    const int64_t extra = std::min<int64_t>(num_threads, n) - 1;
    std::vector<std::thread> threads;
    if (extra > 0) threads.reserve(extra);
    try {
      for (int64_t t = 0; t < extra; ++t) threads.emplace_back(worker);
    } catch (const std::system_error&) {
      // Fewer threads than asked for: the calling thread and those started
      // still do every unit, and the result does not depend on the count.
    }
    worker();
    for (std::thread& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
  };
}

// Heap memory for the kernel's scratch, 64-byte aligned as cpu.h requires.
struct AlignedBuffer {
  explicit AlignedBuffer(int64_t bytes)
      : data(bytes > 0 && bytes <= INT64_MAX - 63
                 ? std::aligned_alloc(64, (bytes + 63) / 64 * 64)
                 : nullptr) {}
  ~AlignedBuffer() { std::free(data); }
  void* data;
};

}  // namespace

dwop_status Report(const Status& status, char* error, size_t error_size) {
  if (!status.ok() && error != nullptr && error_size > 0) {
    const std::string& m = status.message();
    const size_t n = std::min(m.size(), error_size - 1);
    std::memcpy(error, m.data(), n);
    error[n] = '\0';
  }
  return static_cast<dwop_status>(status.code());
}

// Validates `problem` as `op` sees it and fills geo and dtype (not the
// buffers): input_shape is the input (the input_sizes values for the input
// gradient), filter_sizes the filter's shape and out_backprop_shape the
// output's. The forward computes its output shape; when out_backprop_shape is
// given (rank > 0) it must equal it, so a caller's buffer size is checked too.
Status Resolve(const dwop_problem* problem, OpKind op, Geometry* geo,
               DType* dtype) {
  ProblemArrays p;
  ConvAttrs conv;
  DWOP_RETURN_IF_ERROR(ReadProblem(problem, op, &p, &conv));
  *dtype = p.dtype;
  switch (op) {
    case OpKind::kFilterGrad: {
      const int64_t num_sizes = static_cast<int64_t>(p.sizes.size());
      DWOP_RETURN_IF_ERROR(
          ComputeGeometry(conv, p.input_shape(), ShapeRef{&num_sizes, 1},
                          p.sizes.data(), p.out_backprop_shape(), geo));
      return CheckFilterBytes(*geo, p.dtype);
    }
    case OpKind::kForward: {
      DWOP_RETURN_IF_ERROR(
          ComputeForwardGeometry(conv, p.input_shape(), p.filter_shape(), geo));
      int64_t output[4];
      OutputDims(*geo, output);
      if (!p.out_backprop.empty() &&
          p.out_backprop != std::vector<int64_t>(output, output + 4)) {
        return Status::InvalidArgument(
            std::string(OpName(op)) + ": out_backprop_shape " +
            FormatDims(p.out_backprop.data(),
                       static_cast<int64_t>(p.out_backprop.size())) +
            " is not the output shape " + FormatDims(output, 4));
      }
      return Status::Ok();
    }
    case OpKind::kInputGrad: {
      const int64_t num_sizes = static_cast<int64_t>(p.input.size());
      return ComputeInputGradGeometry(conv, ShapeRef{&num_sizes, 1},
                                      p.input.data(), p.filter_shape(),
                                      p.out_backprop_shape(), geo);
    }
  }
  return Status::Internal("unknown op");
}

Status MakeParams(const dwop_problem* problem, const void* input,
                  const void* out_backprop, void* filter_backprop,
                  FilterGradParams* params) {
  DWOP_RETURN_IF_ERROR(
      Resolve(problem, OpKind::kFilterGrad, &params->geo, &params->dtype));
  const Geometry& g = params->geo;
  DWOP_RETURN_IF_ERROR(CheckBuffers({{g.input_elements(), input},
                                     {g.out_backprop_elements(), out_backprop},
                                     {g.filter_elements(), filter_backprop}}));
  params->input = input;
  params->out_backprop = out_backprop;
  params->filter_backprop = filter_backprop;
  return Status::Ok();
}

Status MakeParams(const dwop_problem* problem, const void* input,
                  const void* filter, void* output, ForwardParams* params) {
  DWOP_RETURN_IF_ERROR(
      Resolve(problem, OpKind::kForward, &params->geo, &params->dtype));
  const Geometry& g = params->geo;
  DWOP_RETURN_IF_ERROR(CheckBuffers({{g.input_elements(), input},
                                     {g.filter_elements(), filter},
                                     {g.out_backprop_elements(), output}}));
  params->input = input;
  params->filter = filter;
  params->output = output;
  return Status::Ok();
}

Status MakeParams(const dwop_problem* problem, const void* filter,
                  const void* out_backprop, void* in_backprop,
                  InputGradParams* params) {
  DWOP_RETURN_IF_ERROR(
      Resolve(problem, OpKind::kInputGrad, &params->geo, &params->dtype));
  const Geometry& g = params->geo;
  DWOP_RETURN_IF_ERROR(CheckBuffers({{g.filter_elements(), filter},
                                     {g.out_backprop_elements(), out_backprop},
                                     {g.input_elements(), in_backprop}}));
  params->filter = filter;
  params->out_backprop = out_backprop;
  params->in_backprop = in_backprop;
  return Status::Ok();
}

namespace {

// The reference kernels of the forward and the input gradient: validated,
// zero-filled when there is nothing to sum, then RunReference.
template <typename Params, typename A, typename B, typename Out>
dwop_status ReferenceEntry(const dwop_problem* problem, A a, B b, Out out,
                           char* error, size_t error_size) {
  const Status status = Guarded([&] {
    Params params;
    DWOP_RETURN_IF_ERROR(MakeParams(problem, a, b, out, &params));
    if (WriteZerosIfNothingToSum(params)) return Status::Ok();
    return RunReference(params);
  });
  return Report(status, error, error_size);
}

// The fast CPU kernels of the three ops: validated, zero-filled when there is
// nothing to sum, planned, given the plan's workspace, run on num_threads
// threads (ThreadsParallelFor).
template <typename Params, typename Plan, typename A, typename B, typename Out>
dwop_status CpuEntry(OpKind op, const dwop_problem* problem, A a, B b, Out out,
                     int32_t num_threads, char* error, size_t error_size) {
  const Status status = Guarded([&] {
    Params params;
    DWOP_RETURN_IF_ERROR(MakeParams(problem, a, b, out, &params));
    if (WriteZerosIfNothingToSum(params)) return Status::Ok();
    const Plan plan(params);
    const int64_t bytes = plan.workspace_bytes();
    DWOP_RETURN_IF_ERROR(CheckWorkspaceBytes(params.geo, bytes, op));
    AlignedBuffer workspace(bytes);
    if (bytes > 0 && workspace.data == nullptr) {
      return Status::ResourceExhausted("could not allocate " +
                                       std::to_string(bytes) +
                                       " bytes of CPU workspace");
    }
    return RunCpu(params, plan, workspace.data,
                  ThreadsParallelFor(num_threads));
  });
  return Report(status, error, error_size);
}

}  // namespace
}  // namespace dwop

extern "C" {

int32_t dwop_abi_version(void) { return DWOP_ABI_VERSION; }

dwop_status dwop_validate(const dwop_problem* problem, dwop_geometry* geometry,
                          char* error, size_t error_size) {
  dwop::FilterGradParams params;
  dwop::Status status = dwop::Guarded([&] {
    return dwop::Resolve(problem, dwop::OpKind::kFilterGrad, &params.geo,
                         &params.dtype);
  });
  const dwop::Geometry& g = params.geo;
  if (status.ok() && geometry != nullptr) {
    *geometry = dwop_geometry{g.batch,
                              g.in_rows,
                              g.in_cols,
                              g.in_depth,
                              g.depth_multiplier,
                              g.filter_rows,
                              g.filter_cols,
                              g.out_rows,
                              g.out_cols,
                              g.stride_rows,
                              g.stride_cols,
                              g.dilation_rows,
                              g.dilation_cols,
                              g.pad_top,
                              g.pad_left,
                              g.layout == dwop::Layout::kNCHW};
  }
  return dwop::Report(status, error, error_size);
}

dwop_status dwop_filter_grad_cpu(const dwop_problem* problem, const void* input,
                                 const void* out_backprop,
                                 void* filter_backprop, int32_t num_threads,
                                 char* error, size_t error_size) {
  return dwop::CpuEntry<dwop::FilterGradParams, dwop::CpuPlan>(
      dwop::OpKind::kFilterGrad, problem, input, out_backprop, filter_backprop,
      num_threads, error, error_size);
}

dwop_status dwop_forward_cpu(const dwop_problem* problem, const void* input,
                             const void* filter, void* output,
                             int32_t num_threads, char* error,
                             size_t error_size) {
  return dwop::CpuEntry<dwop::ForwardParams, dwop::CpuConvPlan>(
      dwop::OpKind::kForward, problem, input, filter, output, num_threads,
      error, error_size);
}

dwop_status dwop_input_grad_cpu(const dwop_problem* problem, const void* filter,
                                const void* out_backprop, void* in_backprop,
                                int32_t num_threads, char* error,
                                size_t error_size) {
  return dwop::CpuEntry<dwop::InputGradParams, dwop::CpuConvPlan>(
      dwop::OpKind::kInputGrad, problem, filter, out_backprop, in_backprop,
      num_threads, error, error_size);
}

const char* dwop_cpu_isa(void) { return dwop::CpuIsaName(); }

dwop_status dwop_filter_grad_reference(const dwop_problem* problem,
                                       const void* input,
                                       const void* out_backprop,
                                       void* filter_backprop, char* error,
                                       size_t error_size) {
  const dwop::Status status = dwop::Guarded([&] {
    dwop::FilterGradParams params;
    DWOP_RETURN_IF_ERROR(dwop::MakeParams(problem, input, out_backprop,
                                          filter_backprop, &params));
    if (dwop::WriteZerosIfNothingToSum(params)) return dwop::Status::Ok();
    return dwop::RunReference(params);
  });
  return dwop::Report(status, error, error_size);
}

dwop_status dwop_forward_reference(const dwop_problem* problem,
                                   const void* input, const void* filter,
                                   void* output, char* error,
                                   size_t error_size) {
  return dwop::ReferenceEntry<dwop::ForwardParams>(problem, input, filter,
                                                   output, error, error_size);
}

dwop_status dwop_input_grad_reference(const dwop_problem* problem,
                                      const void* filter,
                                      const void* out_backprop,
                                      void* in_backprop, char* error,
                                      size_t error_size) {
  return dwop::ReferenceEntry<dwop::InputGradParams>(
      problem, filter, out_backprop, in_backprop, error, error_size);
}

}  // extern "C"
