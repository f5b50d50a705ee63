// metajit jt.code operators: what every user source sees (host C++ and CUDA host code).
// Included by metajit.toolkit.inline_source into each operator's translation unit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
typedef int64_t index_t;
typedef bool bool_;
typedef uint8_t uint8; typedef int8_t int8; typedef int16_t int16; typedef int32_t int32; typedef int64_t int64;
typedef float float32; typedef double float64;
#if defined(__CUDACC__)
#include <cuda_fp16.h>
typedef __half float16;
#else
typedef _Float16 float16;
#endif

// A jt.code variable: its shape and element count; outputs may shrink with set_shape.
struct mj_code_var {
    void* p; int ndim; const index_t* shape; index_t num; index_t* new_shape; index_t capacity;
    mj_code_var(void* data, int dims, const index_t* sizes, index_t* resized)
        : p(data), ndim(dims), shape(sizes), num(1), new_shape(resized), capacity(0) {
        for (int k = 0; k < ndim; k++) num *= shape[k];
        capacity = num;
    }
    template <class T> T* ptr() const { return static_cast<T*>(p); }
    void set_shape(std::initializer_list<index_t> sizes) {
        if (!new_shape) throw std::runtime_error("set_shape is only allowed on outputs");
        if ((int)sizes.size() != ndim)
            throw std::runtime_error("set_shape: " + std::to_string(sizes.size()) + " sizes given for a " +
                                     std::to_string(ndim) + "-d output");
        index_t count = 1; int k = 0;
        for (index_t size : sizes) {
            if (size < 0 || (k > 0 && size != shape[k]))
                throw std::runtime_error("set_shape: only the first dim may change, to a size >= 0");
            count *= size; new_shape[k++] = size;
        }
        if (count > capacity)
            throw std::runtime_error("set_shape: " + std::to_string(count) + " elements exceed the " +
                                     std::to_string(capacity) + " the output's shape allows");
        num = count;
    }
};

// jt.code's data={...}: values by name, read as doubles; passed at launch, never compiled in.
struct mj_code_data {
    int count; const char* const* names; const double* values;
    double operator[](const std::string& name) const {
        for (int k = 0; k < count; k++) if (name == names[k]) return values[k];
        throw std::out_of_range("data has no key '" + name + "'");
    }
};
