"""Four float64 lanes as one LLVM ``<4 x double>`` value, for the numba kernels.

numba keeps LLVM's SLP vectoriser off (``NUMBA_SLP_VECTORIZE=0``, after miscompilations), and
its loop vectoriser leaves loops of four iterations alone. The per-pattern work of the
incomplete-data kernel runs over four component lanes at a time, contiguous in memory (the last
axis of its (…, K') buffers), so it was four scalar chains. These intrinsics make the vector
explicit: ``vld3(a, i, j, k)`` loads ``a[i, j, k:k + 4]`` into one register, ``vfma`` /
``vfnma`` multiply-add all four lanes in one instruction, ``vst3`` stores them back.

Each lane computes exactly what the scalar code computed: the same IEEE operations in the same
order, with the kernels' ``contract`` flag, so ``s − a·b`` fuses as the scalar ``s -= a * b``
does and results are bitwise the same as four scalar chains. Loads and stores are unaligned
(``align=8``); the caller guarantees that ``k + 4`` is within the last axis, which must be
contiguous (C order). Only numba compiles these: import this module only when ``HAVE_NUMBA``.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

from ._fast_kernels import _FASTMATH

__all__ = [
    "lanes4",
    "vdiv",
    "vfma",
    "vfnma",
    "vlane",
    "vld1",
    "vld2",
    "vld3",
    "vmul",
    "vneg",
    "vsplat",
    "vsqrt",
    "vst1",
    "vst2",
    "vst3",
    "vsub",
]

_VEC = ir.VectorType(ir.DoubleType(), 4)
_FLAGS = tuple(sorted(_FASTMATH))  # the kernels' fastmath flags, so lanes match scalar code


class Lanes4(types.Type):
    """numba type of four float64 lanes held in one vector register."""

    def __init__(self) -> None:
        super().__init__(name="Lanes4")


lanes4 = Lanes4()


@register_model(Lanes4)
class _Lanes4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _lane_pointer(context, builder, sig, args):
    """``<4 x double>*`` to ``arr[*idx]`` (no wrap-around, no bounds check)."""
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = [
        context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:], strict=True)
    ]
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
    return builder.bitcast(ptr, _VEC.as_pointer())


def _load(context, builder, sig, args):
    return builder.load(_lane_pointer(context, builder, sig, args), align=8)


def _store(context, builder, sig, args):
    inner = lanes4(*sig.args[1:])
    builder.store(args[0], _lane_pointer(context, builder, inner, args[1:]), align=8)
    return context.get_dummy_value()


@intrinsic
def vld1(typingctx, arr, k):
    """``arr[k:k + 4]``."""
    return lanes4(arr, k), _load


@intrinsic
def vld2(typingctx, arr, i, k):
    """``arr[i, k:k + 4]``."""
    return lanes4(arr, i, k), _load


@intrinsic
def vld3(typingctx, arr, i, j, k):
    """``arr[i, j, k:k + 4]``."""
    return lanes4(arr, i, j, k), _load


@intrinsic
def vst1(typingctx, v, arr, k):
    """``arr[k:k + 4] = v``."""
    return types.void(v, arr, k), _store


@intrinsic
def vst2(typingctx, v, arr, i, k):
    """``arr[i, k:k + 4] = v``."""
    return types.void(v, arr, i, k), _store


@intrinsic
def vst3(typingctx, v, arr, i, j, k):
    """``arr[i, j, k:k + 4] = v``."""
    return types.void(v, arr, i, j, k), _store


def _binary(op: str):
    def codegen(context, builder, sig, args):
        return getattr(builder, op)(args[0], args[1], flags=_FLAGS)

    return codegen


@intrinsic
def vsub(typingctx, a, b):
    """``a − b``."""
    return lanes4(lanes4, lanes4), _binary("fsub")


@intrinsic
def vmul(typingctx, a, b):
    """``a · b``."""
    return lanes4(lanes4, lanes4), _binary("fmul")


@intrinsic
def vdiv(typingctx, a, b):
    """``a / b``."""
    return lanes4(lanes4, lanes4), _binary("fdiv")


@intrinsic
def vfma(typingctx, s, a, b):
    """``s + a·b`` (fused under ``contract``, as the scalar ``s += a * b``)."""

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], builder.fmul(args[1], args[2], flags=_FLAGS), flags=_FLAGS)

    return lanes4(lanes4, lanes4, lanes4), codegen


@intrinsic
def vfnma(typingctx, s, a, b):
    """``s − a·b`` (fused under ``contract``, as the scalar ``s -= a * b``)."""

    def codegen(context, builder, sig, args):
        return builder.fsub(args[0], builder.fmul(args[1], args[2], flags=_FLAGS), flags=_FLAGS)

    return lanes4(lanes4, lanes4, lanes4), codegen


@intrinsic
def vneg(typingctx, a):
    """``−a``."""

    def codegen(context, builder, sig, args):
        return builder.fneg(args[0], flags=_FLAGS)

    return lanes4(lanes4), codegen


@intrinsic
def vsqrt(typingctx, a):
    """``√a`` per lane (correctly rounded, as ``math.sqrt``)."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VEC, [_VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.sqrt.v4f64")
        return builder.call(fn, [args[0]])

    return lanes4(lanes4), codegen


@intrinsic
def vsplat(typingctx, x):
    """``(x, x, x, x)``."""

    def codegen(context, builder, sig, args):
        x = context.cast(builder, args[0], sig.args[0], types.float64)
        v = ir.Constant(_VEC, ir.Undefined)
        for q in range(4):
            v = builder.insert_element(v, x, ir.Constant(ir.IntType(32), q))
        return v

    return lanes4(x), codegen


@intrinsic
def vlane(typingctx, v, q):
    """Lane ``q`` of ``v`` as a float64."""

    def codegen(context, builder, sig, args):
        i = context.cast(builder, args[1], sig.args[1], types.int32)
        return builder.extract_element(args[0], i)

    return types.float64(lanes4, q), codegen
