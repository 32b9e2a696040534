// The driver of the CPU filter gradient: makes the plan (plan.cc) at the ISA
// level isa.cc picks, runs its chunks through the caller's ParallelFor in the
// level's unit (filter_grad_<level>.cc) and sums the pieces' partial
// gradients in a fixed order. Compiled with the baseline flags like the rest
// of the library.
#include "cc/kernels/cpu/cpu.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/cpu/driver.h"
#include "cc/kernels/cpu/isa.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace {

// Sums the pieces' partial gradients of out channels [oc_begin, oc_end) in
// piece order (so the result does not depend on which thread runs this) and
// stores them as T, rounding once. The sum builds up in piece 0's partials:
// the group is summed once, and a worker thread must not allocate (a
// bad_alloc there could not reach the caller).
template <typename T>
void StoreSum(const Plan& p, int64_t oc_begin, int64_t oc_end, T* out) {
  using Acc = typename AccumulatorOf<T>::type;
  Acc* partials = static_cast<Acc*>(p.partials);
  const int64_t piece_stride = p.taps() * p.partial_depth;
  const int64_t width = oc_end - oc_begin;
  for (int64_t tap = 0; tap < p.taps(); ++tap) {
    Acc* sum = partials + tap * p.partial_depth + oc_begin;
    for (int64_t piece = 1; piece < p.num_pieces; ++piece) {
      const Acc* part = sum + piece * piece_stride;
      for (int64_t i = 0; i < width; ++i) sum[i] += part[i];
    }
    T* dst = out + tap * p.out_depth + oc_begin;
    for (int64_t i = 0; i < width; ++i) Store(dst + i, sum[i]);
  }
}

}  // namespace

// Per-thread staging memory. The workspace cannot hold it: CpuPlan
// does not know how many threads the caller's pool will use. Grown on demand
// (bounded by the planner's kStageBudget plus small tables) and kept for the
// thread's lifetime, so steady-state calls allocate nothing.
void* ThreadScratch(int64_t bytes) {
  struct Buffer {
    void* data = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.size < bytes) {
    std::free(buffer.data);
    buffer.data = std::aligned_alloc(
        kScratchAlign,
        static_cast<size_t>(CeilDiv(bytes, kScratchAlign) * kScratchAlign));
    buffer.size = buffer.data != nullptr ? bytes : 0;
  }
  return buffer.data;
}

}  // namespace cpu

CpuPlan::CpuPlan(const FilterGradParams& params) {
  if (NothingToSum(params.geo)) return;
  storage_ = std::make_unique<cpu::PlanStorage>();
  storage_->isa = cpu::ActiveIsa();
  cpu::MakePlan(params.geo, params.dtype, storage_->isa, storage_.get());
}

CpuPlan::~CpuPlan() = default;

int64_t CpuPlan::workspace_bytes() const {
  return storage_ != nullptr ? cpu::PartialBytes(storage_->plan) : 0;
}

Status RunCpu(const FilterGradParams& params, const CpuPlan& cpu_plan,
              void* workspace, const ParallelFor& parallel_for) {
  if (WriteZerosIfNothingToSum(params)) return Status::Ok();
  const cpu::Isa isa = cpu_plan.storage_->isa;
  cpu::Plan plan = cpu_plan.storage_->plan;
  plan.input = params.input;
  plan.out_backprop = params.out_backprop;
  plan.partials = workspace;

  // The last chunk of a channel group to finish sums that group's pieces:
  // no second parallel pass, and the sum order is fixed regardless.
  std::function<void(int64_t)> store_group;
  cpu::ForType(params.dtype, [&](auto zero) {
    using T = decltype(zero);
    T* out = static_cast<T*>(params.filter_backprop);
    store_group = [&plan, out](int64_t group) {
      const int64_t width = plan.group_blocks * plan.lanes;
      cpu::StoreSum(plan, group * width,
                    std::min(plan.out_depth, (group + 1) * width), out);
    };
  });
  std::unique_ptr<std::atomic<int64_t>[]> finished(
      new std::atomic<int64_t>[plan.num_groups]);
  for (int64_t i = 0; i < plan.num_groups; ++i) finished[i] = 0;

  const cpu::RunChunkFn run_chunk = cpu::RunChunkOf(isa);
  std::atomic<bool> out_of_memory{false};
  parallel_for(
      plan.num_chunks(),
      cpu::SaturatingInt64(plan.work / plan.num_chunks()) + 1000,
      [&](int64_t begin, int64_t end) {
        void* scratch = cpu::ThreadScratch(plan.scratch.bytes);
        if (scratch == nullptr) {
          out_of_memory = true;
          return;
        }
        for (int64_t c = begin; c < end; ++c) {
          run_chunk(plan, c, scratch);
          const int64_t group = c % plan.num_groups;
          if (finished[group].fetch_add(1, std::memory_order_acq_rel) + 1 ==
              plan.num_pieces) {
            store_group(group);
          }
        }
      });
  if (out_of_memory) {
    return Status::ResourceExhausted("could not allocate " +
                                     std::to_string(plan.scratch.bytes) +
                                     " bytes of CPU staging memory");
  }
  return Status::Ok();
}

}  // namespace dwop
