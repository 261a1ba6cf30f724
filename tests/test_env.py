import json
import os
import subprocess
from pathlib import Path

import numpy
import pytest
import torch

from lsbench.env import (
    cuda_device_info,
    decode_clock_reasons,
    fingerprint,
    git_commit,
    gpu_telemetry,
    package_version,
)
from lsbench.errors import LsbenchError
from lsbench.timing import cpu_threads

REPO = Path(__file__).resolve().parents[1]

KEYS = {
    "hostname", "platform", "os", "python", "versions", "torch_version", "torch_cuda", "cudnn",
    "cpu_model", "cpu_logical_cores", "cpu_physical_cores", "cpu_governor", "cpu_mhz", "affinity",
    "torch_num_threads", "torch_num_interop_threads", "backends", "git_commit", "git_dirty",
    "device", "thread_settings",
}


def test_fingerprint_has_the_keys_and_true_values():
    fp = fingerprint()
    assert KEYS <= fp.keys()
    assert fp["device"] == "cpu" and "gpu" not in fp
    assert fp["torch_version"] == torch.__version__ == fp["versions"]["torch"]
    assert fp["versions"]["numpy"] == numpy.__version__
    assert set(fp["versions"]) == {"torch", "torchvision", "timm", "numpy", "fvcore", "ptflops", "onnxruntime"}
    assert fp["cpu_logical_cores"] == os.cpu_count()
    assert fp["cpu_physical_cores"] is None or 1 <= fp["cpu_physical_cores"] <= os.cpu_count()
    assert fp["torch_num_threads"] == torch.get_num_threads()
    assert fp["torch_num_interop_threads"] == torch.get_num_interop_threads()
    assert fp["backends"]["mkldnn"] == torch.backends.mkldnn.is_available()
    assert fp["torch_cuda"] == torch.version.cuda
    json.dumps(fp)  # recorded as JSON with every measurement


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="Linux /proc/cpuinfo needed")
def test_cpu_model_and_affinity_come_from_the_system():
    fp = fingerprint()
    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")]
    if names:
        assert fp["cpu_model"] == names[0]
    assert fp["affinity"] == sorted(os.sched_getaffinity(0))


def test_fingerprint_records_thread_settings_of_the_run():
    with cpu_threads(1) as effective:
        fp = fingerprint(threads=effective)
        assert fp["thread_settings"] == effective
        assert fp["torch_num_threads"] == 1


def test_fingerprint_rejects_unknown_device():
    with pytest.raises(LsbenchError, match="unknown device"):
        fingerprint("tpu")


def test_fingerprint_cuda_adds_gpu_fields_without_failing():
    fp = fingerprint("cuda")
    assert "gpu" in fp and "cuda_device" in fp
    if not torch.cuda.is_available():
        assert fp["cuda_device"] is None
    else:
        assert fp["cuda_device"]["name"] == torch.cuda.get_device_name(0)


def test_package_version_of_missing_package_is_none():
    assert package_version("lsbench-surely-not-installed") is None
    assert package_version("numpy") == numpy.__version__


def test_git_commit_of_this_repo_and_of_a_plain_directory(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert git_commit() == head.stdout.strip()
        assert len(git_commit()) == 40
    assert git_commit(tmp_path) is None


def test_decode_clock_reasons_known_masks():
    assert decode_clock_reasons(0) == []
    assert decode_clock_reasons(0x1) == ["gpu_idle"]
    assert decode_clock_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_clock_reasons(0x8 | 0x800) == ["hw_slowdown", "unknown_0x800"]


def test_gpu_telemetry_without_driver_is_none_not_an_error():
    telemetry = gpu_telemetry()
    if not torch.cuda.is_available():
        assert telemetry is None
        assert cuda_device_info() is None
    else:
        assert telemetry is not None and telemetry["name"]
        assert telemetry["sm_clock_max_mhz"] is None or telemetry["sm_clock_max_mhz"] > 0
        assert isinstance(telemetry["clock_event_reasons"], (list, type(None)))
        info = cuda_device_info()
        assert info["name"] == torch.cuda.get_device_name(0) and info["total_memory"] > 0
