"""The import graph points one way (docs: Architecture): ops ← nn ← tasks ← train ← infer,
data beside tasks. Every import statement in the package is checked, including the ones
inside functions (deferred imports are still dependencies)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grux"
ALLOWED = {
    "ops": {"ops"},
    "nn": {"nn", "ops"},
    "data": {"data"},
    "decode": set(),
    "tasks": {"tasks", "nn", "ops", "data", "decode"},
    "train": {"train", "tasks", "nn", "ops", "data"},
    "infer": {"infer", "train", "tasks", "nn", "ops", "data", "decode"},
}


def grux_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        out |= {n.split(".")[1] for n in names if n.startswith("grux.") and n.count(".") >= 1}
    return out


def test_no_import_points_up_the_layers():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0].removesuffix(".py")
        if layer not in ALLOWED:
            continue
        for target in grux_imports(path) - ALLOWED[layer] - {layer}:
            wrong.append(f"grux/{rel} imports grux.{target}")
    assert not wrong, wrong
    assert grux_imports(PACKAGE / "infer" / "loader.py") >= {"train", "tasks"}  # it sees them
