"""Energy of a timed window on an NVIDIA GPU, from NVML's total-energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` is a monotonic millijoule counter since the driver loaded
(Volta and newer). Reading it at both ends of the timed window gives the energy of the window itself,
independent of how often power is sampled; divided by the images processed it is J/img, divided by the
window's seconds the average power. The counter is refreshed by the driver every few tens of
milliseconds, so windows of a second or more are needed for a few-percent figure (``seconds`` is kept).
Where NVML or the counter is missing (no driver, pre-Volta GPU, a vGPU that hides it) the energy
figures are None, never 0; clocks and temperature are read at both ends as far as the GPU tells them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from .env import nvml

__all__ = ["EnergyWindow"]


@dataclass
class EnergyWindow:
    """``with EnergyWindow(index) as e: <timed loop>``; then ``e.per_image(images)`` in J/img.

    Enter it after warm-up, right before the first timed call; on exit it synchronises CUDA (so queued
    work is inside the window) before the counter is read again.
    """

    index: int = 0
    energy_j: float | None = None
    seconds: float | None = None
    power_avg_w: float | None = None
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    available: bool = False
    note: str | None = None
    _nv: Any = field(default=None, repr=False)
    _handle: Any = field(default=None, repr=False)
    _mj: int | None = field(default=None, repr=False)
    _t0: float = field(default=0.0, repr=False)

    def _read(self, name: str, *args: Any) -> Any:
        fn = getattr(self._nv, name, None)
        if fn is None:
            return None
        try:
            return fn(self._handle, *args)
        except self._nv.NVMLError:
            return None

    def _state(self) -> dict[str, Any]:
        nv = self._nv
        power = self._read("nvmlDeviceGetPowerUsage")
        return {"sm_clock_mhz": self._read("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_SM", 1)),
                "mem_clock_mhz": self._read("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_MEM", 2)),
                "temperature_c": self._read("nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
                "power_w": None if power is None else power / 1000.0}

    def __enter__(self) -> "EnergyWindow":
        self._nv = nvml()
        if self._nv is None:
            self.note = "NVML not available"
            return self
        try:
            self._handle = self._nv.nvmlDeviceGetHandleByIndex(self.index)
        except self._nv.NVMLError as exc:
            self.note = f"no NVML device {self.index}: {exc}"
            self._shutdown()
            return self
        self.start = self._state()
        self._mj = self._read("nvmlDeviceGetTotalEnergyConsumption")
        if self._mj is None:
            self.note = "NVML has no total-energy counter on this GPU"
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self._nv is None:
            return
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass
        self.seconds = time.perf_counter() - self._t0
        if self._mj is not None:
            mj = self._read("nvmlDeviceGetTotalEnergyConsumption")
            if mj is not None:
                self.available = True
                self.energy_j = (mj - self._mj) / 1000.0
                self.power_avg_w = self.energy_j / self.seconds if self.seconds > 0 else None
        self.end = self._state()
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass

    def per_image(self, images: int) -> float | None:
        """Joules per image over the window, None without the counter."""
        if self.energy_j is None or images <= 0:
            return None
        return self.energy_j / images

    def as_dict(self, images: int | None = None) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["start"], out["end"] = dict(self.start), dict(self.end)
        if images is not None:
            out["images"] = images
            out["j_per_img"] = self.per_image(images)
        return out
