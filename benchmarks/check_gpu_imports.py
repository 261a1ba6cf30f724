#!/usr/bin/env python
"""Every module on the GPU path imports without fvcore, ptflops or onnx (the GPU image has none of them).

    python benchmarks/check_gpu_imports.py    # exit 0 and one OK line, or the first ImportError

Checked here in a torch 2.11 / triton 3.6 / Python 3.12 venv (the GPU image's versions) and run first by
benchmarks/gpu_session.sh, before the wheels in .whl/ (fvcore, ptflops) are put on the path.
"""
import importlib
import importlib.util
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["zoo", "zoo.ska", "zoo.ska.reference", "zoo.ska.op", "zoo.ska.triton", "zoo.lsnet", "zoo.lsnet_cpu",
           "lsbench.settings", "lsbench.timing", "lsbench.profile", "lsbench.training", "lsbench.isolate",
           "lsbench.scaling", "lsbench.anatomy_job", "lsbench.erf", "lsbench.cli"]
SCRIPTS = ["benchmarks/gpu_ska.py", "benchmarks/gpu_official.py"]

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    present = [m for m in ("fvcore", "ptflops", "onnx") if importlib.util.find_spec(m) is not None]
    for name in MODULES:
        importlib.import_module(name)
    for script in SCRIPTS:
        runpy.run_path(str(ROOT / script), run_name="imported")
    import torch
    import triton

    print(f"OK: {len(MODULES)} modules and {len(SCRIPTS)} scripts import with torch {torch.__version__}, "
          f"triton {triton.__version__}, python {sys.version.split()[0]}"
          + (f" (note: {', '.join(present)} present here)" if present else " (no fvcore, ptflops, onnx)"))
