// Test-only emulation of the CUDA features metajit's generated kernels use, for g++:
// each launch runs its blocks one after another on `threads` host threads, with
// __syncthreads as a block barrier, __shfl_down_sync through per-warp slots and barriers,
// __shared__ memory as statics (one block at a time), and atomics through std::atomic_ref.
// It checks the renderer's schedules (reductions, splits, scatters) on a machine without a
// GPU; the real device runs bench/gpu_check.sh.
#ifndef MJ_CUDA_EMULATION_H
#define MJ_CUDA_EMULATION_H
#include <atomic>
#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)
#define __shared__ static

struct mj_uint3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local mj_uint3 threadIdx, blockIdx;
inline mj_uint3 blockDim, gridDim;
inline std::unique_ptr<std::barrier<>> mj_emu_block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> mj_emu_warp_barriers;
inline unsigned long long mj_emu_slots[1024];

inline void __syncthreads() { mj_emu_block_barrier->arrive_and_wait(); }

template <class T> T __shfl_down_sync(unsigned, T value, int offset) {
  const unsigned thread = threadIdx.x, warp = thread >> 5;
  std::memcpy(&mj_emu_slots[thread], &value, sizeof(T));
  mj_emu_warp_barriers[warp]->arrive_and_wait();
  T result = value;
  if ((thread & 31) + offset < 32) std::memcpy(&result, &mj_emu_slots[thread + offset], sizeof(T));
  mj_emu_warp_barriers[warp]->arrive_and_wait();
  return result;
}

inline unsigned atomicCAS(unsigned* address, unsigned expected, unsigned desired) {
  std::atomic_ref<unsigned>(*address).compare_exchange_strong(expected, desired);
  return expected;
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long expected,
                                    unsigned long long desired) {
  std::atomic_ref<unsigned long long>(*address).compare_exchange_strong(expected, desired);
  return expected;
}
template <class T> T atomicAdd(T* address, T value) { return std::atomic_ref<T>(*address).fetch_add(value); }

// Run `kernel` (one thread's body) on `blocks` x `threads`.
inline void mj_emu_launch(const std::function<void()>& kernel, unsigned blocks, unsigned threads) {
  blockDim.x = threads;
  gridDim.x = blocks;
  mj_emu_block_barrier = std::make_unique<std::barrier<>>(threads);
  mj_emu_warp_barriers.clear();
  for (unsigned warp = 0; warp < (threads + 31) / 32; warp++)
    mj_emu_warp_barriers.push_back(std::make_unique<std::barrier<>>(threads - warp * 32 < 32 ? threads - warp * 32 : 32));
  std::vector<std::thread> team;
  for (unsigned thread = 0; thread < threads; thread++)
    team.emplace_back([&, thread] {
      threadIdx.x = thread;
      for (unsigned block = 0; block < blocks; block++) {
        blockIdx.x = block;
        kernel();
        mj_emu_block_barrier->arrive_and_wait();  // the next block reuses __shared__ memory
      }
    });
  for (auto& member : team) member.join();
}
#endif
