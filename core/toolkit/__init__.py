"""The backend toolkit: what every backend needs and none should copy.

* `codegen` — the C-style renderer base and the common prelude (host C++, CUDA, BANG-style);
* `analysis` — kernel classification, per-load access patterns, index bounds over tiles,
  32-bit index safety;
* `disk_cache` — the on-disk artefact cache (atomic installs, checksums, locking, rebuild
  of corrupt entries);
* `batch_compile` — compiling a realisation's sources in parallel units, with progress;
* `allocator` — a size-class caching allocator over a backend's raw allocate/free;
* `gemm` — a ``matmul`` call's operands as in-place BLAS GEMM layouts;
* `launching` — running a launch sequence one program call at a time;
* `select_cases` — element-wise stores split into cases by selects on outer loop indices;
* `inline_source` — ``jt.code``'s macro language, entry wrapper and error mapping.

Backends import these; nothing here imports the front end or a backend. The vendor SDK
exports them as its public API.
"""
