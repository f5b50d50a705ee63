// The emulated device driver (the cnrt-equivalent the runtime calls): GDRAM allocations
// in a registry that validates every copy, host<->device copies, and each core's NRAM.
// Built once by the toolchain and loaded with RTLD_GLOBAL, so kernel units find
// mj_emu_nram_arena. Every entry point reports errors as a message, never a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#ifndef MJ_NRAM_CAPACITY
#define MJ_NRAM_CAPACITY (512 * 1024)
#endif

namespace {
std::mutex registry_lock;
std::map<uintptr_t, long long> allocations;  // base address -> bytes
long long bytes_in_use = 0;
thread_local std::string last_error;

struct FreeAligned {
  void operator()(char* p) const { std::free(p); }
};

// Whether [p, p + bytes) lies inside one live allocation.
bool allocated(const void* p, long long bytes) {
  std::lock_guard<std::mutex> guard(registry_lock);
  uintptr_t address = (uintptr_t)p;
  auto next = allocations.upper_bound(address);
  if (next == allocations.begin()) return false;
  --next;
  return address + bytes <= next->first + (uintptr_t)next->second;
}

const char* fail(const char* what, const void* p, long long bytes) {
  char text[256];
  std::snprintf(text, sizeof text, "%s: %lld bytes at %p are not inside one live device allocation", what, bytes, p);
  last_error = text;
  return last_error.c_str();
}
}  // namespace

extern "C" {

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
    if (found == allocations.end()) return fail("free", p, 0);
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
    return fail(direction == 1 ? "copy to host" : "device copy (source)", src, bytes);
  if (direction != 1 && !allocated(dst, bytes))
    return fail(direction == 0 ? "copy from host" : "device copy (destination)", dst, bytes);
  std::memmove(dst, src, bytes);
  return nullptr;
}

long long mj_emu_bytes_in_use() {
  std::lock_guard<std::mutex> guard(registry_lock);
  return bytes_in_use;
}

char* mj_emu_nram_arena() {
  static thread_local std::unique_ptr<char, FreeAligned> arena((char*)std::aligned_alloc(64, MJ_NRAM_CAPACITY));
  return arena.get();
}

}  // extern "C"
