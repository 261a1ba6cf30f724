"""The zoo.ska package's structure (issue 11 item 5): one job per module, no import circle, no private names
across modules, and a CPU path that works where Triton cannot be imported at all."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKA_MODULES = ["zoo.ska.reference", "zoo.ska.op", "zoo.ska", "zoo.ska.triton", "zoo.lsnet_cpu", "zoo"]


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("module", SKA_MODULES)
def test_each_module_imports_alone(module):
    """Importing a module first, in a fresh interpreter, is where an import circle shows (partially initialised
    module errors)."""
    if module == "zoo.ska.triton":
        pytest.importorskip("triton")
    proc = _run(f"import {module}")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_reference_imports_only_torch():
    tree = ast.parse((ROOT / "zoo" / "ska" / "reference.py").read_text())
    imported = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"__future__", "collections", "torch"}, imported


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "zoo").rglob("*.py")))
def test_no_private_names_imported_across_modules(path):
    tree = ast.parse((ROOT / path).read_text())
    private = [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names if a.name.startswith("_") and a.name != "__future__" and n.module != "__future__"]
    assert not private, f"{path} imports private names: {private}"


def test_cpu_path_needs_no_triton():
    """With Triton made unimportable, the models, the op (forward and backward) and use_triton()'s fallback work,
    and zoo.ska.triton is never loaded."""
    proc = _run(r'''
import sys
sys.modules["triton"] = None  # any `import triton` now raises ImportError
import torch, zoo
from zoo.ska import ska, ska_reference, use_triton
x = torch.randn(2, 16, 5, 7, requires_grad=True)
w = torch.randn(2, 2, 9, 5, 7, requires_grad=True)
out = ska(x, w)
out.sum().backward()
torch.testing.assert_close(out, ska_reference(x.detach(), w.detach()))
assert x.grad is not None and w.grad is not None
assert use_triton() is False
m = zoo.create_model("lsnet_t").eval()
with torch.no_grad():
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
assert "zoo.ska.triton" not in sys.modules
print("OK")
''')
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
