"""What machine a benchmark ran on, and what would make its figures untrustworthy.

Recorded with every report: CPU model, cores, frequency governor, platform, Python, the
versions of the runtimes (read from package metadata, so nothing heavy is imported) and whether
this Python runs under emulation (:func:`emulation`), whose timings say nothing about the
emulated CPU's speed.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path

from edgecv.benchmarks.cpu_features import cpu_flags, int8_features

PACKAGES = ("ai-edge-litert", "tflite-runtime", "tflite-micro", "onnxruntime", "onnxruntime-gpu",
            "numpy", "opencv-python", "opencv-python-headless", "tensorflow", "keras")
BINFMT_MISC = "/proc/sys/fs/binfmt_misc"
# ARM Ltd's cores by the "CPU part" of /proc/cpuinfo (implementer 0x41): 64-bit ARM Linux prints
# no model name, only these ids.
ARM_CORES = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
             "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
             "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
             "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
             "0xd42": "Cortex-A78AE", "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C",
             "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720"}


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux /proc/cpuinfo); on 64-bit ARM, which prints none, the board
    (``Model``, else ``Hardware``) and the core its ``CPU part`` names, e.g. ``Raspberry Pi 5
    Model B Rev 1.0 (ARM Cortex-A76)``; else platform.processor()."""
    first: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            first.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if first.get("model name"):
        return first["model name"]
    core = ARM_CORES.get(first.get("CPU part", "").lower()) \
        if first.get("CPU implementer", "").lower() == "0x41" else None
    board = first.get("Model") or first.get("Hardware")
    if board or core:
        core = f"ARM {core}" if core else None
        return f"{board} ({core})" if board and core else board or core
    return platform.processor() or platform.machine()


def emulation(executable: str | None = None, binfmt_misc: str = BINFMT_MISC) -> dict | None:
    """How this Python is emulated, or None when it runs natively.

    Decided the way the kernel decides it: an enabled binfmt_misc handler whose magic (or file
    extension) matches this interpreter's executable (``executable``, default sys.executable)
    runs it through that handler's interpreter (QEMU user mode for an aarch64 Python on x86-64;
    ``benchmarks/devices/arm64_qemu.sh``), never on the CPU natively. Returns ``{"handler",
    "interpreter", "qemu_cpu"}``: the handler's name, its interpreter and the CPU that QEMU
    emulates (the ``QEMU_CPU`` the device's wrapper sets; None: QEMU's default). A Python started
    as ``qemu-aarch64 python`` explicitly, or where binfmt_misc cannot be read, is not seen."""
    try:
        with open(os.path.realpath(executable or sys.executable), "rb") as handle:
            header = handle.read(256)
        names = sorted(os.listdir(binfmt_misc))
    except OSError:
        return None
    for name in names:
        if name in ("register", "status"):
            continue
        try:
            entry = _binfmt_entry(Path(binfmt_misc, name).read_text())
        except (OSError, ValueError):
            continue
        if entry and _binfmt_matches(entry, header, executable or sys.executable):
            return {"handler": name, "interpreter": entry.get("interpreter", "?"),
                    "qemu_cpu": os.environ.get("QEMU_CPU") or None}
    return None


def _binfmt_entry(text: str) -> dict | None:
    """An enabled binfmt_misc entry's fields ({"interpreter", "offset", "magic", "mask"} or
    {"interpreter", "extension"}); None when it is disabled."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return None
    fields = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    return fields


def _binfmt_matches(entry: dict, header: bytes, executable: str) -> bool:
    if "extension" in entry:
        return executable.endswith("." + entry["extension"])
    magic = bytes.fromhex(entry.get("magic", ""))
    mask = bytes.fromhex(entry["mask"]) if entry.get("mask") else b"\xff" * len(magic)
    offset = int(entry.get("offset", "0"))
    window = header[offset:offset + len(magic)]
    return bool(magic) and len(window) == len(magic) and all(
        byte & bits == want & bits for byte, bits, want in zip(window, mask, magic))


def governors(sys_cpu: str = "/sys/devices/system/cpu") -> dict[str, str]:
    """{cpu name: scaling governor} for every CPU that exposes cpufreq (empty in most VMs)."""
    found = {}
    for path in sorted(Path(sys_cpu).glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            found[path.parent.parent.name] = path.read_text().strip()
        except OSError:
            continue
    return found


def governor_summary(found: dict[str, str]) -> str:
    """One word for the report: the common governor, 'mixed: ...', or 'unknown (no cpufreq)'."""
    values = sorted(set(found.values()))
    if not values:
        return "unknown (no cpufreq)"
    return values[0] if len(values) == 1 else "mixed: " + ", ".join(values)


def versions() -> dict[str, str]:
    """Installed versions of the runtimes and libraries that affect the figures."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine_info() -> dict:
    """The machine record stored in every benchmark report."""
    from edgecv.runtime import usable_cores

    found = governors()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "governor": governor_summary(found), "platform": platform.platform(),
            "machine": platform.machine(), "python": sys.version.split()[0],
            "versions": versions(), "int8": int8_features(cpu_flags()),
            "emulation": emulation()}


def machine_warnings(info: dict, load_average: tuple[float, float, float] | None = None) -> list[str]:
    """What makes timings on this machine less trustworthy: a governor other than
    ``performance`` (frequency scaling), or other processes already loading the CPUs."""
    warnings = []
    governor = info["governor"]
    if not governor.startswith("unknown") and governor != "performance":
        warnings.append(f"CPU frequency governor is '{governor}', not 'performance': latencies "
                        "vary with frequency scaling (sudo cpupower frequency-set -g performance).")
    if load_average is None and hasattr(os, "getloadavg"):
        load_average = os.getloadavg()
    if load_average and info.get("usable_cores") and load_average[0] > 0.5 * info["usable_cores"]:
        warnings.append(f"the 1-minute load average is {load_average[0]:.2f} on "
                        f"{info['usable_cores']} cores: other processes compete for the CPU, so "
                        "latencies are pessimistic and noisy.")
    return warnings


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (Linux /proc; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
