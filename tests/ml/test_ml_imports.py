import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "rlhf.ml",
    "rlhf.ml.config",
    "rlhf.ml.data",
    "rlhf.ml.callbacks",
    "rlhf.ml.base_model",
    "rlhf.ml.dpo",
    "rlhf.ml.reward",
    "rlhf.ml.generate",
    "rlhf.ml.__main__",
]
HEAVY = {"django", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers"}


def test_it_imports_every_ml_module_without_django_or_heavy_libraries():
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "rlhf" in loaded
    assert loaded & HEAVY == set()
