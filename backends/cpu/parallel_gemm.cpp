// A matrix product split across the kernels' OpenMP threads, each part one single-threaded
// BLAS call (OpenBLAS from the scipy-openblas32 wheel, called through the function
// pointer in parameters[0]). Compiled and cached like a generated kernel: same entry
// signature, same prelude (mj_i64).
//
// parameters: gemm pointer, trans A, trans B, m, n, k, lda, ldb, ldc, is_double, parts, gemv pointer
// (CBLAS row-major; trans flags are CblasNoTrans = 111 / CblasTrans = 112). A product with one
// row or one column of C runs as matrix-vector products: gemm would pack (copy) the whole
// matrix first, and a batch-1 fully connected layer only reads its weight once.

typedef void (*mj_sgemm_fn)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                            float, float*, int);
typedef void (*mj_dgemm_fn)(int, int, int, int, int, int, double, const double*, int, const double*, int,
                            double, double*, int);
typedef void (*mj_sgemv_fn)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
typedef void (*mj_dgemv_fn)(int, int, int, int, double, const double*, int, const double*, int, double, double*,
                            int);

// C[0, begin:begin+size] = op(A) op(B)[:, begin:begin+size] for a one-row C.
template <class T, class Gemv>
static void mj_row_part(Gemv gemv, const mj_i64* p, const T* a, const T* b, T* c, mj_i64 begin, int size) {
  const int trans_a = (int)p[1], trans_b = (int)p[2], k = (int)p[5], lda = (int)p[6], ldb = (int)p[7];
  const int step = trans_a == 112 ? lda : 1;  // op(A) is one row: stored as a row, or as a column
  if (trans_b == 112)
    gemv(101, 111, size, k, (T)1, b + begin * ldb, ldb, a, step, (T)0, c + begin, 1);
  else
    gemv(101, 112, k, size, (T)1, b + begin, ldb, a, step, (T)0, c + begin, 1);
}

// C[begin:begin+size, 0] = op(A)[begin:begin+size, :] op(B) for a one-column C.
template <class T, class Gemv>
static void mj_column_part(Gemv gemv, const mj_i64* p, const T* a, const T* b, T* c, mj_i64 begin, int size) {
  const int trans_a = (int)p[1], trans_b = (int)p[2], k = (int)p[5], lda = (int)p[6], ldb = (int)p[7];
  const int ldc = (int)p[8], step = trans_b == 112 ? 1 : ldb;  // op(B) is one column
  if (trans_a == 112)
    gemv(101, 112, k, size, (T)1, a + begin, lda, b, step, (T)0, c + begin * ldc, ldc);
  else
    gemv(101, 111, size, k, (T)1, a + begin * lda, lda, b, step, (T)0, c + begin * ldc, ldc);
}

template <class T, class Gemm, class Gemv>
static void mj_parallel_gemm(Gemm gemm, Gemv gemv, const mj_i64* p, const T* a, const T* b, T* c,
                             long long threads) {
  const int trans_a = (int)p[1], trans_b = (int)p[2], m = (int)p[3], n = (int)p[4], k = (int)p[5];
  const int lda = (int)p[6], ldb = (int)p[7], ldc = (int)p[8];
  const bool by_columns = n >= m;  // split the longer side of C into blocks of 16
  const mj_i64 extent = by_columns ? n : m;
  mj_i64 parts = p[10] < threads ? p[10] : threads;
  if (parts < 1) parts = 1;
  const mj_i64 chunk = ((extent + parts - 1) / parts + 15) / 16 * 16;
  parts = (extent + chunk - 1) / chunk;
#pragma omp parallel for num_threads(parts) schedule(static, 1) if(parts > 1)
  for (mj_i64 part = 0; part < parts; ++part) {
    const mj_i64 begin = part * chunk;
    const int size = (int)(begin + chunk < extent ? chunk : extent - begin);
    if (m == 1 && gemv) {
      mj_row_part<T>(gemv, p, a, b, c, begin, size);
    } else if (n == 1 && gemv) {
      mj_column_part<T>(gemv, p, a, b, c, begin, size);
    } else if (by_columns) {
      const T* b_part = trans_b == 112 ? b + begin * ldb : b + begin;
      gemm(101, trans_a, trans_b, m, size, k, (T)1, a, lda, b_part, ldb, (T)0, c + begin, ldc);
    } else {
      const T* a_part = trans_a == 112 ? a + begin : a + begin * lda;
      gemm(101, trans_a, trans_b, size, n, k, (T)1, a_part, lda, b, ldb, (T)0, c + begin * ldc, ldc);
    }
  }
}

extern "C" void MJ_KERNEL_NAME(void* const* inputs, void* const* outputs, const void* parameters,
                               long long num_threads) {
  const mj_i64* p = (const mj_i64*)parameters;
  if (p[9]) {
    mj_parallel_gemm<double>((mj_dgemm_fn)p[0], (mj_dgemv_fn)p[11], p, (const double*)inputs[0], (const double*)inputs[1],
                             (double*)outputs[0], num_threads);
  } else {
    mj_parallel_gemm<float>((mj_sgemm_fn)p[0], (mj_sgemv_fn)p[11], p, (const float*)inputs[0], (const float*)inputs[1],
                            (float*)outputs[0], num_threads);
  }
}
