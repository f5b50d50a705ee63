// metajit kernel prelude: types and helpers with the semantics of metajit.opset.SEMANTICS,
// shared by every C-family backend. One text serves three dialects, chosen by the
// compiler's own macros:
//   host C++ (g++/clang)        MJ_INLINE = static inline, math through GCC builtins
//   CUDA (nvcc / NVRTC)         MJ_INLINE = static __device__ __forceinline__, CUDA math
//   BANG-style (__BANG__)       MJ_INLINE = static __mlu_func__ inline, builtins
// Header-free on the host on purpose (GCC builtins instead of <cmath>): small compiles.
#ifndef MJ_PRELUDE_H
#define MJ_PRELUDE_H
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define MJ_INLINE static __device__ __forceinline__
#define MJ_MATH(name) name
#ifndef MJ_F16_TYPE
#include <cuda_fp16.h>
#define MJ_F16_TYPE __half
#endif
#define MJ_NAN __longlong_as_double(0x7ff8000000000000LL)
#define MJ_INF __longlong_as_double(0x7ff0000000000000LL)
#elif defined(__BANG__)
#define MJ_INLINE static __mlu_func__ inline
#define MJ_MATH(name) __builtin_##name
#ifndef MJ_F16_TYPE
#define MJ_F16_TYPE half
#endif
#define MJ_NAN __builtin_nan("")
#define MJ_INF __builtin_inf()
#else
#define MJ_INLINE static inline
#define MJ_MATH(name) __builtin_##name
#ifndef MJ_F16_TYPE
#define MJ_F16_TYPE _Float16
#endif
#define MJ_NAN __builtin_nan("")
#define MJ_INF __builtin_inf()
#endif

typedef signed char mj_i8; typedef unsigned char mj_u8; typedef short mj_i16;
typedef int mj_i32; typedef long long mj_i64; typedef MJ_F16_TYPE mj_f16;

// b == -1 is special-cased for signed types: MIN / -1 traps on x86; numpy wraps it
// (-fwrapv makes -a wrap). For unsigned types (T)-1 is the largest value, an ordinary divisor.
template <class T> MJ_INLINE T mj_idiv(T a, T b) {
  if (b == 0) return 0;
  if ((T)-1 < (T)0 && b == (T)-1) return (T)-a;
  T q = a / b;
  return (q * b != a && ((a < 0) != (b < 0))) ? (T)(q - 1) : q;
}
template <class T> MJ_INLINE T mj_imod(T a, T b) {
  if (b == 0 || ((T)-1 < (T)0 && b == (T)-1)) return 0;
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
}
MJ_INLINE mj_i64 mj_clamp(mj_i64 v, mj_i64 lo, mj_i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }
MJ_INLINE mj_i64 mj_imin(mj_i64 a, mj_i64 b) { return a < b ? a : b; }
MJ_INLINE mj_i64 mj_imax(mj_i64 a, mj_i64 b) { return a > b ? a : b; }
template <class T> MJ_INLINE T mj_ipow(T base, T exponent) {
  if (exponent < 0) return 0;
  T result = 1;
  while (exponent) { if (exponent & 1) result = (T)(result * base); base = (T)(base * base); exponent >>= 1; }
  return result;
}
template <class T> MJ_INLINE T mj_maximum(T a, T b) { return (a > b || a != a) ? a : b; }
template <class T> MJ_INLINE T mj_minimum(T a, T b) { return (a < b || a != a) ? a : b; }

#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(__BANG__)
#define MJ_EXPF(x) MJ_MATH(expf)(x)
#define MJ_ERFF(x) MJ_MATH(erff)(x)
#define MJ_TANHF(x) MJ_MATH(tanhf)(x)
#else
// float exp that GCC vectorises (glibc's expf is a call per element without fast-math):
// exp(x) = 2^n exp(r) with x = n ln2 + r (Cody-Waite, |r| <= ln2/2) and Cephes' polynomial
// for exp(r); 2^n is applied as two powers of two that are normal floats, so an underflow
// to a subnormal rounds once. Within 1 ulp of the correctly rounded value for every float
// tested (23 million, every exponent); inf, -inf, nan, overflow and underflow as expf.
MJ_INLINE float mj_host_expf(float x) {
  float clamped = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
  // nearest integer by adding and taking away 1.5 * 2^23 (floorf does not vectorise)
  float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int k = (int)n, half = k >> 1;
  float result = p * __builtin_bit_cast(float, (half + 127) << 23) * __builtin_bit_cast(float, (k - half + 127) << 23);
  result = x > 88.72283935546875f ? __builtin_inff() : result;
  return x != x ? x : result;
}
#define MJ_EXPF(x) mj_host_expf(x)

MJ_INLINE float mj_abs_bits(float x) { return __builtin_bit_cast(float, __builtin_bit_cast(unsigned, x) & 0x7fffffffu); }
// a non-negative `magnitude` with the sign of `sign` (copysignf is a call in some builds; bit
// operations vectorise).
MJ_INLINE float mj_with_sign(float magnitude, float sign) {
  return __builtin_bit_cast(float, __builtin_bit_cast(unsigned, magnitude) | (__builtin_bit_cast(unsigned, sign) & 0x80000000u));
}

// float erf that vectorises: x + x P(x^2) below 0.875 (a polynomial fitted to erf(x)/x - 1 in
// x^2), and 1 - exp(-x^2) Q(|x|) above it, Q fitted to exp(x^2) erfc(x) on [0.875, 4] (erf
// rounds to 1 beyond 3.92). Both polynomials are our own weighted minimax fits; within 1.25 ulp
// of the correctly rounded value for every float (checked exhaustively); +-0, +-inf, nan as erff.
MJ_INLINE float mj_host_erff(float x) {
  float a = mj_abs_bits(x);
  float t = a * a;
  float p = 7.847265806e-05f;
  p = p * t + -8.008197183e-04f;
  p = p * t + 5.188100506e-03f;
  p = p * t + -2.685369179e-02f;
  p = p * t + 1.128358245e-01f;
  p = p * t + -3.761262596e-01f;
  p = p * t + 1.283791661e-01f;
  float near_zero = x + x * p;
  float c = a > 4.0f ? 4.0f : a;
  float s = c - 2.4375f;
  float q = -3.879277574e-05f;
  q = q * s + -9.710251470e-05f;
  q = q * s + -2.076881356e-04f;
  q = q * s + 2.333873854e-04f;
  q = q * s + -6.842797156e-04f;
  q = q * s + 2.812908264e-03f;
  q = q * s + -8.636101149e-03f;
  q = q * s + 2.648410015e-02f;
  q = q * s + -7.756507397e-02f;
  q = q * s + 2.155523300e-01f;
  float far = mj_with_sign(1.0f - mj_host_expf(-(c * c)) * q, x);
  return a < 0.875f ? near_zero : far;
}
#define MJ_ERFF(x) mj_host_erff(x)

// float tanh that vectorises: x + x^3 P(x^2) below 0.875 (P fitted to (tanh(x)/x - 1)/x^2), and
// 1 - 2/(exp(2|x|) + 1) above it (tanh rounds to 1 beyond 9.01). Within 1.05 ulp of the correctly
// rounded value for every float (checked exhaustively); +-0, +-inf, nan as tanhf.
MJ_INLINE float mj_host_tanhf(float x) {
  float a = mj_abs_bits(x);
  float t = a * a;
  float p = -4.824097268e-04f;
  p = p * t + 2.650988055e-03f;
  p = p * t + -8.331918158e-03f;
  p = p * t + 2.169603109e-02f;
  p = p * t + -5.393716693e-02f;
  p = p * t + 1.333306432e-01f;
  p = p * t + -3.333332539e-01f;
  float near_zero = a + a * (t * p);
  float c = a > 10.0f ? 10.0f : a;
  float far = 1.0f - 2.0f / (mj_host_expf(c + c) + 1.0f);
  return mj_with_sign(a < 0.875f ? near_zero : far, x);
}
#define MJ_TANHF(x) mj_host_tanhf(x)
#endif

#define MJ_FLOAT_UNARY(name, fexpr, dexpr) \
  MJ_INLINE float mj_##name(float x) { return fexpr; } \
  MJ_INLINE double mj_##name(double x) { return dexpr; } \
  MJ_INLINE mj_f16 mj_##name(mj_f16 x) { return (mj_f16)mj_##name((float)x); }
MJ_FLOAT_UNARY(exp, MJ_EXPF(x), MJ_MATH(exp)(x))
MJ_FLOAT_UNARY(log, MJ_MATH(logf)(x), MJ_MATH(log)(x))
MJ_FLOAT_UNARY(log1p, MJ_MATH(log1pf)(x), MJ_MATH(log1p)(x))
MJ_FLOAT_UNARY(expm1, MJ_MATH(expm1f)(x), MJ_MATH(expm1)(x))
MJ_FLOAT_UNARY(sqrt, MJ_MATH(sqrtf)(x), MJ_MATH(sqrt)(x))
MJ_FLOAT_UNARY(sin, MJ_MATH(sinf)(x), MJ_MATH(sin)(x))
MJ_FLOAT_UNARY(cos, MJ_MATH(cosf)(x), MJ_MATH(cos)(x))
MJ_FLOAT_UNARY(tan, MJ_MATH(tanf)(x), MJ_MATH(tan)(x))
MJ_FLOAT_UNARY(asin, MJ_MATH(asinf)(x), MJ_MATH(asin)(x))
MJ_FLOAT_UNARY(acos, MJ_MATH(acosf)(x), MJ_MATH(acos)(x))
MJ_FLOAT_UNARY(atan, MJ_MATH(atanf)(x), MJ_MATH(atan)(x))
MJ_FLOAT_UNARY(sinh, MJ_MATH(sinhf)(x), MJ_MATH(sinh)(x))
MJ_FLOAT_UNARY(cosh, MJ_MATH(coshf)(x), MJ_MATH(cosh)(x))
MJ_FLOAT_UNARY(tanh, MJ_TANHF(x), MJ_MATH(tanh)(x))
MJ_FLOAT_UNARY(asinh, MJ_MATH(asinhf)(x), MJ_MATH(asinh)(x))
MJ_FLOAT_UNARY(acosh, MJ_MATH(acoshf)(x), MJ_MATH(acosh)(x))
MJ_FLOAT_UNARY(atanh, MJ_MATH(atanhf)(x), MJ_MATH(atanh)(x))
MJ_FLOAT_UNARY(erf, MJ_ERFF(x), MJ_MATH(erf)(x))
MJ_FLOAT_UNARY(floor, MJ_MATH(floorf)(x), MJ_MATH(floor)(x))
MJ_FLOAT_UNARY(ceil, MJ_MATH(ceilf)(x), MJ_MATH(ceil)(x))
MJ_FLOAT_UNARY(round, MJ_MATH(nearbyintf)(x), MJ_MATH(nearbyint)(x))
MJ_FLOAT_UNARY(abs, MJ_MATH(fabsf)(x), MJ_MATH(fabs)(x))
MJ_FLOAT_UNARY(sigmoid, 1.0f / (1.0f + MJ_EXPF(-x)), 1.0 / (1.0 + MJ_MATH(exp)(-x)))

MJ_INLINE float mj_pow(float a, float b) { return MJ_MATH(powf)(a, b); }
MJ_INLINE double mj_pow(double a, double b) { return MJ_MATH(pow)(a, b); }
MJ_INLINE mj_f16 mj_pow(mj_f16 a, mj_f16 b) { return (mj_f16)MJ_MATH(powf)((float)a, (float)b); }
template <class T> MJ_INLINE T mj_pow(T a, T b) { return mj_ipow(a, b); }

// numpy's float floor-division and modulo (divmod with the divisor's sign).
MJ_INLINE double mj_fmod_floor(double a, double b, double* quotient) {
  double mod = MJ_MATH(fmod)(a, b);
  if (b == 0) { *quotient = a / b; return mod; }
  double div = (a - mod) / b;
  if (mod != 0) { if ((b < 0) != (mod < 0)) { mod += b; div -= 1.0; } }
  else { mod = MJ_MATH(copysign)(0.0, b); }
  double floordiv;
  if (div != 0) { floordiv = MJ_MATH(floor)(div); if (div - floordiv > 0.5) floordiv += 1.0; }
  else { floordiv = MJ_MATH(copysign)(0.0, a / b); }
  *quotient = floordiv;
  return mod;
}
MJ_INLINE double mj_ffloordiv(double a, double b) { double q; mj_fmod_floor(a, b, &q); return q; }
MJ_INLINE double mj_fmod(double a, double b) { double q; return mj_fmod_floor(a, b, &q); }
MJ_INLINE float mj_ffloordiv(float a, float b) {
  float mod = MJ_MATH(fmodf)(a, b);
  if (b == 0) return a / b;
  float div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0f;
  if (div != 0) { float f = MJ_MATH(floorf)(div); return (div - f > 0.5f) ? f + 1.0f : f; }
  return MJ_MATH(copysignf)(0.0f, a / b);
}
MJ_INLINE float mj_fmod(float a, float b) {
  float mod = MJ_MATH(fmodf)(a, b);
  if (b == 0) return mod;
  if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
  else mod = MJ_MATH(copysignf)(0.0f, b);
  return mod;
}
MJ_INLINE mj_f16 mj_ffloordiv(mj_f16 a, mj_f16 b) { return (mj_f16)mj_ffloordiv((float)a, (float)b); }
MJ_INLINE mj_f16 mj_fmod(mj_f16 a, mj_f16 b) { return (mj_f16)mj_fmod((float)a, (float)b); }
#endif  // MJ_PRELUDE_H
