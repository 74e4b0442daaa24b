"""CPU training kernels of our own, compiled on first use: fused BatchNorm(+ReLU), see kernels/batch_norm.cc.

The C++ source is built with the system's C++ compiler (``$CXX``, else ``g++``) into a cache folder
(``$MS_ZOO_KERNEL_CACHE``, else ``~/.cache/ms-zoo-kernels``) named by a hash of the source, compiler and
flags, and loaded as MindSpore "aot" ``Custom`` ops. Without a compiler, or with ``MS_ZOO_CPU_KERNELS=0``,
the layers use MindSpore's stock ops (same results, slower); the reason is logged once.
"""
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

logger = logging.getLogger(__name__)

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "batch_norm.cc")
CXX_FLAGS = ["-O3", "-fopenmp-simd", "-shared", "-fPIC", "-pthread"]


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """-mavx2 -mfma where the CPU has them: without, gcc leaves the ReLU-masked gradient sums scalar and
    PeleeNet's step was ~25 % slower than stock instead of ~7 % faster. The flags enter the cache
    name, so a cache folder shared with an older CPU keeps one library per kind."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= set(flags) else []


def kernel_cache_dir():
    return os.environ.get("MS_ZOO_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ms-zoo-kernels")


def build_library(source=SOURCE, cache_dir=None, compiler=None):
    """Compile ``source`` once into the cache; returns the library path. Raises RuntimeError why not."""
    compiler = compiler or os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler '{compiler}' on PATH (set CXX)")
    flags = CXX_FLAGS + cpu_flags()
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join([compiler] + flags).encode()).hexdigest()[:16]
    cache_dir = cache_dir or kernel_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    library = os.path.join(cache_dir, f"{os.path.splitext(os.path.basename(source))[0]}-{digest}.so")
    if os.path.exists(library):
        return library
    # build beside and rename: data-parallel workers may compile at the same moment
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache_dir)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *flags, "-o", tmp, source], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, library)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return library


def _custom_batch_norm(library, relu):
    """Training BatchNorm(+ReLU) as a Custom op with its gradient: x, gamma, beta, eps -> y, mean, invstd, var."""
    import mindspore.ops as ops

    name = "BatchNormReluTrain" if relu else "BatchNormTrain"
    grad = ops.Custom(f"{library}:{name}Grad", func_type="aot",
                      out_shape=lambda dy, x, gamma, beta, mean, invstd: (x, gamma, gamma),
                      out_dtype=lambda dy, x, gamma, beta, mean, invstd: (x, gamma, gamma))

    def bprop(x, gamma, beta, eps, out, dout):
        dx, dgamma, dbeta = grad(dout[0], x, gamma, beta, out[1], out[2])
        return dx, dgamma, dbeta, ops.zeros_like(eps)

    return ops.Custom(f"{library}:{name}", func_type="aot", bprop=bprop,
                      out_shape=lambda x, gamma, beta, eps: (x, gamma, gamma, gamma),
                      out_dtype=lambda x, gamma, beta, eps: (x, gamma, gamma, gamma))


@functools.lru_cache(maxsize=None)
def batch_norm_train_op(relu):
    """The fused training op, or None (logged once) where it cannot be used."""
    if os.environ.get("MS_ZOO_CPU_KERNELS", "1") == "0":
        return None
    library = _library()
    return _custom_batch_norm(library, relu) if library else None


@functools.lru_cache(maxsize=None)
def _library():
    try:
        return build_library()
    except (RuntimeError, OSError) as err:
        logger.warning("fused CPU BatchNorm unavailable, using MindSpore's (slower): %s", err)
        return None
