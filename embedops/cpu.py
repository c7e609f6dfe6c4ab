"""What this machine's CPU offers for reduced-precision maths, read from the kernel's flags rather than
assumed: the machines embedops runs on differ (some have AVX512-BF16 or AMX, some only AVX2), and bf16
autocast on a CPU without bf16 instructions is emulated and slower than fp32.

>>> cpu = cpu_features()
>>> cpu.bf16 in (True, False)
True
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set extensions that change which precision is fastest on this CPU."""

    model: str
    avx2: bool
    avx512f: bool
    avx512_bf16: bool
    amx_bf16: bool
    vnni: bool  # AVX512-VNNI or AVX-VNNI: int8 dot products

    @property
    def bf16(self) -> bool:
        """True when bf16 matrix maths runs natively (AVX512-BF16 or AMX), so bf16 autocast is faster
        than fp32 (about 1.5x per training step on an AVX512-BF16 EPYC, docs/BENCHMARKS.md)."""
        return self.avx512_bf16 or self.amx_bf16

    def describe(self) -> str:
        names = [n for n, on in (("AVX2", self.avx2), ("AVX512", self.avx512f), ("AVX512-BF16", self.avx512_bf16),
                                 ("AMX-BF16", self.amx_bf16), ("VNNI", self.vnni)) if on]
        return f"{self.model} ({', '.join(names) or 'no AVX2'})"


def parse_cpuinfo(text: str) -> CpuFeatures:
    """The features of the first processor listed in a ``/proc/cpuinfo`` text."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return CpuFeatures(model=model or platform.processor() or platform.machine(), avx2="avx2" in flags,
                       avx512f="avx512f" in flags, avx512_bf16="avx512_bf16" in flags, amx_bf16="amx_bf16" in flags,
                       vnni=bool({"avx512_vnni", "avx_vnni"} & flags))


def cpu_features() -> CpuFeatures:
    """This machine's CPU features (Linux: from ``/proc/cpuinfo``; elsewhere none are claimed, so callers
    fall back to fp32)."""
    try:
        return parse_cpuinfo(_CPUINFO.read_text())
    except OSError:
        return parse_cpuinfo("")
