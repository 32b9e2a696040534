// ISA detection and dispatch of the CPU backend: which instruction-set level
// the CPU supports, which one DWOP_CPU_ISA asks for, and each level's name,
// register budget and filter-gradient entry point; and the size of the L3
// the planners size streaming by. Compiled with the baseline flags like the
// rest of the library.
#include "cc/kernels/cpu/isa.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cc/kernels/cpu/cpu.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace {

Isa DetectIsa() {
#if defined(__x86_64__) || defined(__i386__)
  static const Isa best = [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") &&
                      __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq");
    return avx512 ? Isa::kAvx512 : avx2 ? Isa::kAvx2 : Isa::kGeneric;
  }();
  return best;
#else
  return Isa::kGeneric;
#endif
}

// Each level's DWOP_CPU_ISA name, register budget and chunk function,
// indexed by Isa.
struct IsaLevel {
  const char* name;
  const IsaInfo* info;
  RunChunkFn run_chunk;
};
constexpr IsaLevel kIsaLevels[] = {
    {"generic", &kGenericInfo, &generic::RunChunk},
    {"avx2", &kAvx2Info, &avx2::RunChunk},
    {"avx512", &kAvx512Info, &avx512::RunChunk},
};

const IsaLevel& LevelOf(Isa isa) { return kIsaLevels[static_cast<int>(isa)]; }

}  // namespace

// DWOP_CPU_ISA, read on every call so that a process (a test) can switch
// levels between calls. A level the CPU lacks degrades to the best it has;
// an unknown value is reported once on stderr and ignored.
Isa ActiveIsa() {
  const Isa best = DetectIsa();
  const char* env = std::getenv("DWOP_CPU_ISA");
  if (env == nullptr || env[0] == '\0' || std::strcmp(env, "auto") == 0) {
    return best;
  }
  for (const IsaLevel& level : kIsaLevels) {
    if (std::strcmp(env, level.name) == 0) {
      return std::min(static_cast<Isa>(&level - kIsaLevels), best);
    }
  }
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    std::fprintf(stderr,
                 "dwop: ignoring DWOP_CPU_ISA=%s (expected avx512, avx2, "
                 "generic or auto)\n",
                 env);
  }
  return best;
}

// The first cache of level 3 that cpu0 lists; sizes come as "8192K".
int64_t L3CacheBytes() {
  static const int64_t bytes = [] {
    int64_t found = 0;
    for (int index = 0; index < 8; ++index) {
      const std::string dir =
          "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
      FILE* level_file = std::fopen((dir + "/level").c_str(), "r");
      if (level_file == nullptr) break;
      int level = 0;
      const bool read_level = std::fscanf(level_file, "%d", &level) == 1;
      std::fclose(level_file);
      if (!read_level || level != 3) continue;
      FILE* size_file = std::fopen((dir + "/size").c_str(), "r");
      if (size_file == nullptr) break;
      long long size = 0;  // NOLINT(runtime/int): fscanf's %lld
      char unit = 0;
      const int fields = std::fscanf(size_file, "%lld%c", &size, &unit);
      std::fclose(size_file);
      if (fields >= 1 && size > 0) {
        found = size * (unit == 'K'   ? 1 << 10
                        : unit == 'M' ? 1 << 20
                        : unit == 'G' ? 1 << 30
                                      : 1);
      }
      break;
    }
    return found;
  }();
  return bytes;
}

const IsaInfo& InfoOf(Isa isa) { return *LevelOf(isa).info; }
const char* NameOf(Isa isa) { return LevelOf(isa).name; }
RunChunkFn RunChunkOf(Isa isa) { return LevelOf(isa).run_chunk; }

}  // namespace cpu

const char* CpuIsaName() { return cpu::NameOf(cpu::ActiveIsa()); }

}  // namespace dwop
