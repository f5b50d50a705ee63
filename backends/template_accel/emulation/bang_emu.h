// Emulation of a BANG-style scratchpad accelerator on the host: g++ + OpenMP stand in for
// the vendor's compiler and device. The toolchain force-includes this header before each
// generated unit (`g++ -include bang_emu.h -D__BANG__`), as a real toolchain provides
// these names as built-ins; the emulated device behind them (tasks, NRAM, the DMA engine,
// GDRAM allocations, the checks) is driver.cpp, loaded before any kernel.
//
// Programming model emulated (names as in BANG C):
//   __mlu_entry__ / __mlu_func__     kernel entry / device function (no-ops here)
//   taskId, taskDim                  this task's index and the launch's task count; each
//                                    task runs on its own OpenMP thread
//   __nram__ T name[N];              on-chip scratchpad array; the toolchain rewrites each
//                                    declaration into a slice of the task's NRAM arena
//                                    (declare them at kernel scope, never in a loop)
//   __memcpy(dst, src, bytes, DIR)   DMA; DIR is GDRAM2NRAM, NRAM2GDRAM, NRAM2NRAM or
//                                    GDRAM2GDRAM; the strided form copies segnum + 1
//                                    segments: __memcpy(dst, src, bytes, DIR, dst_stride,
//                                    src_stride, segnum)
//   __memcpy_async(...)              same, deferred until __sync_io() (or the task's end):
//                                    code that reads the destination early reads stale data
//   __sync_io(), __sync_all()        wait for this task's DMAs / for every task of the launch
//   __bang_*(dst, src..., n)         vector intrinsics on NRAM operands (below)
//   __bang_atomic_reduce_*(gdram, nram, n)  atomic read-modify-write of GDRAM
//
// Rules enforced when MJ_EMU_CHECKS is 1 (the default; the toolchain sets it from
// METAJIT_ACCEL_CHECKS): an intrinsic operand outside NRAM or not 64-byte aligned, NRAM
// declarations over MJ_NRAM_CAPACITY, and a DMA whose GDRAM side leaves the buffers the
// kernel was launched with, or whose NRAM side leaves NRAM, abort the launch: the host
// stub returns the message and metajit raises it as a MetajitDeviceError naming the kernel.
#ifndef MJ_BANG_EMU_H
#define MJ_BANG_EMU_H

#ifndef MJ_NRAM_CAPACITY
#define MJ_NRAM_CAPACITY (512 * 1024)
#endif
#ifndef MJ_EMU_CHECKS
#define MJ_EMU_CHECKS 1
#endif

#define __mlu_entry__
#define __mlu_func__
typedef _Float16 half;
enum mluMemcpyDirection_t { GDRAM2NRAM, NRAM2GDRAM, NRAM2NRAM, GDRAM2GDRAM };

// The emulated device (driver.cpp): tasks, NRAM, the DMA engine, checks. Kept out of the
// header so that each generated unit compiles without the C++ library headers.
extern "C" {
const char* mj_emu_run(const char* kernel, long long task_dim, const void* const* buffers, const long long* sizes,
                       int count, void (*body)(void*), void* closure);
int mj_emu_task_id();
int mj_emu_task_dim();
void* mj_emu_nram_array(long long bytes, const char* name);
void mj_emu_dma(void* dst, const void* src, long long bytes, int direction, long long dst_stride,
                long long src_stride, long long segments, int async);
void mj_emu_sync_io();
void mj_emu_sync_all();
void mj_emu_check_vector(const void* p, long long bytes, const char* what);
void mj_emu_check_nram(const void* p, long long bytes, const char* what);
void mj_emu_check_gdram(const void* p, long long bytes, const char* what);
void mj_emu_atomic_lock(const void* p);
void mj_emu_atomic_unlock(const void* p);
void mj_emu_fault(const char* message);
}

#define taskId (mj_emu_task_id())
#define taskDim (mj_emu_task_dim())

namespace mj_emu {
template <class Body> void call(void* body) { (*(Body*)body)(); }
}  // namespace mj_emu

// Host side of a launch: `MJ_LAUNCH(entry, task_dim, buffers, sizes, count, args...)`
// returns nullptr or a fault message. A real toolchain's version is
// `entry<<<dim, type, queue>>>(args...); return nullptr;`.
#define MJ_LAUNCH(entry, task_dim, buffers, sizes, count, ...)                                          \
  do {                                                                                                  \
    auto mj_body = [&] { entry(__VA_ARGS__); };                                                         \
    return mj_emu_run(#entry, task_dim, buffers, sizes, count, &mj_emu::call<decltype(mj_body)>, &mj_body); \
  } while (0)

inline void __memcpy(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction) {
  mj_emu_dma(dst, src, bytes, direction, 0, 0, 1, 0);
}
inline void __memcpy(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction, int dst_stride,
                     int src_stride, int segnum) {
  mj_emu_dma(dst, src, bytes, direction, dst_stride, src_stride, segnum + 1LL, 0);
}
inline void __memcpy_async(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction) {
  mj_emu_dma(dst, src, bytes, direction, 0, 0, 1, 1);
}
inline void __memcpy_async(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction, int dst_stride,
                           int src_stride, int segnum) {
  mj_emu_dma(dst, src, bytes, direction, dst_stride, src_stride, segnum + 1LL, 1);
}
inline void __sync_io() { mj_emu_sync_io(); }
inline void __sync_all() { mj_emu_sync_all(); }

#if MJ_EMU_CHECKS
#define MJ_EMU_VECTOR(name, p, n) mj_emu_check_vector(p, (long long)(n) * sizeof(*(p)), #name)
#define MJ_EMU_NRAM(name, p, n) mj_emu_check_nram(p, (long long)(n) * sizeof(*(p)), #name)
#define MJ_EMU_GDRAM(name, p, n) mj_emu_check_gdram(p, (long long)(n) * sizeof(*(p)), #name)
#else
#define MJ_EMU_VECTOR(name, p, n) ((void)0)
#define MJ_EMU_NRAM(name, p, n) ((void)0)
#define MJ_EMU_GDRAM(name, p, n) ((void)0)
#endif

// ---- vector intrinsics: semantics of the prelude's helpers (metajit.opset.SEMANTICS) ----
#include "prelude.h"

#define MJ_EMU_BINARY(name, expression)                                          \
  template <class T> inline void name(T* dst, const T* a, const T* b, int n) {   \
    MJ_EMU_VECTOR(name, dst, n);                                                 \
    MJ_EMU_VECTOR(name, a, n);                                                   \
    MJ_EMU_VECTOR(name, b, n);                                                   \
    for (int i = 0; i < n; ++i) dst[i] = expression;                             \
  }
MJ_EMU_BINARY(__bang_add, a[i] + b[i])
MJ_EMU_BINARY(__bang_sub, a[i] - b[i])
MJ_EMU_BINARY(__bang_mul, a[i] * b[i])
MJ_EMU_BINARY(__bang_div, a[i] / b[i])
MJ_EMU_BINARY(__bang_maxequal, mj_maximum<T>(a[i], b[i]))
MJ_EMU_BINARY(__bang_minequal, mj_minimum<T>(a[i], b[i]))

#define MJ_EMU_WITH_SCALAR(name, expression)                                  \
  template <class T> inline void name(T* dst, const T* a, T s, int n) {       \
    MJ_EMU_VECTOR(name, dst, n);                                              \
    MJ_EMU_VECTOR(name, a, n);                                                \
    for (int i = 0; i < n; ++i) dst[i] = expression;                          \
  }
MJ_EMU_WITH_SCALAR(__bang_add_scalar, a[i] + s)
MJ_EMU_WITH_SCALAR(__bang_mul_scalar, a[i] * s)
MJ_EMU_WITH_SCALAR(__bang_maxequal_scalar, mj_maximum<T>(a[i], s))
MJ_EMU_WITH_SCALAR(__bang_minequal_scalar, mj_minimum<T>(a[i], s))

#define MJ_EMU_UNARY(name, expression)                                        \
  template <class T> inline void name(T* dst, const T* a, int n) {            \
    MJ_EMU_VECTOR(name, dst, n);                                              \
    MJ_EMU_VECTOR(name, a, n);                                                \
    for (int i = 0; i < n; ++i) dst[i] = expression;                          \
  }
MJ_EMU_UNARY(__bang_active_relu, mj_maximum<T>(a[i], (T)0))
MJ_EMU_UNARY(__bang_active_exp, mj_exp(a[i]))
MJ_EMU_UNARY(__bang_active_log, mj_log(a[i]))
MJ_EMU_UNARY(__bang_active_sqrt, mj_sqrt(a[i]))
MJ_EMU_UNARY(__bang_active_tanh, mj_tanh(a[i]))
MJ_EMU_UNARY(__bang_active_sigmoid, mj_sigmoid(a[i]))
MJ_EMU_UNARY(__bang_active_abs, mj_abs(a[i]))

template <class T, class V> inline void __bang_write_value(T* dst, int n, V value) {
  MJ_EMU_VECTOR(__bang_write_value, dst, n);
  for (int i = 0; i < n; ++i) dst[i] = (T)value;
}

// Reductions of n elements into dst[0]; sums pairwise, as a hardware adder tree does.
namespace mj_emu {
template <class T> inline T pairwise_sum(const T* a, int n) {
  if (n <= 16) {
    T total = 0;
    for (int i = 0; i < n; ++i) total += a[i];
    return total;
  }
  return pairwise_sum(a, n / 2) + pairwise_sum(a + n / 2, n - n / 2);
}
}  // namespace mj_emu
#define MJ_EMU_REDUCE(name, result)                                             \
  template <class T> inline void name(T* dst, const T* a, int n) {              \
    MJ_EMU_VECTOR(name, dst, 1);                                                \
    MJ_EMU_VECTOR(name, a, n);                                                  \
    if (n < 1) mj_emu_fault(#name ": empty input");                             \
    T value = a[0];                                                             \
    for (int i = 1; i < n; ++i) value = result;                                 \
    dst[0] = value;                                                             \
  }
MJ_EMU_REDUCE(__bang_reduce_max, mj_maximum<T>(value, a[i]))
MJ_EMU_REDUCE(__bang_reduce_min, mj_minimum<T>(value, a[i]))
template <class T> inline void __bang_reduce_sum(T* dst, const T* a, int n) {
  MJ_EMU_VECTOR(__bang_reduce_sum, dst, 1);
  MJ_EMU_VECTOR(__bang_reduce_sum, a, n);
  dst[0] = mj_emu::pairwise_sum(a, n);
}

// Atomic read-modify-write of n GDRAM elements with NRAM values.
#define MJ_EMU_ATOMIC(name, combine)                                \
  template <class T> inline void name(T* gdram, const T* nram, int n) { \
    MJ_EMU_GDRAM(name, gdram, n);                                   \
    MJ_EMU_NRAM(name, nram, n);                                     \
    for (int i = 0; i < n; ++i) {                                   \
      mj_emu_atomic_lock(gdram + i);                                \
      T old = gdram[i], value = nram[i];                            \
      gdram[i] = (T)(combine);                                      \
      mj_emu_atomic_unlock(gdram + i);                              \
    }                                                               \
  }
MJ_EMU_ATOMIC(__bang_atomic_reduce_add, old + value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_mul, old * value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_max, mj_maximum<T>(old, value))
MJ_EMU_ATOMIC(__bang_atomic_reduce_min, mj_minimum<T>(old, value))
MJ_EMU_ATOMIC(__bang_atomic_reduce_or, old || value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_and, old && value)

#endif  // MJ_BANG_EMU_H
