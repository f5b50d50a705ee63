// metajit CPU kernel prelude: types and helpers with the semantics of metajit.opset.SEMANTICS.
// Header-free on purpose (GCC builtins instead of <cmath>) to keep compiles fast.
typedef signed char mj_i8; typedef unsigned char mj_u8; typedef short mj_i16;
typedef int mj_i32; typedef long long mj_i64; typedef _Float16 mj_f16;

// b == -1 is special-cased for signed types: MIN / -1 traps on x86; numpy wraps it
// (-fwrapv makes -a wrap). For unsigned types (T)-1 is the largest value, an ordinary divisor.
template <class T> static inline T mj_idiv(T a, T b) {
  if (b == 0) return 0;
  if ((T)-1 < (T)0 && b == (T)-1) return (T)-a;
  T q = a / b;
  return (q * b != a && ((a < 0) != (b < 0))) ? (T)(q - 1) : q;
}
template <class T> static inline T mj_imod(T a, T b) {
  if (b == 0 || ((T)-1 < (T)0 && b == (T)-1)) return 0;
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
}
static inline mj_i64 mj_clamp(mj_i64 v, mj_i64 lo, mj_i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline mj_i64 mj_imin(mj_i64 a, mj_i64 b) { return a < b ? a : b; }
static inline mj_i64 mj_imax(mj_i64 a, mj_i64 b) { return a > b ? a : b; }
template <class T> static inline T mj_ipow(T base, T exponent) {
  if (exponent < 0) return 0;
  T result = 1;
  while (exponent) { if (exponent & 1) result = (T)(result * base); base = (T)(base * base); exponent >>= 1; }
  return result;
}
template <class T> static inline T mj_maximum(T a, T b) { return (a > b || a != a) ? a : b; }
template <class T> static inline T mj_minimum(T a, T b) { return (a < b || a != a) ? a : b; }

#define MJ_FLOAT_UNARY(name, fexpr, dexpr) \
  static inline float mj_##name(float x) { return fexpr; } \
  static inline double mj_##name(double x) { return dexpr; } \
  static inline mj_f16 mj_##name(mj_f16 x) { return (mj_f16)mj_##name((float)x); }
MJ_FLOAT_UNARY(exp, __builtin_expf(x), __builtin_exp(x))
MJ_FLOAT_UNARY(log, __builtin_logf(x), __builtin_log(x))
MJ_FLOAT_UNARY(sqrt, __builtin_sqrtf(x), __builtin_sqrt(x))
MJ_FLOAT_UNARY(sin, __builtin_sinf(x), __builtin_sin(x))
MJ_FLOAT_UNARY(cos, __builtin_cosf(x), __builtin_cos(x))
MJ_FLOAT_UNARY(tan, __builtin_tanf(x), __builtin_tan(x))
MJ_FLOAT_UNARY(asin, __builtin_asinf(x), __builtin_asin(x))
MJ_FLOAT_UNARY(acos, __builtin_acosf(x), __builtin_acos(x))
MJ_FLOAT_UNARY(atan, __builtin_atanf(x), __builtin_atan(x))
MJ_FLOAT_UNARY(sinh, __builtin_sinhf(x), __builtin_sinh(x))
MJ_FLOAT_UNARY(cosh, __builtin_coshf(x), __builtin_cosh(x))
MJ_FLOAT_UNARY(tanh, __builtin_tanhf(x), __builtin_tanh(x))
MJ_FLOAT_UNARY(asinh, __builtin_asinhf(x), __builtin_asinh(x))
MJ_FLOAT_UNARY(acosh, __builtin_acoshf(x), __builtin_acosh(x))
MJ_FLOAT_UNARY(atanh, __builtin_atanhf(x), __builtin_atanh(x))
MJ_FLOAT_UNARY(erf, __builtin_erff(x), __builtin_erf(x))
MJ_FLOAT_UNARY(floor, __builtin_floorf(x), __builtin_floor(x))
MJ_FLOAT_UNARY(ceil, __builtin_ceilf(x), __builtin_ceil(x))
MJ_FLOAT_UNARY(round, __builtin_nearbyintf(x), __builtin_nearbyint(x))
MJ_FLOAT_UNARY(abs, __builtin_fabsf(x), __builtin_fabs(x))
MJ_FLOAT_UNARY(sigmoid, 1.0f / (1.0f + __builtin_expf(-x)), 1.0 / (1.0 + __builtin_exp(-x)))

static inline float mj_pow(float a, float b) { return __builtin_powf(a, b); }
static inline double mj_pow(double a, double b) { return __builtin_pow(a, b); }
static inline mj_f16 mj_pow(mj_f16 a, mj_f16 b) { return (mj_f16)__builtin_powf((float)a, (float)b); }
template <class T> static inline T mj_pow(T a, T b) { return mj_ipow(a, b); }

// numpy's float floor-division and modulo (divmod with the divisor's sign).
static inline double mj_fmod_floor(double a, double b, double* quotient) {
  double mod = __builtin_fmod(a, b);
  if (b == 0) { *quotient = a / b; return mod; }
  double div = (a - mod) / b;
  if (mod != 0) { if ((b < 0) != (mod < 0)) { mod += b; div -= 1.0; } }
  else { mod = __builtin_copysign(0.0, b); }
  double floordiv;
  if (div != 0) { floordiv = __builtin_floor(div); if (div - floordiv > 0.5) floordiv += 1.0; }
  else { floordiv = __builtin_copysign(0.0, a / b); }
  *quotient = floordiv;
  return mod;
}
static inline double mj_ffloordiv(double a, double b) { double q; mj_fmod_floor(a, b, &q); return q; }
static inline double mj_fmod(double a, double b) { double q; return mj_fmod_floor(a, b, &q); }
static inline float mj_ffloordiv(float a, float b) {
  float mod = __builtin_fmodf(a, b);
  if (b == 0) return a / b;
  float div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0f;
  if (div != 0) { float f = __builtin_floorf(div); return (div - f > 0.5f) ? f + 1.0f : f; }
  return __builtin_copysignf(0.0f, a / b);
}
static inline float mj_fmod(float a, float b) {
  float mod = __builtin_fmodf(a, b);
  if (b == 0) return mod;
  if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
  else mod = __builtin_copysignf(0.0f, b);
  return mod;
}
static inline mj_f16 mj_ffloordiv(mj_f16 a, mj_f16 b) { return (mj_f16)mj_ffloordiv((float)a, (float)b); }
static inline mj_f16 mj_fmod(mj_f16 a, mj_f16 b) { return (mj_f16)mj_fmod((float)a, (float)b); }
