"""Macros of dwop's BUILD: kernel libraries, per-ISA objects, nvcc, pytest."""

load("@local_config_cuda//:build_defs.bzl", "CUDA_ERROR", "NVCC")
load(
    ":build_flags.bzl",
    "OPT_COPTS",
    "gencode_flag",
    BUILD_KERNEL_COPTS = "KERNEL_COPTS",
)

# The framework-free kernels' flags (tools/build_flags.bzl, which the
# Makefile reads too). Bazel adds -fPIC itself. No TensorFlow include path.
KERNEL_COPTS = BUILD_KERNEL_COPTS + OPT_COPTS

def kernel_library(name, copts = [], **kwargs):
    """A cc_library of framework-free kernel code: KERNEL_COPTS + copts.

    Linked whole into each library that depends on it, as the Makefile links
    every kernel object: no archive-order surprises between the per-ISA
    objects and the code that dispatches to them.
    """
    native.cc_library(
        name = name,
        copts = KERNEL_COPTS + copts,
        linkstatic = True,
        alwayslink = True,
        **kwargs
    )

def kernel_source_libraries(copts_by_source, deps):
    """One library per cc/kernels source that needs flags of its own.

    Args:
      copts_by_source: dict from a glob pattern under cc/kernels to the
        extra compiler flags of the files it matches (none is fine).
      deps: what the sources include (the kernel headers).

    Returns:
      struct(srcs, labels): the sources these libraries compile (exclude them
      from the main library) and the libraries (depend on them).
    """
    srcs = []
    labels = []
    for source, copts in copts_by_source.items():
        src = native.glob(["cc/kernels/" + source], allow_empty = True)
        if not src:
            continue
        name = "kernels_" + source.split(".")[0].replace("/", "_").replace("*", "")
        kernel_library(
            name = name,
            srcs = src,
            copts = copts,
            deps = deps,
        )
        srcs += src
        labels.append(":" + name)
    return struct(srcs = srcs, labels = labels)

def _nvcc_objects_impl(ctx):
    if ctx.files.srcs and CUDA_ERROR:
        fail(CUDA_ERROR)
    objects = []
    for src in ctx.files.srcs:
        obj = ctx.actions.declare_file("_nvcc/%s/%s.pic.o" % (ctx.label.name, src.basename[:-len(".cc")]))
        args = ctx.actions.args()
        args.add_all(ctx.attr.copts)
        args.add_all([gencode_flag(arch) for arch in ctx.attr.gpu_archs])
        args.add_all(["-I.", "-I" + ctx.bin_dir.path])
        args.add_all(["-x", "cu", "-c", src.path, "-o", obj.path])
        ctx.actions.run(
            executable = NVCC,
            arguments = [args],
            inputs = depset([src] + ctx.files.hdrs),
            outputs = [obj],
            # nvcc runs the host compiler (g++) found on the action's PATH.
            use_default_shell_env = True,
            mnemonic = "Nvcc",
            progress_message = "Compiling %s with nvcc" % src.short_path,
        )
        objects.append(obj)
    return [DefaultInfo(files = depset(objects))]

_nvcc_objects = rule(
    implementation = _nvcc_objects_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu.cc"]),
        "hdrs": attr.label_list(allow_files = True),
        "copts": attr.string_list(),
        "gpu_archs": attr.string_list(),
    },
    doc = "Compiles each .cu.cc with nvcc into a position-independent object.",
)

def cuda_library(name, srcs, hdrs, copts, gpu_archs, deps = [], **kwargs):
    """A cc_library of CUDA sources compiled by nvcc, with the static runtime.

    Args:
      name: the cc_library.
      srcs: the .cu.cc files (may be empty).
      hdrs: the headers they include.
      copts: nvcc flags.
      gpu_archs: CUDA_GPU_ARCHS of build_flags.bzl (gencode_flag).
      deps: other cc_library targets to link.
      **kwargs: passed to the cc_library (tags, visibility).
    """
    _nvcc_objects(
        name = name + "_objects",
        srcs = srcs,
        hdrs = hdrs,
        copts = copts,
        gpu_archs = gpu_archs,
        tags = kwargs.get("tags", []),
    )
    native.cc_library(
        name = name,
        srcs = [":" + name + "_objects"] if srcs else [],
        deps = deps + ["@local_config_cuda//:cudart_static"],
        alwayslink = True,
        **kwargs
    )

def pytest_test(name, src, deps = [], data = [], env = {}, **kwargs):
    """A py_test that runs the pytest (or absl) test file `src` with pytest.

    tools/pytest_main.py runs it: JUnit XML for Bazel, --test_filter as
    pytest -k, and shard_count splits the test cases across processes. It
    runs against the libraries Bazel built: the op library through the dwop
    package ($DWOP_LIBRARY), the C ABI through python/cabi.py ($DWOP_CABI).
    """
    native.py_test(
        name = name,
        srcs = ["//tools:pytest_main.py", src],
        main = "//tools:pytest_main.py",
        args = ["$(rootpath %s)" % src],
        deps = deps,
        data = data + ["//:dwop/_dwop_ops.so", "//:libdwop_c.so"],
        env = dict(
            env,
            DWOP_CABI = "$(rootpath //:libdwop_c.so)",
            DWOP_LIBRARY = "$(rootpath //:dwop/_dwop_ops.so)",
        ),
        # Without it Bazel adds __init__.py files that turn tests/ into a
        # package and break its conftest's imports.
        legacy_create_init = False,
        **kwargs
    )

def pytest_tests(srcs, options = {}, size = "medium", **kwargs):
    """One pytest_test per file in `srcs`, named after it (tests/op_test.py: op_test).

    Args:
      srcs: the test files.
      options: dict from a test's name to its own arguments (size,
        shard_count, tags, ...), which win over the shared ones.
      size: the default size.
      **kwargs: arguments shared by every test (deps, data, env).
    """
    for src in srcs:
        name = src.split("/")[-1][:-len(".py")]
        args = dict(kwargs)
        args["size"] = size
        args.update(options.get(name, {}))
        pytest_test(name = name, src = src, **args)
