// metajit CUDA helpers used by generated kernels after the shared prelude (prelude.h):
// the reduction operators as functors and an atomic combine for every dtype (native
// atomicAdd where one exists; otherwise a compare-and-swap loop on the 4- or 8-byte word
// holding the element, so 1- and 2-byte types and max/min/prod work too).
#ifndef MJ_CUDA_HELPERS_H
#define MJ_CUDA_HELPERS_H

struct mj_op_sum { template <class T> __device__ T operator()(T a, T b) const { return (T)(a + b); } };
struct mj_op_prod { template <class T> __device__ T operator()(T a, T b) const { return (T)(a * b); } };
struct mj_op_max { template <class T> __device__ T operator()(T a, T b) const { return mj_maximum(a, b); } };
struct mj_op_min { template <class T> __device__ T operator()(T a, T b) const { return mj_minimum(a, b); } };
struct mj_op_any { template <class T> __device__ T operator()(T a, T b) const { return (T)(a || b); } };
struct mj_op_all { template <class T> __device__ T operator()(T a, T b) const { return (T)(a && b); } };

template <class Op, class T> __device__ __forceinline__ void mj_atomic_combine(T* address, T value) {
  if constexpr (sizeof(T) == 8) {
    unsigned long long* word = (unsigned long long*)address;
    unsigned long long old = *word, assumed;
    do {
      assumed = old;
      T current;
      memcpy(&current, &assumed, 8);
      T next = Op()(current, value);
      unsigned long long bits;
      memcpy(&bits, &next, 8);
      if (bits == assumed) return;
      old = atomicCAS(word, assumed, bits);
    } while (old != assumed);
  } else {
    const unsigned long long place = (unsigned long long)address;
    unsigned* word = (unsigned*)(place & ~3ull);
    const unsigned shift = (unsigned)(place & 3ull) * 8u;
    const unsigned mask = sizeof(T) == 4 ? 0xffffffffu : ((1u << (sizeof(T) * 8u)) - 1u) << shift;
    unsigned old = *word, assumed;
    do {
      assumed = old;
      const unsigned lane = (assumed & mask) >> shift;
      T current;
      memcpy(&current, &lane, sizeof(T));
      T next = Op()(current, value);
      unsigned bits = 0;
      memcpy(&bits, &next, sizeof(T));
      const unsigned replaced = (assumed & ~mask) | ((bits << shift) & mask);
      if (replaced == assumed) return;
      old = atomicCAS(word, assumed, replaced);
    } while (old != assumed);
  }
}

template <> __device__ __forceinline__ void mj_atomic_combine<mj_op_sum, float>(float* address, float value) {
  atomicAdd(address, value);
}
template <> __device__ __forceinline__ void mj_atomic_combine<mj_op_sum, double>(double* address, double value) {
  atomicAdd(address, value);
}
template <> __device__ __forceinline__ void mj_atomic_combine<mj_op_sum, mj_i32>(mj_i32* address, mj_i32 value) {
  atomicAdd(address, value);
}
template <> __device__ __forceinline__ void mj_atomic_combine<mj_op_sum, mj_i64>(mj_i64* address, mj_i64 value) {
  atomicAdd((unsigned long long*)address, (unsigned long long)value);  // two's complement: wraps as int64 does
}
#endif
