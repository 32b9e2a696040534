// The CPU kernel in portable C++: GCC/Clang vector extensions of 16 bytes
// (4 floats or 2 doubles), which the compiler maps to the baseline ISA (SSE2
// on x86-64) or to plain scalar code. The fallback for CPUs without AVX2 and
// the reference point of DWOP_CPU_ISA=generic.
#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"
#include "cc/kernels/common/float16.h"

namespace dwop {
namespace cpu {
namespace generic {
namespace {

#include "cc/kernels/cpu/simd.inc"

template <typename Elem, int kL>
struct VectorExtTraits : SimdBase<VectorExtTraits<Elem, kL>, Elem, kL> {
  using E = Elem;
  typedef Elem V __attribute__((vector_size(kL * sizeof(Elem))));
  static constexpr int kLanes = kL;
  static constexpr int kMaxAcc = kGenericInfo.max_acc;
  static constexpr int kMaxAccShared = kGenericInfo.max_acc_shared;

  static V Zero() { return V{}; }
  static V Load(const E* p) {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(E* p, V v) { std::memcpy(p, &v, sizeof(v)); }
  static V Fma(V a, V b, V acc) { return acc + a * b; }
  static V Add(V a, V b) { return a + b; }

  template <class S>
  static V LoadN(const S* p, int64_t n) {
    E tmp[kL] = {};
    for (int64_t i = 0; i < n && i < kL; ++i) tmp[i] = Widen(p[i]);
    return Load(tmp);
  }

  static E Widen(float v) { return v; }
  static E Widen(double v) { return v; }
  static E Widen(HalfBits v) { return ToFloat(half_t{v.bits}); }
  static E Widen(Bfloat16Bits v) { return ToFloat(bfloat16_t{v.bits}); }
};

using F32 = VectorExtTraits<float, 4>;
using F64 = VectorExtTraits<double, 2>;

#include "cc/kernels/cpu/filter_grad.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace generic
}  // namespace cpu
}  // namespace dwop
