"""The library/app split holds: `llink` never imports `llink_app`, and the command table loads
without torch (so `llink --help` answers fast; imports wait until a command runs)."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_library_never_imports_the_app():
    bad = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.split(".")[0] == "llink_app")
           for p in (SRC / "llink").rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_command_table_loads_without_torch():
    code = ("import sys; import llink_app.__main__ as m; m._commands(); "
            "from llink_app.__main__ import _normalise_argv; _normalise_argv(['slots', '--help']); "
            "print(sorted(k for k in ('torch', 'transformers', 'peft', 'accelerate') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
