// The CPU kernel compiled for AVX2 + FMA + F16C: 8 float or 4 double lanes,
// 16 vector registers (so smaller tap blocks than AVX-512), vmaskmov loads
// for channel tails. Built with the flags of this file only (Makefile).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx2 {
namespace {

#include "cc/kernels/cpu/simd.inc"

// Lanes [0, n) set.
inline __m256i LaneMask32(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m128i LoadHalfWords(const uint16_t* p, int64_t n) {
  if (n >= 8) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  alignas(16) uint16_t tmp[8] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(uint16_t));
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

// In-register transpose of an 8x8 float tile: r[i][j] -> r[j][i].
inline void Transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 8; g += 4) {
    u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xee);
    u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xee);
  }
  // u[4g + q], 128-bit lane k, holds rows 4g..4g+3 of column 4k + q.
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
    r[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
  }
}

struct F32 : SimdBase<F32, float, 8> {
  using E = float;
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kMaxAcc = kAvx2Info.max_acc;
  static constexpr int kMaxAccShared = kAvx2Info.max_acc_shared;

  static V Zero() { return _mm256_setzero_ps(); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V Fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }

  static V LoadN(const float* p, int64_t n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, LaneMask32(n));
  }
  static V LoadN(const HalfBits* p, int64_t n) {
    return _mm256_cvtph_ps(
        LoadHalfWords(reinterpret_cast<const uint16_t*>(p), n));
  }
  static V LoadN(const Bfloat16Bits* p, int64_t n) {
    const __m256i wide = _mm256_cvtepu16_epi32(
        LoadHalfWords(reinterpret_cast<const uint16_t*>(p), n));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }

  static V Permute(V v, const int32_t* idx, int64_t n) {
    const V moved = _mm256_permutevar8x32_ps(
        v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)));
    return _mm256_and_ps(moved, _mm256_castsi256_ps(LaneMask32(n)));
  }

  template <class S>
  static void Transpose(const S* const* rows, int64_t nrows, int64_t ncols,
                        float* out) {
    __m256 r[8];
    for (int64_t i = 0; i < 8; ++i) {
      r[i] = i < nrows ? LoadN(rows[i], ncols) : Zero();
    }
    Transpose8(r);
    for (int64_t j = 0; j < ncols; ++j) Store(out + j * 8, r[j]);
  }
};

struct F64 : SimdBase<F64, double, 4> {
  using E = double;
  using V = __m256d;
  static constexpr int kLanes = 4;
  static constexpr int kMaxAcc = kAvx2Info.max_acc;
  static constexpr int kMaxAccShared = kAvx2Info.max_acc_shared;

  static V Zero() { return _mm256_setzero_pd(); }
  static V Load(const double* p) { return _mm256_loadu_pd(p); }
  static void Store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V Fma(V a, V b, V acc) { return _mm256_fmadd_pd(a, b, acc); }
  static V Add(V a, V b) { return _mm256_add_pd(a, b); }

  static V LoadN(const double* p, int64_t n) {
    if (n >= 4) return _mm256_loadu_pd(p);
    const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n),
                                            _mm256_setr_epi64x(0, 1, 2, 3));
    return _mm256_maskload_pd(p, mask);
  }
};

#include "cc/kernels/cpu/filter_grad.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace avx2
}  // namespace cpu
}  // namespace dwop
