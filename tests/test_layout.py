"""The package's shape: no import loop, and no import from a lower layer to a higher one.

Every import counts, those inside functions too: a lazy import hides a loop from Python, not from
a reader. The layers, lowest first (a module may import its own layer and those below):
"""
import ast
from pathlib import Path

import pytest

import sharedgan

PACKAGE = Path(sharedgan.__file__).parent
LAYERS = [
    {"version", "errors"},
    {"math"},  # losses, β schedules, seeding: pure functions of tensors
    {"models"},  # model specs, factories and the built-in models
    {"runtime"},  # the slot buffer, ZeroMQ messages, the process group, devices, fault points, OS signals
    {"storage"},  # files, checkpoints, run directories, run.h5
    {"data"},  # 2-D mixtures and image data sets (their caches are written through storage)
    {"config"},  # the one configuration, validated
    {"roles", "eval", "plots", "board"},  # the role steps; metrics; pictures; the TensorBoard mirror
    {"engines"},  # where and when the role steps run
    {"api", "runs", "bench", "compare", "teaching", "cluster"},  # train/resume, finished runs, timing studies,
    # runs side by side, a teacher trained on its own, a torchrun job's ranks
    {"cli", "__init__", "__main__"},
]


def module_name(path: Path) -> str:
    parts = ["sharedgan", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} belongs to no layer; add its package to LAYERS in {__file__}")


def imports_of(module: str) -> set[str]:
    """The sharedgan modules ``module`` imports (``from pkg import sub`` counts as importing ``sub``)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sharedgan"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "sharedgan":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in MODULES else source)
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer_and_imports_only_what_exists():
    for module, targets in GRAPH.items():
        layer(module)
        missing = sorted(t for t in targets if t not in MODULES)
        assert not missing, f"{module} imports {missing}, which do not exist"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets if layer(t) > layer(m))
    assert not upward, "imports that climb the layers:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_loop():
    # a package's __init__ may re-export its public names (sharedgan/__init__ does): it is the
    # one module allowed to import from below it that also sits above everything
    graph = {m: {t for t in targets if t != "sharedgan"} for m, targets in GRAPH.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import loop: " + " -> ".join(cycle)


def test_the_checks_see_a_loop_and_a_climb():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer("sharedgan.math.losses") < layer("sharedgan.engines.sequential")
    with pytest.raises(AssertionError):
        layer("sharedgan.nowhere")


def test_roles_know_nothing_of_processes_or_messages():
    for module, targets in GRAPH.items():
        if module.startswith("sharedgan.roles."):
            banned = {t for t in targets if t.startswith(("sharedgan.runtime.messages", "sharedgan.runtime.procgroup",
                                                          "sharedgan.engines"))}
            assert not banned, f"{module} imports {sorted(banned)}"
