"""The meta-op IR, what every other layer is written in: dtypes, the element-wise and
reduce operators (`opset`), symbolic index expressions (`indexexpr`), lazy graph nodes
(`graph`) and backend-neutral kernels (`kernel`). It imports nothing above itself."""
