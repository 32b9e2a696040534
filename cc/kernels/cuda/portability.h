// The two-compiler portability layer of the CUDA kernel bodies
// (filter_grad_kernels.h, conv_kernels.h): nvcc compiles the bodies into
// __global__ kernels (the *.cu.cc launchers), the host compiler into the
// emulator (emulator.cc). Everything here computes the same bits on both:
// conversions round to nearest even, products are explicit fused
// multiply-adds (Fma), sums plain additions.
//
// A block's program is a sequence of Steps; a Step runs a function on every
// thread and ends with a barrier (__syncthreads on the device; on the host the
// next Step starts after the last thread). Per-thread registers live in a
// State object (a local variable on the device, one element per thread on the
// host). WarpSum is a butterfly of __shfl_xor_sync.
#ifndef DWOP_CC_KERNELS_CUDA_PORTABILITY_H_
#define DWOP_CC_KERNELS_CUDA_PORTABILITY_H_

#include <cstdint>
#include <type_traits>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/params.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define DWOP_DEVICE __device__ __forceinline__
#define DWOP_UNROLL _Pragma("unroll")
#else
#include <cmath>
#include <cstring>
#define DWOP_DEVICE inline
#define DWOP_UNROLL
#endif

namespace dwop {
namespace gpu {

// ---------------------------------------------------------------------------
// Element access and arithmetic, identical on both compilers.

template <typename T>
using Acc = typename AccumulatorOf<T>::type;

DWOP_DEVICE float ToAcc(float v) { return v; }
DWOP_DEVICE double ToAcc(double v) { return v; }
DWOP_DEVICE float ToAcc(half_t v) {
#if defined(__CUDACC__)
  return __half2float(__ushort_as_half(v.bits));
#else
  return ToFloat(v);
#endif
}
DWOP_DEVICE float ToAcc(bfloat16_t v) {
#if defined(__CUDACC__)
  return __uint_as_float(static_cast<unsigned>(v.bits) << 16);
#else
  return ToFloat(v);
#endif
}

// Rounds an accumulator to the storage type (to nearest even).
template <typename T>
DWOP_DEVICE T FromAcc(Acc<T> v);
template <>
DWOP_DEVICE float FromAcc<float>(float v) {
  return v;
}
template <>
DWOP_DEVICE double FromAcc<double>(double v) {
  return v;
}
template <>
DWOP_DEVICE half_t FromAcc<half_t>(float v) {
#if defined(__CUDACC__)
  return half_t{__half_as_ushort(__float2half_rn(v))};
#else
  return ToHalf(v);
#endif
}
template <>
DWOP_DEVICE bfloat16_t FromAcc<bfloat16_t>(float v) {
#if defined(__CUDACC__)
  return bfloat16_t{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
#else
  return ToBfloat16(v);
#endif
}

DWOP_DEVICE float Fma(float a, float b, float c) {
#if defined(__CUDACC__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
DWOP_DEVICE double Fma(double a, double b, double c) {
#if defined(__CUDACC__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// V consecutive elements in one aligned load (a 4-, 8- or 16-byte vector).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
DWOP_DEVICE void LoadVec(const T* p, Acc<T> (&out)[V]) {
#if defined(__CUDACC__)
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#else
  Pack<T, V> pack;
  std::memcpy(&pack, p, sizeof(pack));
#endif
  DWOP_UNROLL
  for (int v = 0; v < V; ++v) out[v] = ToAcc(pack.v[v]);
}

// Unroll<N>(f) calls f(Int<0>()), ..., f(Int<N-1>()): compile-time indices,
// so that per-thread arrays indexed by them stay in registers.
template <int I>
struct Int {
  static constexpr int value = I;
};

template <int I, int N, class F>
DWOP_DEVICE void UnrollFrom(F& f) {
  if constexpr (I < N) {
    f(Int<I>());
    UnrollFrom<I + 1, N>(f);
  }
}

template <int N, class F>
DWOP_DEVICE void Unroll(F&& f) {
  UnrollFrom<0, N>(f);
}

DWOP_DEVICE int Min(int a, int b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------
// The two executors of a block's program.

#if defined(__CUDACC__)
struct DeviceBlock {
  template <class State, class F>
  __device__ __forceinline__ void Step(State* state, F&& f) {
    f(static_cast<int>(threadIdx.x), *state);
    __syncthreads();
  }
  // Every lane ends with the sum of the warp's 32 values (the same bits on
  // every lane: a + b == b + a).
  template <class State, class Get>
  __device__ __forceinline__ void WarpSum(State* state, Get&& get) {
    auto& value = get(*state);
    for (int offset = 16; offset > 0; offset >>= 1) {
      value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
  }
};
#else
class HostBlock {
 public:
  explicit HostBlock(int threads) : threads_(threads) {}

  template <class State, class F>
  void Step(State* states, F&& f) {
    for (int t = 0; t < threads_; ++t) f(t, states[t]);
  }

  // The device's butterfly: at each level every lane adds its partner's
  // value from the previous level.
  template <class State, class Get>
  void WarpSum(State* states, Get&& get) {
    using Value = std::remove_reference_t<decltype(get(*states))>;
    for (int w = 0; w < threads_; w += 32) {
      for (int offset = 16; offset > 0; offset >>= 1) {
        Value partner[32];
        for (int l = 0; l < 32; ++l) partner[l] = get(states[w + (l ^ offset)]);
        for (int l = 0; l < 32; ++l) get(states[w + l]) += partner[l];
      }
    }
  }

 private:
  int threads_;
};
#endif

// The DType of a storage type.
template <typename T>
constexpr DType kDTypeOf = DType::kFloat;
template <>
constexpr DType kDTypeOf<double> = DType::kDouble;
template <>
constexpr DType kDTypeOf<half_t> = DType::kHalf;
template <>
constexpr DType kDTypeOf<bfloat16_t> = DType::kBfloat16;

}  // namespace gpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_PORTABILITY_H_
