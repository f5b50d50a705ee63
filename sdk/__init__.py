"""metajit's vendor SDK: what a hardware vendor reads and runs to ship a backend plugin.

* the guide, ``sdk/README.md`` (``python -m metajit.sdk guide``);
* the hook reference generated from `metajit.hookspec` (`reference`, ``sdk/hooks.md``);
* the scaffold, ``python -m metajit.sdk new-backend NAME --dir PATH`` (`scaffold`);
* the helpers a backend imports: `PUBLIC_API`, the stable names of `metajit.toolkit`,
  the kernel IR and the plugin interface (a test pins them).
"""
PUBLIC_API = {
    "metajit.hookspec": ("hookimpl",),
    "metajit.plugins": ("BackendDescription", "KernelSource", "FusionCosts", "claims", "register_backend",
                        "unregister_backend"),
    "metajit.errors": ("MetajitError", "MetajitCompileError", "MetajitCodegenError", "MetajitDeviceError"),
    "metajit.ir.kernel": ("Kernel", "Store", "ValueExpr", "LibraryCall", "load", "constant", "parameter",
                          "index_value", "apply"),
    "metajit.ir.indexexpr": ("IndexExpr", "loop", "const", "bounds", "loop_axes", "linear_form"),
    "metajit.ir.dtypes": ("as_dtype", "is_float", "is_integer", "ALL_DTYPES"),
    "metajit.ir.opset": ("SEMANTICS", "ELEMENTWISE", "REDUCE_OPS", "reduce_identity", "result_dtype"),
    "metajit.toolkit.codegen": ("CStyleRenderer", "HostArguments", "prelude", "render_kernel", "render_named",
                                "name_source", "NAME_PLACEHOLDER", "is_plain_store", "TYPE_NAMES"),
    "metajit.toolkit.analysis": ("classify", "KernelShape", "loads", "load_access", "load_accesses", "LoadAccess",
                                 "index_bounds", "footprint", "fits_int32", "affine_form", "as_reduction",
                                 "row_major_strides", "matmul_attrs", "MatmulAttrs", "as_matmul_call"),
    "metajit.toolkit.decompose": ("decompose",),
    "metajit.toolkit.disk_cache": ("DiskCache", "cache_root", "fallback_notice"),
    "metajit.toolkit.batch_compile": ("build", "build_and_load"),
    "metajit.toolkit.host_compiler": ("HostToolchain", "load_library", "entry_point", "missing_compiler_reason"),
    "metajit.toolkit.allocator": ("CachingAllocator", "Workspace", "size_class"),
    "metajit.toolkit.inline_source": ("CodeCall", "UserSource", "MacroExpander", "render_host_entry", "host_entry",
                                      "run_entry", "ENTRY_ARGUMENT_TYPES", "type_declarations",
                                      "compile_error_message"),
    "metajit.conformance.runner": ("run", "select", "read_xfail_file"),
}
