// ISA detection and dispatch of the CPU backend (isa.cc): which level runs,
// its register budget and its filter-gradient entry point. Shared by both
// drivers (cpu.cc: filter gradient, conv.cc: forward and input gradient) and
// the planners; not for the ISA units (they are the levels).
#ifndef DWOP_CC_KERNELS_CPU_ISA_H_
#define DWOP_CC_KERNELS_CPU_ISA_H_

#include <cstdint>

#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {

// The level DWOP_CPU_ISA asks for (read on every call), degraded to the best
// the CPU has.
Isa ActiveIsa();

// The level's register budget (plan.h), its DWOP_CPU_ISA name and its
// filter-gradient chunk function (plan.h: RunChunk of the level's unit).
const IsaInfo& InfoOf(Isa isa);
const char* NameOf(Isa isa);
using RunChunkFn = void (*)(const Plan& plan, int64_t chunk, void* scratch);
RunChunkFn RunChunkOf(Isa isa);

// The last-level (L3) cache as the operating system reports it to this
// process (Linux: /sys/devices/system/cpu/cpu0/cache, what lscpu shows; a
// virtual machine's share there, where cpuid may give the host's), read
// once; 0 where unknown.
int64_t L3CacheBytes();

}  // namespace cpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_ISA_H_
