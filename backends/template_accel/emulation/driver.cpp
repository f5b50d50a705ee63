// The emulated device and its driver: GDRAM allocations in a registry that validates
// every host copy (the cnrt-equivalent calls of runtime.py), and what kernels run on:
// tasks on OpenMP threads, each core's NRAM, the DMA engine with its checks, the barrier
// and atomics. Built once by the toolchain and loaded with RTLD_GLOBAL, so kernel units
// link against the mj_emu_* functions declared in bang_emu.h. Errors come back as
// messages, never as a crash.
#include <omp.h>

#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---- GDRAM -------------------------------------------------------------------------
std::mutex registry_lock;
std::map<uintptr_t, long long> allocations;  // base address -> bytes
long long bytes_in_use = 0;
thread_local std::string host_error;

// Whether [p, p + bytes) lies inside one live allocation.
bool allocated(const void* p, long long bytes) {
  std::lock_guard<std::mutex> guard(registry_lock);
  uintptr_t address = (uintptr_t)p;
  auto next = allocations.upper_bound(address);
  if (next == allocations.begin()) return false;
  --next;
  return address + bytes <= next->first + (uintptr_t)next->second;
}

const char* host_fail(const char* what, const void* p, long long bytes) {
  char text[256];
  std::snprintf(text, sizeof text, "%s: %lld bytes at %p are not inside one live device allocation", what, bytes, p);
  host_error = text;
  return host_error.c_str();
}

// ---- tasks ---------------------------------------------------------------------------
struct Fault {  // a broken rule: ends the launch with its message
  std::string message;
};

[[noreturn]] void fault(const char* format, ...) {
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

// Plain data in initial-exec TLS: a dlopen'ed library's general TLS model costs a call per
// access, which dominated the emulator's time.
struct Task {
  int id, dim;
  char* nram;  // allocated on the thread's first launch, kept for the thread's life
  long long nram_used;
  const void* const* buffers;  // GDRAM buffers the kernel was launched with
  const long long* sizes;
  int buffer_count;
  Barrier* barrier;
  std::vector<Copy>* queued;
};
__thread Task task __attribute__((tls_model("initial-exec")));

bool inside(const void* p, long long bytes, const void* base, long long size) {
  const char *a = (const char*)p, *b = (const char*)base;
  return a >= b && a + bytes <= b + size;
}

void check_nram(const void* p, long long bytes, const char* what) {
  if (bytes > 0 && !inside(p, bytes, task.nram, task.nram_used))
    fault("%s: %lld bytes at %p are not in NRAM (task %d declares %lld bytes of __nram__ at %p); "
          "copy the data into an __nram__ buffer with __memcpy first", what, bytes, p, task.id,
          task.nram_used, (void*)task.nram);
}

void check_gdram(const void* p, long long bytes, const char* what) {
  if (bytes <= 0) return;
  for (int k = 0; k < task.buffer_count; ++k)
    if (inside(p, bytes, task.buffers[k], task.sizes[k])) return;
  fault("%s: %lld bytes at %p are outside every GDRAM buffer the kernel was launched with "
        "(an out-of-bounds DMA)", what, bytes, p);
}

// Check the byte range one side of a (strided) copy touches.
void check_side(const void* base, long long bytes, long long stride, long long segments, bool gdram,
                const char* what) {
  const char* low = (const char*)base + (stride < 0 ? stride * (segments - 1) : 0);
  long long span = (stride < 0 ? -stride : stride) * (segments - 1) + bytes;
  if (gdram) check_gdram(low, span, what); else check_nram(low, span, what);
}

void flush() {
  std::vector<Copy>& queued = *task.queued;
  for (const Copy& copy : queued) copy.run();
  queued.clear();
}

std::atomic_flag atomic_locks[1024] = {};

std::atomic_flag& atomic_lock_of(const void* address) { return atomic_locks[((uintptr_t)address >> 3) % 1024]; }


// ---- the emulated vendor library (the cnnl-equivalent): batched matrix products -------
// C[b, i, j] = sum_k A[b, i, k] * B[b, k, j] over element strides (a batch stride of 0
// broadcasts), accumulated in double; every operand's span is checked against its
// allocation first. rank <= 8 batch dims.
template <class T>
const char* matmul(const T* a, const T* b, T* c, int rank, const long long* batch, const long long* a_strides,
                   const long long* b_strides, const long long* c_strides, long long m, long long n, long long k) {
  long long count = 1;
  for (int d = 0; d < rank; ++d) count *= batch[d];
  const T* operands[3] = {a, b, c};
  const long long* strides[3] = {a_strides, b_strides, c_strides};
  const long long extents[3][2] = {{m, k}, {k, n}, {m, n}};
  const char* names[3] = {"matmul operand A", "matmul operand B", "matmul output"};
  for (int o = 0; o < 3; ++o) {  // the span of each operand, for the bounds check
    long long last = 0;
    for (int d = 0; d < rank; ++d) last += (batch[d] - 1) * strides[o][d];
    last += (extents[o][0] - 1) * strides[o][rank] + (extents[o][1] - 1) * strides[o][rank + 1];
    if (count > 0 && m > 0 && n > 0 && !allocated(operands[o], (last + 1) * (long long)sizeof(T)))
      return host_fail(names[o], operands[o], (last + 1) * (long long)sizeof(T));
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (long long flat = 0; flat < count; ++flat) {
    for (long long i = 0; i < m; ++i) {
      long long rest = flat, ao = 0, bo = 0, co = 0;
      for (int d = rank - 1; d >= 0; --d) {
        long long index = rest % batch[d];
        rest /= batch[d];
        ao += index * a_strides[d];
        bo += index * b_strides[d];
        co += index * c_strides[d];
      }
      const T* row = a + ao + i * a_strides[rank];
      for (long long j = 0; j < n; ++j) {
        const T* column = b + bo + j * b_strides[rank + 1];
        double total = 0;
        for (long long p = 0; p < k; ++p) total += (double)row[p * a_strides[rank + 1]] * (double)column[p * b_strides[rank]];
        c[co + i * c_strides[rank] + j * c_strides[rank + 1]] = (T)total;
      }
    }
  }
  return nullptr;
}

}  // namespace

extern "C" {

// ---- driver calls (runtime.py) --------------------------------------------------------
void* mj_emu_malloc(long long bytes) {
  long long rounded = ((bytes > 0 ? bytes : 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) return nullptr;
  std::lock_guard<std::mutex> guard(registry_lock);
  allocations[(uintptr_t)p] = bytes;
  bytes_in_use += bytes;
  return p;
}

const char* mj_emu_free(void* p) {
  {
    std::lock_guard<std::mutex> guard(registry_lock);
    auto found = allocations.find((uintptr_t)p);
    if (found == allocations.end()) return host_fail("free", p, 0);
    bytes_in_use -= found->second;
    allocations.erase(found);
  }
  std::free(p);
  return nullptr;
}

// direction: 0 host to device, 1 device to host, 2 device to device.
const char* mj_emu_memcpy(void* dst, const void* src, long long bytes, int direction) {
  if (bytes == 0) return nullptr;
  if (direction != 0 && !allocated(src, bytes))
    return host_fail(direction == 1 ? "copy to host" : "device copy (source)", src, bytes);
  if (direction != 1 && !allocated(dst, bytes))
    return host_fail(direction == 0 ? "copy from host" : "device copy (destination)", dst, bytes);
  std::memmove(dst, src, bytes);
  return nullptr;
}

// dtype: 0 float32, 1 float64.
const char* mj_emu_matmul(int dtype, const void* a, const void* b, void* c, int rank, const long long* batch,
                          const long long* a_strides, const long long* b_strides, const long long* c_strides,
                          long long m, long long n, long long k) {
  if (dtype == 0)
    return matmul((const float*)a, (const float*)b, (float*)c, rank, batch, a_strides, b_strides, c_strides, m, n, k);
  return matmul((const double*)a, (const double*)b, (double*)c, rank, batch, a_strides, b_strides, c_strides, m, n, k);
}

long long mj_emu_bytes_in_use() {
  std::lock_guard<std::mutex> guard(registry_lock);
  return bytes_in_use;
}

// ---- what kernels call (bang_emu.h) -----------------------------------------------------
const char* mj_emu_run(const char* kernel, long long dim, const void* const* buffers, const long long* sizes,
                       int count, void (*body)(void*), void* closure) {
  static thread_local std::string error;  // the caller's: outlives the call
  std::string message_of_launch;          // written by whichever task faults first
  std::mutex lock;
  bool failed = false;
  Barrier barrier;
  barrier.count = (int)dim;
  auto record = [&](const std::string& message) {
    std::lock_guard<std::mutex> guard(lock);
    if (!failed) message_of_launch = std::string(kernel) + ": " + message;
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
      if (t.nram == nullptr) {
        t.nram = (char*)std::aligned_alloc(64, MJ_NRAM_CAPACITY);
        t.queued = new std::vector<Copy>();
      }
      t.id = omp_get_thread_num();
      t.dim = (int)dim;
      t.nram_used = 0;
      t.buffers = buffers;
      t.sizes = sizes;
      t.buffer_count = count;
      t.barrier = &barrier;
      t.queued->clear();
      try {
        if (t.nram == nullptr) fault("no memory for the task's %d-byte NRAM", (int)MJ_NRAM_CAPACITY);
        body(closure);
        flush();
      } catch (const Fault& f) {
        record("task " + std::to_string(t.id) + ": " + f.message);
      } catch (const std::exception& e) {
        record("task " + std::to_string(t.id) + ": " + e.what());
      }
      t.queued->clear();
    }
  }
  if (!failed) return nullptr;
  error = message_of_launch;
  return error.c_str();
}

int mj_emu_task_id() { return task.id; }
int mj_emu_task_dim() { return task.dim; }

void* mj_emu_nram_array(long long bytes, const char* name) {
  long long start = (task.nram_used + 63) & ~63LL;
  if (start + bytes > MJ_NRAM_CAPACITY)
    fault("__nram__ %s: %lld bytes at NRAM offset %lld exceed the %d-byte NRAM", name, bytes, start,
          (int)MJ_NRAM_CAPACITY);
  task.nram_used = start + bytes;
  return task.nram + start;
}

void mj_emu_dma(void* dst, const void* src, long long bytes, int direction, long long dst_stride,
                long long src_stride, long long segments, int async) {
  const char* what = async ? "__memcpy_async" : "__memcpy";
  if (bytes < 0 || segments < 1) fault("%s: negative size (%lld bytes, %lld segments)", what, bytes, segments);
#if MJ_EMU_CHECKS
  check_side(src, bytes, src_stride, segments, direction == GDRAM2NRAM || direction == GDRAM2GDRAM, what);
  check_side(dst, bytes, dst_stride, segments, direction == NRAM2GDRAM || direction == GDRAM2GDRAM, what);
#endif
  Copy copy{(char*)dst, (const char*)src, bytes, dst_stride, src_stride, segments};
  if (async) task.queued->push_back(copy); else copy.run();
}

void mj_emu_sync_io() { flush(); }

void mj_emu_sync_all() {
  flush();
  task.barrier->wait();
}

void mj_emu_check_nram(const void* p, long long bytes, const char* what) { check_nram(p, bytes, what); }

void mj_emu_check_vector(const void* p, long long bytes, const char* what) {
  check_nram(p, bytes, what);
  if ((uintptr_t)p % 64 != 0) fault("%s: NRAM operand %p is not 64-byte aligned", what, p);
}

void mj_emu_check_gdram(const void* p, long long bytes, const char* what) { check_gdram(p, bytes, what); }

void mj_emu_atomic_lock(const void* p) {
  while (atomic_lock_of(p).test_and_set(std::memory_order_acquire)) std::this_thread::yield();
}

void mj_emu_atomic_unlock(const void* p) { atomic_lock_of(p).clear(std::memory_order_release); }

void mj_emu_fault(const char* message) { fault("%s", message); }

}  // extern "C"
