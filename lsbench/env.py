"""Environment fingerprint recorded with every measurement.

A latency number means little without the machine, library versions, thread settings and
clock state behind it; this module collects them, and never fails because one of them cannot
be read (a missing file, package, driver or git gives None).
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping

import torch

from lsbench.errors import LsbenchError

# Packages whose versions change measured numbers (kernels, counters, exporters).
PACKAGES = ("torch", "torchvision", "timm", "numpy", "fvcore", "ptflops", "onnxruntime")

_PACKAGE_DIR = Path(__file__).resolve().parent

# NVML clock-event ("throttle") reason bits, from nvml.h / nvidia-ml-py
# (nvmlClocksEventReason* and the older nvmlClocksThrottleReason* names).
CLOCK_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _cpuinfo_blocks() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU (empty where the file does not exist)."""
    text = _read_text("/proc/cpuinfo") or ""
    blocks: list[dict[str, str]] = []
    for chunk in text.split("\n\n"):
        fields = {}
        for line in chunk.splitlines():
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def cpu_model() -> str | None:
    """The CPU's marketing name ("model name" in /proc/cpuinfo), else platform.processor()."""
    for block in _cpuinfo_blocks():
        if block.get("model name"):
            return block["model name"]
    return platform.processor() or None


def physical_cores() -> int | None:
    """Distinct (package, core) pairs: from /proc/cpuinfo, else sysfs topology, else None."""
    pairs = {
        (block["physical id"], block["core id"])
        for block in _cpuinfo_blocks()
        if "physical id" in block and "core id" in block
    }
    if pairs:
        return len(pairs)
    root = Path("/sys/devices/system/cpu")
    for cpu in root.glob("cpu[0-9]*"):
        core = _read_text(str(cpu / "topology" / "core_id"))
        package = _read_text(str(cpu / "topology" / "physical_package_id"))
        if core is not None and package is not None:
            pairs.add((package.strip(), core.strip()))
    return len(pairs) or None


def cpu_governor() -> str | None:
    """cpufreq scaling governor of cpu0 (e.g. "performance"), None where not exposed."""
    text = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if text is None:
        return None
    return text.strip() or None


def cpu_mhz() -> float | None:
    """Current clock of cpu0 in MHz: cpufreq when exposed, else /proc/cpuinfo "cpu MHz"."""
    text = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if text is not None:
        try:
            return int(text.strip()) / 1000.0  # kHz
        except ValueError:
            pass
    for block in _cpuinfo_blocks():
        if "cpu MHz" in block:
            try:
                return float(block["cpu MHz"])
            except ValueError:
                return None
    return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """HEAD commit of the git work tree holding `path` (default: this package), else None."""
    return _git(["rev-parse", "--verify", "HEAD"], Path(path) if path else _PACKAGE_DIR) or None


def git_dirty(path: str | os.PathLike[str] | None = None) -> bool | None:
    """Whether tracked files differ from HEAD (numbers may not match the commit), else None."""
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(path) if path else _PACKAGE_DIR)
    return None if status is None else bool(status)


@functools.lru_cache(maxsize=1)
def _static_fingerprint() -> dict[str, Any]:
    """The parts that cannot change while the process runs (read once: git and /proc cost)."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    versions = {name: package_version(name) for name in PACKAGES}
    versions["torch"] = torch.__version__  # the imported build, local tag (+cu130, +cpu) included
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "os": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": versions,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": cudnn,
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical_cores(),
        "backends": {
            "mkl": torch.backends.mkl.is_available(),
            "openmp": torch.backends.openmp.is_available(),
            "mkldnn": torch.backends.mkldnn.is_available(),
        },
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
    }


def _cuda_index(device: str) -> int | None:
    """None for "cpu", the device index for "cuda" / "cuda:N"; anything else is an error."""
    if device == "cpu":
        return None
    kind, _, index = device.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        return int(index or 0)
    raise LsbenchError(f"unknown device {device!r}; expected cpu, cuda or cuda:N")


def fingerprint(device: str = "cpu", threads: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything about the machine and process that can move a measured number.

    `threads` is the dict yielded by lsbench.timing.cpu_threads (the effective thread and
    affinity settings of the run), recorded as given; the process' current thread counts and
    affinity are always recorded too. For a CUDA device the torch device properties and NVML
    telemetry (clocks, temperature, power, throttle reasons) are added, None where unavailable.
    """
    index = _cuda_index(device)
    info = dict(_static_fingerprint())
    info["versions"] = dict(info["versions"])
    info["backends"] = dict(info["backends"])
    info.update(
        device=device,
        cpu_governor=cpu_governor(),
        cpu_mhz=cpu_mhz(),
        affinity=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        torch_num_threads=torch.get_num_threads(),
        torch_num_interop_threads=torch.get_num_interop_threads(),
        thread_settings=dict(threads) if threads is not None else None,
    )
    if index is not None:
        info["cuda_device"] = cuda_device_info(index)
        info["gpu"] = gpu_telemetry(index)
    return info


def cuda_device_info(index: int = 0) -> dict[str, Any] | None:
    """torch's view of a CUDA device (name, capability, memory), None without CUDA."""
    if not torch.cuda.is_available():
        return None
    if not 0 <= index < torch.cuda.device_count():
        raise LsbenchError(f"no CUDA device {index}: {torch.cuda.device_count()} visible")
    props = torch.cuda.get_device_properties(index)
    return {
        "index": index,
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "total_memory": int(props.total_memory),
        "multiprocessors": int(props.multi_processor_count),
    }


def decode_clock_reasons(mask: int) -> list[str]:
    """Names of the NVML clock-event reason bits set in `mask` (unknown bits as hex)."""
    names = [name for bit, name in CLOCK_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_REASONS)
    if unknown:
        names.append(f"unknown_{unknown:#x}")
    return names


def nvml():
    """The initialised ``pynvml`` module, or None when NVML cannot be used (no package, no driver)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def gpu_telemetry(index: int = 0) -> dict[str, Any] | None:
    """Clocks, temperature, power and throttle reasons of GPU `index` (NVML numbering).

    Returns None when NVML cannot be used at all (no driver, e.g. "NVML Shared Library Not
    Found"); a single field the GPU does not support is None. NVML numbers GPUs in PCI order,
    which matches CUDA's unless CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER reorders them: the
    recorded name lets a reader check.
    """
    pynvml = nvml()
    if pynvml is None:
        return None
    try:
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            raise LsbenchError(f"no NVIDIA GPU {index} visible to NVML ({exc})") from None

        def read(fn_name: str, *args: Any) -> Any:
            fn = getattr(pynvml, fn_name, None)
            if fn is None:
                return None
            try:
                value = fn(*args)
            except pynvml.NVMLError:
                return None
            return value.decode() if isinstance(value, bytes) else value

        def watts(milliwatts: Any) -> float | None:
            return None if milliwatts is None else milliwatts / 1000.0

        reasons_fn = (
            "nvmlDeviceGetCurrentClocksEventReasons"
            if hasattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons")
            else "nvmlDeviceGetCurrentClocksThrottleReasons"
        )
        mask = read(reasons_fn, handle)
        return {
            "index": index,
            "name": read("nvmlDeviceGetName", handle),
            "driver_version": read("nvmlSystemGetDriverVersion"),
            "sm_clock_mhz": read("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_SM),
            "sm_clock_max_mhz": read("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": read("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM),
            "mem_clock_max_mhz": read("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_MEM),
            "temperature_c": read("nvmlDeviceGetTemperature", handle, pynvml.NVML_TEMPERATURE_GPU),
            "power_w": watts(read("nvmlDeviceGetPowerUsage", handle)),
            "power_limit_w": watts(read("nvmlDeviceGetEnforcedPowerLimit", handle)),
            "clock_event_mask": mask,
            "clock_event_reasons": None if mask is None else decode_clock_reasons(mask),
        }
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
