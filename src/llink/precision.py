"""Which training precision fits the hardware: bf16 autocast where the device runs it natively,
fp32 elsewhere. On a CPU without AVX512-BF16 or AMX, bf16 matmuls are emulated and slower than
fp32 (measured on an Intel Xeon with AVX-512 only: Stage B 17.3 s/step in bf16 vs ~7 in fp32)."""

from __future__ import annotations

from pathlib import Path

from .errors import LlinkError

CHOICES = ("auto", "fp32", "bf16")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, so no native bf16 is assumed
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """The CPU's model name, as a figure's provenance (speeds differ 2-3x between CPUs)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def native_bf16(device: str = "cpu") -> bool:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """`auto` -> bf16 where native, else fp32; fp32 and bf16 pass through."""
    if precision not in CHOICES:
        raise LlinkError(f"--precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision
