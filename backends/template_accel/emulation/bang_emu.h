// Emulation of a BANG-style scratchpad accelerator on the host: g++ + OpenMP stand in for
// the vendor's compiler and device. The toolchain force-includes this header before each
// generated unit (`g++ -include bang_emu.h -D__BANG__`), as a real toolchain provides
// these names as built-ins. The device-side driver it relies on (GDRAM allocations, the
// per-core NRAM) is driver.cpp, loaded before any kernel.
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
#include <omp.h>

#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

extern "C" char* mj_emu_nram_arena();  // driver.cpp: this thread's NRAM (MJ_NRAM_CAPACITY bytes)

namespace mj_emu {

struct Fault {  // thrown by a failed check; ends the launch with its message
  std::string message;
};

[[noreturn]] inline void fault(const char* format, ...) {
  char text[768];
  va_list arguments;
  va_start(arguments, format);
  std::vsnprintf(text, sizeof text, format, arguments);
  va_end(arguments);
  throw Fault{text};
}

struct Copy {
  char* dst;
  const char* src;
  long long bytes, dst_stride, src_stride, segments;
  void run() const {
    for (long long s = 0; s < segments; ++s) std::memmove(dst + s * dst_stride, src + s * src_stride, bytes);
  }
};

// Every task of a launch waits here in __sync_all(); a task that faults breaks the
// barrier so the others unwind instead of waiting forever.
struct Barrier {
  int count = 1;
  std::atomic<int> arrived{0}, generation{0};
  std::atomic<bool> broken{false};
  void wait() {
    int seen = generation.load();
    if (arrived.fetch_add(1) + 1 == count) {
      arrived.store(0);
      generation.fetch_add(1);
      return;
    }
    while (generation.load() == seen) {
      if (broken.load()) fault("__sync_all: another task of this launch faulted");
      std::this_thread::yield();
    }
  }
};

struct Task {
  int id = 0, dim = 1;
  char* nram = nullptr;
  long long nram_used = 0;
  const void* const* buffers = nullptr;  // GDRAM buffers the kernel was launched with
  const long long* sizes = nullptr;
  int buffer_count = 0;
  Barrier* barrier = nullptr;
  std::vector<Copy> queued;
};
inline thread_local Task task;

inline bool inside(const void* p, long long bytes, const void* base, long long size) {
  const char *a = (const char*)p, *b = (const char*)base;
  return a >= b && a + bytes <= b + size;
}

inline void check_nram(const void* p, long long bytes, const char* what) {
#if MJ_EMU_CHECKS
  if (bytes > 0 && !inside(p, bytes, task.nram, task.nram_used))
    fault("%s: %lld bytes at %p are not in NRAM (task %d declares %lld bytes of __nram__ at %p); "
          "copy the data into an __nram__ buffer with __memcpy first", what, bytes, p, task.id,
          task.nram_used, (void*)task.nram);
#endif
}

inline void check_vector(const void* p, long long bytes, const char* what) {
  check_nram(p, bytes, what);
#if MJ_EMU_CHECKS
  if ((uintptr_t)p % 64 != 0) fault("%s: NRAM operand %p is not 64-byte aligned", what, p);
#endif
}

inline void check_gdram(const void* p, long long bytes, const char* what) {
#if MJ_EMU_CHECKS
  if (bytes <= 0) return;
  for (int k = 0; k < task.buffer_count; ++k)
    if (inside(p, bytes, task.buffers[k], task.sizes[k])) return;
  fault("%s: %lld bytes at %p are outside every GDRAM buffer the kernel was launched with "
        "(an out-of-bounds DMA)", what, bytes, p);
#endif
}

inline void* nram_array(long long bytes, const char* name) {
  long long start = (task.nram_used + 63) & ~63LL;
  if (start + bytes > MJ_NRAM_CAPACITY)
    fault("__nram__ %s: %lld bytes at NRAM offset %lld exceed the %d-byte NRAM", name, bytes, start,
          (int)MJ_NRAM_CAPACITY);
  task.nram_used = start + bytes;
  return task.nram + start;
}

// The byte range a strided copy touches on one side, for the checks.
inline void check_side(const void* base, long long bytes, long long stride, long long segments, bool gdram,
                       const char* what) {
  const char* first = (const char*)base;
  const char* low = stride < 0 ? first + stride * (segments - 1) : first;
  long long span = (stride < 0 ? -stride : stride) * (segments - 1) + bytes;
  if (gdram) check_gdram(low, span, what); else check_nram(low, span, what);
}

inline Copy dma(void* dst, const void* src, long long bytes, mluMemcpyDirection_t direction, long long dst_stride,
                long long src_stride, long long segments, const char* what) {
  if (bytes < 0 || segments < 1) fault("%s: negative size (%lld bytes, %lld segments)", what, bytes, segments);
  check_side(src, bytes, src_stride, segments, direction == GDRAM2NRAM || direction == GDRAM2GDRAM, what);
  check_side(dst, bytes, dst_stride, segments, direction == NRAM2GDRAM || direction == GDRAM2GDRAM, what);
  return Copy{(char*)dst, (const char*)src, bytes, dst_stride, src_stride, segments};
}

inline void flush() {
  for (const Copy& copy : task.queued) copy.run();
  task.queued.clear();
}

// Run `body` as `dim` tasks, one per OpenMP thread; nullptr, or the first fault's message.
template <class Body>
const char* run_tasks(const char* kernel, long long dim, const void* const* buffers, const long long* sizes,
                      int buffer_count, Body body) {
  static thread_local std::string error;
  std::mutex lock;
  bool failed = false;
  Barrier barrier;
  barrier.count = (int)dim;
  auto record = [&](const std::string& message) {
    std::lock_guard<std::mutex> guard(lock);
    if (!failed) error = std::string(kernel) + ": " + message;
    failed = true;
    barrier.broken.store(true);
  };
  omp_set_dynamic(0);
#pragma omp parallel num_threads((int)dim)
  {
    if (omp_get_num_threads() != dim) {
      record("the emulator could not start " + std::to_string(dim) + " tasks (OMP_THREAD_LIMIT?)");
    } else {
      Task& t = task;
      t.id = omp_get_thread_num();
      t.dim = (int)dim;
      t.nram = mj_emu_nram_arena();
      t.nram_used = 0;
      t.buffers = buffers;
      t.sizes = sizes;
      t.buffer_count = buffer_count;
      t.barrier = &barrier;
      t.queued.clear();
      try {
        body();
        flush();
      } catch (const Fault& f) {
        record("task " + std::to_string(t.id) + ": " + f.message);
      } catch (const std::exception& e) {
        record("task " + std::to_string(t.id) + ": " + e.what());
      }
      t.queued.clear();
    }
  }
  return failed ? error.c_str() : nullptr;
}

}  // namespace mj_emu

#define taskId (mj_emu::task.id)
#define taskDim (mj_emu::task.dim)

// Host side of a launch: `MJ_LAUNCH(entry, task_dim, buffers, sizes, count, args...)`
// returns nullptr or a fault message. A real toolchain's version is
// `entry<<<dim, type, queue>>>(args...); return nullptr;`.
#define MJ_LAUNCH(entry, task_dim, buffers, sizes, count, ...) \
  return mj_emu::run_tasks(#entry, task_dim, buffers, sizes, count, [&] { entry(__VA_ARGS__); })

inline void __memcpy(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction) {
  mj_emu::dma(dst, src, bytes, direction, 0, 0, 1, "__memcpy").run();
}
inline void __memcpy(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction, int dst_stride,
                     int src_stride, int segnum) {
  mj_emu::dma(dst, src, bytes, direction, dst_stride, src_stride, segnum + 1LL, "__memcpy").run();
}
inline void __memcpy_async(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction) {
  mj_emu::task.queued.push_back(mj_emu::dma(dst, src, bytes, direction, 0, 0, 1, "__memcpy_async"));
}
inline void __memcpy_async(void* dst, const void* src, int bytes, mluMemcpyDirection_t direction, int dst_stride,
                           int src_stride, int segnum) {
  mj_emu::task.queued.push_back(
      mj_emu::dma(dst, src, bytes, direction, dst_stride, src_stride, segnum + 1LL, "__memcpy_async"));
}
inline void __sync_io() { mj_emu::flush(); }
inline void __sync_all() {
  mj_emu::flush();
  mj_emu::task.barrier->wait();
}

// ---- vector intrinsics: semantics of the prelude's helpers (metajit.opset.SEMANTICS) ----
#include "prelude.h"

#define MJ_EMU_BINARY(name, expression)                                          \
  template <class T> inline void name(T* dst, const T* a, const T* b, int n) {   \
    mj_emu::check_vector(dst, (long long)n * sizeof(T), #name);                  \
    mj_emu::check_vector(a, (long long)n * sizeof(T), #name);                    \
    mj_emu::check_vector(b, (long long)n * sizeof(T), #name);                    \
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
    mj_emu::check_vector(dst, (long long)n * sizeof(T), #name);               \
    mj_emu::check_vector(a, (long long)n * sizeof(T), #name);                 \
    for (int i = 0; i < n; ++i) dst[i] = expression;                          \
  }
MJ_EMU_WITH_SCALAR(__bang_add_scalar, a[i] + s)
MJ_EMU_WITH_SCALAR(__bang_mul_scalar, a[i] * s)

#define MJ_EMU_UNARY(name, expression)                                        \
  template <class T> inline void name(T* dst, const T* a, int n) {            \
    mj_emu::check_vector(dst, (long long)n * sizeof(T), #name);               \
    mj_emu::check_vector(a, (long long)n * sizeof(T), #name);                 \
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
  mj_emu::check_vector(dst, (long long)n * sizeof(T), "__bang_write_value");
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
    mj_emu::check_vector(dst, sizeof(T), #name);                                \
    mj_emu::check_vector(a, (long long)n * sizeof(T), #name);                   \
    if (n < 1) mj_emu::fault("%s: empty input", #name);                         \
    T value = a[0];                                                             \
    for (int i = 1; i < n; ++i) value = result;                                 \
    dst[0] = value;                                                             \
  }
MJ_EMU_REDUCE(__bang_reduce_max, mj_maximum<T>(value, a[i]))
MJ_EMU_REDUCE(__bang_reduce_min, mj_minimum<T>(value, a[i]))
template <class T> inline void __bang_reduce_sum(T* dst, const T* a, int n) {
  mj_emu::check_vector(dst, sizeof(T), "__bang_reduce_sum");
  mj_emu::check_vector(a, (long long)n * sizeof(T), "__bang_reduce_sum");
  dst[0] = mj_emu::pairwise_sum(a, n);
}

// Atomic read-modify-write of n GDRAM elements with NRAM values (striped locks).
namespace mj_emu {
inline std::atomic_flag* atomic_lock(const void* address) {
  static std::atomic_flag locks[1024] = {};
  return &locks[((uintptr_t)address >> 3) % 1024];
}
}  // namespace mj_emu
#define MJ_EMU_ATOMIC(name, combine)                                                   \
  template <class T> inline void name(T* gdram, const T* nram, int n) {                \
    mj_emu::check_gdram(gdram, (long long)n * sizeof(T), #name);                       \
    mj_emu::check_nram(nram, (long long)n * sizeof(T), #name);                         \
    for (int i = 0; i < n; ++i) {                                                      \
      std::atomic_flag* lock = mj_emu::atomic_lock(gdram + i);                         \
      while (lock->test_and_set(std::memory_order_acquire)) std::this_thread::yield(); \
      T old = gdram[i], value = nram[i];                                               \
      gdram[i] = (T)(combine);                                                         \
      lock->clear(std::memory_order_release);                                          \
    }                                                                                  \
  }
MJ_EMU_ATOMIC(__bang_atomic_reduce_add, old + value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_mul, old * value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_max, mj_maximum<T>(old, value))
MJ_EMU_ATOMIC(__bang_atomic_reduce_min, mj_minimum<T>(old, value))
MJ_EMU_ATOMIC(__bang_atomic_reduce_or, old || value)
MJ_EMU_ATOMIC(__bang_atomic_reduce_and, old && value)

#endif  // MJ_BANG_EMU_H
