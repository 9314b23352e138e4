"""The layers: the core never imports the UI, and imports flow one way.

click and rich stay in cli/ and render/.  Below them the direction is
errors, model <- kernel, elf <- classify <- live <- views: a module imports
only from its own layer or the ones to its left, so there is no cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "procmap"

# Each module's layer; a module may import from its layer or a lower one.
LAYERS = {
    "errors": 0,
    "units": 0,
    "names": 0,
    "arch": 0,
    "model": 0,
    "files": 1,
    "kernel": 1,
    "elf": 1,
    "classify": 2,
    "live": 3,
    "views": 4,
    "render": 5,
    "cli": 6,
    "__init__": 7,
    "__main__": 7,
}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


CORE = [m for m in _modules() if m.split(".")[0] not in ("render", "cli", "__main__")]


# One fresh interpreter, forked once for each module: each child starts with the
# modules a fresh `python -c` has, imports one procmap module, and says which of
# click's and rich's it then holds.  (An interpreter each: 30 times the start-up.)
UI_IMPORTS = """
import json, os, sys
found = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            __import__("procmap." + module)
            ui = sorted(m for m in sys.modules if m.split(".")[0] in ("click", "rich"))
            os.write(write, json.dumps(ui).encode())
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        found[module] = json.loads(f.read() or "null")  # null: the import failed
    os.waitpid(pid, 0)
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def ui_imports() -> tuple[dict[str, list[str] | None], str]:
    """Each core module: the click and rich modules importing it alone brings in."""
    run = subprocess.run(
        [sys.executable, "-c", UI_IMPORTS, *CORE], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout), run.stderr


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_click_nor_rich(module, ui_imports):
    found, errors = ui_imports
    assert found[module] == [], found[module] if found[module] is not None else errors


def test_the_python_api_at_work_imports_neither():
    code = (
        "import sys, procmap\n"
        "pm = procmap.read_map('self')\n"
        "procmap.where('self', [pm.regions[0].start])\n"
        "procmap.explain_elf(sys.executable).to_dict()\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
        "assert not ui, ui\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each procmap module `path` imports, at any depth."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if package[-1] == "__init__":
        package = package[:-1]
    else:
        package = package[:-1]
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # names for annotations only: no import at run time
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join((*base, node.module or "")).strip(".")
            if node.module is None:  # from . import a, b
                out.extend((node.lineno, f"{target}.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("procmap"):
            out.append((node.lineno, node.module or ""))
    return out


def _layer(module: str) -> int:
    if module == "procmap.__version__":
        return 0  # the package's version: set before any module of it is imported
    parts = module.split(".")[1:] or ["__init__"]
    return LAYERS[parts[0]]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_point_down_the_layers(path):
    me = _layer(".".join(("procmap", *path.relative_to(PACKAGE).with_suffix("").parts)))
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if target != "procmap" and _layer(target) > me
    ]
    assert not upward, f"{path.name} imports from a higher layer: {upward}"


def test_no_import_cycle_between_modules():
    """A module-level import graph with no cycle (imports inside functions included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        me = ".".join(("procmap", *parts))
        graph[me] = {
            t for _, t in _imports(path) if t not in (me, "procmap", "procmap.__version__")
        }
    known = set(graph)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            target = nxt
            while target not in known and "." in target:  # a name imported from a module
                target = target.rsplit(".", 1)[0]
            if (
                target not in known
                or target.startswith(node + ".")
                or node.startswith(target + ".")
            ):
                continue  # a package and its own modules
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
