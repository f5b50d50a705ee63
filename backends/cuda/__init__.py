"""CUDA support built so far: NVRTC compilation (`nvrtc`) and ``jt.code``'s CUDA operators
(`code_op`). The ``cuda`` backend plugin (fused kernels, driver-API runtime, caching
allocator) is issue #12; until it lands this package registers no device.
"""
