"""What machine a benchmark ran on, and what would make its figures untrustworthy.

Recorded with every report: CPU model, cores, frequency governor, platform, Python and the
versions of the runtimes (read from package metadata, so nothing heavy is imported).
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
            "numpy", "opencv-python", "tensorflow", "keras")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
            "versions": versions(), "int8": int8_features(cpu_flags())}


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
