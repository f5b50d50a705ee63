"""The passes over the IR: graph walks (`graphwalk`), reverse-mode autodiff on nodes
(`autodiff`, `backward_cache`), library ops (`library_ops`), fusion into kernels
(`fusion`) and execution on a backend (`executor`). They import the IR, the backend
interface and the toolkit, never the front end."""
