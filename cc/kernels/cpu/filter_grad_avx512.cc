// The CPU kernel compiled for AVX-512 (F, BW, VL, DQ): 16 float or 8 double
// lanes, 32 vector registers, masked loads for channel tails, vcvtph2ps for
// half and a zero-extend-and-shift for bfloat16. Built with the flags of this
// file only (Makefile); runs only where cpu.cc found the ISA.
// GCC 12 warns inside its own AVX-512 headers wherever the masked and
// conversion intrinsics inline (the self-initialised _mm512_undefined_*, GCC
// bug 105593); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx512 {
namespace {

#include "cc/kernels/cpu/simd.inc"

inline __mmask16 Mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff)
                 : static_cast<__mmask16>((1u << n) - 1u);
}

inline __m256i LoadHalfWords(const uint16_t* p, int64_t n) {
  return n >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                 : _mm256_maskz_loadu_epi16(Mask16(n), p);
}

// In-register transpose of a 16x16 float tile: r[i][j] -> r[j][i].
inline void Transpose16(__m512* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {
    const __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
    u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  // u[4g + q], 128-bit lane k, holds rows 4g..4g+3 of column 4k + q.
  for (int q = 0; q < 4; ++q) {
    const __m512 v_lo = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
    const __m512 v_hi = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xee);
    const __m512 w_lo = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
    const __m512 w_hi = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xee);
    r[q] = _mm512_shuffle_f32x4(v_lo, w_lo, 0x88);
    r[4 + q] = _mm512_shuffle_f32x4(v_lo, w_lo, 0xdd);
    r[8 + q] = _mm512_shuffle_f32x4(v_hi, w_hi, 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(v_hi, w_hi, 0xdd);
  }
}

struct F32 : SimdBase<F32, float, 16> {
  using E = float;
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kMaxAcc = kAvx512Info.max_acc;
  static constexpr int kMaxAccShared = kAvx512Info.max_acc_shared;

  static V Zero() { return _mm512_setzero_ps(); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V Fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }

  static V LoadN(const float* p, int64_t n) {
    return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(Mask16(n), p);
  }
  static V LoadN(const HalfBits* p, int64_t n) {
    return _mm512_cvtph_ps(
        LoadHalfWords(reinterpret_cast<const uint16_t*>(p), n));
  }
  static V LoadN(const Bfloat16Bits* p, int64_t n) {
    const __m512i wide = _mm512_cvtepu16_epi32(
        LoadHalfWords(reinterpret_cast<const uint16_t*>(p), n));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }

  static V Permute(V v, const int32_t* idx, int64_t n) {
    return _mm512_maskz_permutexvar_ps(Mask16(n), _mm512_loadu_si512(idx), v);
  }

  template <class S>
  static void Transpose(const S* const* rows, int64_t nrows, int64_t ncols,
                        float* out) {
    __m512 r[16];
    for (int64_t i = 0; i < 16; ++i) {
      r[i] = i < nrows ? LoadN(rows[i], ncols) : Zero();
    }
    Transpose16(r);
    for (int64_t j = 0; j < ncols; ++j) Store(out + j * 16, r[j]);
  }
};

struct F64 : SimdBase<F64, double, 8> {
  using E = double;
  using V = __m512d;
  static constexpr int kLanes = 8;
  static constexpr int kMaxAcc = kAvx512Info.max_acc;
  static constexpr int kMaxAccShared = kAvx512Info.max_acc_shared;

  static V Zero() { return _mm512_setzero_pd(); }
  static V Load(const double* p) { return _mm512_loadu_pd(p); }
  static void Store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V Fma(V a, V b, V acc) { return _mm512_fmadd_pd(a, b, acc); }
  static V Add(V a, V b) { return _mm512_add_pd(a, b); }

  static V LoadN(const double* p, int64_t n) {
    return n >= 8 ? _mm512_loadu_pd(p)
                  : _mm512_maskz_loadu_pd(static_cast<__mmask8>(Mask16(n)), p);
  }

  static V Permute(V v, const int32_t* idx, int64_t n) {
    const __m512i wide = _mm512_cvtepi32_epi64(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)));
    return _mm512_maskz_permutexvar_pd(static_cast<__mmask8>(Mask16(n)), wide,
                                       v);
  }
};

#include "cc/kernels/cpu/filter_grad.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace avx512
}  // namespace cpu
}  // namespace dwop
