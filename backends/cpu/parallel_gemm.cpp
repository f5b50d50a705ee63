// A matrix product split across the kernels' OpenMP threads, each part one single-threaded
// BLAS call (OpenBLAS from the scipy-openblas32 wheel, called through the function
// pointer in parameters[0]). Compiled and cached like a generated kernel: same entry
// signature, same prelude (mj_i64).
//
// parameters: gemm pointer, trans A, trans B, m, n, k, lda, ldb, ldc, is_double, parts, gemv pointer
// (CBLAS row-major; trans flags are CblasNoTrans = 111 / CblasTrans = 112). A product with one
// row or one column of C runs as matrix-vector products: gemm would pack (copy) the whole
// matrix first, and a batch-1 fully connected layer only reads its weight once. A product
// with a few rows (or columns) of C whose every entry is a dot product of two stored rows
// (a fully connected layer at batch 2 to 16: A row-major, B the weight read transposed)
// runs as those dot products (MjDotBlock): the weight is read once, without gemm's
// packing, which doubles what such a product reads. With B not read transposed (the input
// gradient of such a layer), the few rows of C are combinations of B's rows (MjCombinationBlock).

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

#ifdef __AVX512F__
#define MJ_VECTOR_BYTES 64
#define MJ_SMALL_BLOCK 8  // rows of the small side per pass: accumulators for 8 x 3 rows fit 32 registers
#define MJ_STREAMED_BLOCK 3
#else
#define MJ_VECTOR_BYTES 32
#define MJ_SMALL_BLOCK 4  // 4 x 2 accumulators fit 16 registers
#define MJ_STREAMED_BLOCK 2
#endif
#define MJ_MOST_SMALL_ROWS 16  // more rows than this: gemm's packing pays for itself

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")  // multiply-adds fused, as BLAS computes them
// out[i * out_small + j * out_streamed] = small[i, :k] . streamed[j, :k] for i < M and j in
// [begin, end): each row of the streamed side (the weight) is read once per M small rows,
// R of its rows at a time, the dot products accumulated across vector lanes.
struct MjDotBlock {
  template <class T, int M, int R>
  static void run(const T* small, mj_i64 ld_small, const T* streamed, mj_i64 ld_streamed, T* out,
                  mj_i64 out_small, mj_i64 out_streamed, mj_i64 k, mj_i64 begin, mj_i64 end) {
    typedef T Vector __attribute__((vector_size(MJ_VECTOR_BYTES), aligned(sizeof(T))));
    constexpr int lanes = MJ_VECTOR_BYTES / sizeof(T);
    mj_i64 j = begin;
    for (; j + R <= end; j += R) {
      Vector sums[M][R] = {};
      mj_i64 q = 0;
      for (; q + lanes <= k; q += lanes) {
        Vector row[R];
        for (int r = 0; r < R; ++r) row[r] = *(const Vector*)(streamed + (j + r) * ld_streamed + q);
        for (int i = 0; i < M; ++i) {
          const Vector value = *(const Vector*)(small + i * ld_small + q);
          for (int r = 0; r < R; ++r) sums[i][r] += value * row[r];
        }
      }
      for (int i = 0; i < M; ++i) {
        for (int r = 0; r < R; ++r) {
          T total = 0;
          for (int lane = 0; lane < lanes; ++lane) total += sums[i][r][lane];
          for (mj_i64 rest = q; rest < k; ++rest) total += small[i * ld_small + rest] * streamed[(j + r) * ld_streamed + rest];
          out[i * out_small + (j + r) * out_streamed] = total;
        }
      }
    }
    if (R > 1 && j < end) run<T, M, 1>(small, ld_small, streamed, ld_streamed, out, out_small, out_streamed, k, j, end);
  }
};

// out[i * out_small + j] = sum over q of small[i, q] * streamed[q, j] for i < M and j in
// [begin, end): the rows of the streamed side (a weight not read transposed: a small-batch
// Linear's input gradient) combined with each small row's entries as factors, R vectors of
// columns at a time, each part of a streamed row read once per M small rows.
struct MjCombinationBlock {
  template <class T, int M, int R>
  static void run(const T* small, mj_i64 ld_small, const T* streamed, mj_i64 ld_streamed, T* out,
                  mj_i64 out_small, mj_i64, mj_i64 k, mj_i64 begin, mj_i64 end) {
    typedef T Vector __attribute__((vector_size(MJ_VECTOR_BYTES), aligned(sizeof(T))));
    constexpr int lanes = MJ_VECTOR_BYTES / sizeof(T);
    mj_i64 j = begin;
    for (; j + R * lanes <= end; j += R * lanes) {
      Vector sums[M][R] = {};
      for (mj_i64 q = 0; q < k; ++q) {
        Vector row[R];
        for (int r = 0; r < R; ++r) row[r] = *(const Vector*)(streamed + q * ld_streamed + j + r * lanes);
        for (int i = 0; i < M; ++i) {
          const T factor = small[i * ld_small + q];
          for (int r = 0; r < R; ++r) sums[i][r] += factor * row[r];
        }
      }
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < R; ++r) *(Vector*)(out + i * out_small + j + r * lanes) = sums[i][r];
    }
    if (R > 1 && j + lanes <= end) {
      run<T, M, 1>(small, ld_small, streamed, ld_streamed, out, out_small, 1, k, j, end);
      return;
    }
    for (; j < end; ++j) {
      for (int i = 0; i < M; ++i) {
        T total = 0;
        for (mj_i64 q = 0; q < k; ++q) total += small[i * ld_small + q] * streamed[q * ld_streamed + j];
        out[i * out_small + j] = total;
      }
    }
  }
};
#pragma GCC pop_options

// `Block::run` over every row of the small side, MJ_SMALL_BLOCK rows at a time.
template <class Block, class T>
static void mj_small_rows(const T* small, mj_i64 ld_small, mj_i64 rows, const T* streamed, mj_i64 ld_streamed, T* out,
                          mj_i64 out_small, mj_i64 out_streamed, mj_i64 k, mj_i64 begin, mj_i64 end) {
  constexpr int R = MJ_STREAMED_BLOCK;
  for (mj_i64 i = 0; i < rows;) {
    const mj_i64 left = rows - i;
    const T* part = small + i * ld_small;
    T* written = out + i * out_small;
    if (left >= MJ_SMALL_BLOCK) {
      Block::template run<T, MJ_SMALL_BLOCK, R>(part, ld_small, streamed, ld_streamed, written, out_small, out_streamed,
                                                k, begin, end);
      i += MJ_SMALL_BLOCK;
    } else if (left >= 4) {
      Block::template run<T, 4, R>(part, ld_small, streamed, ld_streamed, written, out_small, out_streamed, k, begin, end);
      i += 4;
    } else if (left >= 2) {
      Block::template run<T, 2, R>(part, ld_small, streamed, ld_streamed, written, out_small, out_streamed, k, begin, end);
      i += 2;
    } else {
      Block::template run<T, 1, R>(part, ld_small, streamed, ld_streamed, written, out_small, out_streamed, k, begin, end);
      i += 1;
    }
  }
}

template <class T, class Gemm, class Gemv>
static void mj_parallel_gemm(Gemm gemm, Gemv gemv, const mj_i64* p, const T* a, const T* b, T* c,
                             long long threads) {
  const int trans_a = (int)p[1], trans_b = (int)p[2], m = (int)p[3], n = (int)p[4], k = (int)p[5];
  const int lda = (int)p[6], ldb = (int)p[7], ldc = (int)p[8];
  const bool by_columns = n >= m;  // split the longer side of C into blocks of 16
  const int short_side = by_columns ? m : n;
  const bool few = short_side > 1 && short_side <= MJ_MOST_SMALL_ROWS;
  // dot products of stored rows: A row-major with op(B) = B^T stored row-major (or the mirror)
  const bool dots = few && trans_a == 111 && trans_b == 112;
  // rows of B combined: A and B row-major, few rows of C
  const bool combinations = few && by_columns && trans_a == 111 && trans_b == 111;
  const mj_i64 extent = by_columns ? n : m;
  mj_i64 parts = p[10] < threads ? p[10] : threads;
  if (parts < 1) parts = 1;
  const mj_i64 chunk = ((extent + parts - 1) / parts + 15) / 16 * 16;
  parts = (extent + chunk - 1) / chunk;
#pragma omp parallel for num_threads(parts) schedule(static, 1) if(parts > 1)
  for (mj_i64 part = 0; part < parts; ++part) {
    const mj_i64 begin = part * chunk;
    const int size = (int)(begin + chunk < extent ? chunk : extent - begin);
    if (dots && by_columns) {
      mj_small_rows<MjDotBlock, T>(a, lda, m, b, ldb, c, ldc, 1, k, begin, begin + size);
    } else if (dots) {
      mj_small_rows<MjDotBlock, T>(b, ldb, n, a, lda, c, 1, ldc, k, begin, begin + size);
    } else if (combinations) {
      mj_small_rows<MjCombinationBlock, T>(a, lda, m, b, ldb, c, ldc, 1, k, begin, begin + size);
    } else if (m == 1 && gemv) {
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
