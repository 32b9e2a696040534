// Scalar conversions between float32 and the two 16-bit formats, bit-exact with
// TensorFlow's Eigen::half and Eigen::bfloat16 (round to nearest even, NaN kept
// quiet). Kernels use them where no vector conversion applies (tails, the
// final store, the reference); the hot loops convert with SIMD instructions.
#ifndef DWOP_CC_KERNELS_FLOAT16_H_
#define DWOP_CC_KERNELS_FLOAT16_H_

#include <cstdint>
#include <cstring>

namespace dwop {

// Storage types: TensorFlow's half and bfloat16 are 16-bit PODs with the same
// layout, so buffers pass through the glue as these.
struct half_t {
  uint16_t bits;
};
struct bfloat16_t {
  uint16_t bits;
};

inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float ToFloat(bfloat16_t v) {
  return BitsToFloat(static_cast<uint32_t>(v.bits) << 16);
}

inline bfloat16_t ToBfloat16(float f) {
  uint32_t u = FloatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, make it quiet
    return bfloat16_t{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bfloat16_t{static_cast<uint16_t>(u >> 16)};
}

inline float ToFloat(half_t v) {
  const uint32_t sign = static_cast<uint32_t>(v.bits & 0x8000u) << 16;
  const uint32_t exponent = (v.bits >> 10) & 0x1fu;
  const uint32_t mantissa = v.bits & 0x3ffu;
  if (exponent == 0x1f) {  // inf or NaN
    return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline half_t ToHalf(float f) {
  const uint32_t u = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN
    return half_t{
        static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu))};
  }
  if (abs >= 0x477ff000u) {  // rounds to a value >= 65520: infinity
    return half_t{static_cast<uint16_t>(sign | 0x7c00u)};
  }
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14)
    // Adding 0.5 makes the FPU round the mantissa to a multiple of 2^-24
    // (nearest even); the low bits then hold the subnormal half.
    const float shifted = BitsToFloat(abs) + 0.5f;
    return half_t{static_cast<uint16_t>(
        sign | (FloatToBits(shifted) - FloatToBits(0.5f)))};
  }
  // Normal: rebias the exponent and round the 13 dropped bits to nearest even.
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  rounded -= 112u << 23;
  return half_t{static_cast<uint16_t>(sign | (rounded >> 13))};
}

// Load/store helpers that make kernels generic over the four types.
inline float Load(const half_t* p) { return ToFloat(*p); }
inline float Load(const bfloat16_t* p) { return ToFloat(*p); }
inline float Load(const float* p) { return *p; }
inline double Load(const double* p) { return *p; }
inline void Store(half_t* p, float v) { *p = ToHalf(v); }
inline void Store(bfloat16_t* p, float v) { *p = ToBfloat16(v); }
inline void Store(float* p, float v) { *p = v; }
inline void Store(double* p, double v) { *p = v; }

// The type dwop accumulates T in: float for the 16-bit types and float,
// double for double.
template <typename T>
struct AccumulatorOf {
  using type = float;
};
template <>
struct AccumulatorOf<double> {
  using type = double;
};

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_FLOAT16_H_
