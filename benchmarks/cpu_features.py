"""What this CPU offers int8 inference, read from /proc/cpuinfo, and what that means for each
runtime's int8 kernels. The bench report prints it beside the int8 rows, so a user on an AVX2
laptop is not surprised that int8 is no faster than fp32, and knows the same file will be faster
on a Raspberry Pi 5 or a VNNI server.
"""

from __future__ import annotations

import platform

from edgecv.runtime import cpu_flags

__all__ = ["cpu_flags", "int8_features", "int8_outlook"]

# /proc/cpuinfo flag -> what it is, for the int8 story only.
X86_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
             "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}
ARM_FLAGS = {"asimd": "NEON", "asimddp": "dot-product (SDOT/UDOT)", "i8mm": "int8 matrix multiply (I8MM)",
             "sve": "SVE"}


def int8_features(flags: set[str], machine: str | None = None) -> dict:
    """``{"arch", "features": [...], "int8_dot_product": bool, "outlook": [sentences]}``."""
    machine = (machine or platform.machine()).lower()
    arm = machine.startswith(("arm", "aarch64"))
    table = ARM_FLAGS if arm else X86_FLAGS
    present = [name for flag, name in table.items() if flag in flags]
    if arm:
        dot = "asimddp" in flags
    else:
        dot = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
    return {"arch": "arm" if arm else ("x86" if machine in ("x86_64", "amd64", "i686") else machine),
            "features": present, "int8_dot_product": dot,
            "outlook": int8_outlook(flags, arm) if flags else
            ["CPU features unknown (no /proc/cpuinfo): int8 speed cannot be predicted here."]}


def int8_outlook(flags: set[str], arm: bool) -> list[str]:
    """One sentence per runtime on what int8 can gain over fp32 on this CPU."""
    if arm:
        if "asimddp" in flags:
            return ["ARM dot-product (SDOT/UDOT) present: LiteRT (XNNPACK) and ONNX Runtime run "
                    "int8 convolutions as 4-way dot products, so int8 is expected to be faster "
                    "than fp32 (Raspberry Pi 5 / Cortex-A76 class)."
                    + (" I8MM is present too: newer XNNPACK kernels use it." if "i8mm" in flags else "")]
        return ["no ARM dot-product (e.g. Cortex-A72 / Raspberry Pi 4): int8 kernels multiply "
                "with widening NEON instructions, so int8 gains little speed over fp32; its "
                "gains are size and int8 accelerators."]
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        return ["x86 VNNI present: LiteRT (XNNPACK) and ONNX Runtime run int8 convolutions with "
                "VPDPBUSD dot products, so int8 is expected to be faster than fp32 here."]
    if "avx2" in flags:
        return ["LiteRT int8 on AVX2 without VNNI: XNNPACK's signed-int8 kernels widen to 16 bits "
                "before multiplying, so int8 is not faster than fp32 on this CPU (often slower at "
                "1 thread); the same file is faster on ARM dot-product or VNNI machines.",
                "ONNX Runtime int8 on AVX2 without VNNI: u8 x s8 convolutions use VPMADDUBSW, at "
                "best about 1.7x the fp32 FMA throughput per core, and only where the graph "
                "optimizer fused DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv; "
                "unfused convolutions run in float with extra (de)quantization."]
    return ["no AVX2, VNNI or ARM dot-product: int8 kernels fall back to generic code; expect "
            "int8 to be slower than fp32 here. Its gains are size and int8 accelerators."]
