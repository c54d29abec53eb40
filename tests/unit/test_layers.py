"""The layering of docs/architecture.md, checked on the source: imports run one way, and no module reads
another's private names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jobscheduler"

#: Modules of the record and below: they import nothing above them.
FOUNDATION = {
    "models",
    "tracking",
    "outcomes",
    "states",
    "ids",
    "record_keys",
    "conf",
    "exceptions",
    "registry",
    "context",
    "checks",
    "extras",
}
ABOVE_FOUNDATION = {
    "runners",
    "queue",
    "temporal",
    "dashboard",
    "admin",
    "shortcuts",
    "legacy",
    "management",
    "tasks",
    "testing",
    "pytest_plugin",
}

#: `x._name` reads that are not another module's private state: Django's documented model API and `os._exit`.
ALLOWED_PRIVATE_READS = {"_meta", "_default_manager", "_exit"}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def name_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """Every jobscheduler module `path` imports (top level or inside functions), as dotted names."""
    package = name_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("jobscheduler")}


def layer(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


IMPORTS = {name_of(p): imported(p) for p in modules()}


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if layer(m) in FOUNDATION))
def test_the_record_and_below_import_nothing_above_them(module):
    assert not {i for i in IMPORTS[module] if layer(i) in ABOVE_FOUNDATION}


@pytest.mark.parametrize(("backend", "other"), [("queue", "temporal"), ("temporal", "queue")])
def test_no_backend_imports_the_other(backend, other):
    offenders = {
        m: i for m, i in IMPORTS.items() if layer(m) == backend and any(layer(x) == other for x in i)
    }
    assert not offenders


def test_the_runner_api_imports_no_backend():
    for module in (m for m in IMPORTS if layer(m) == "runners"):
        assert not {i for i in IMPORTS[module] if layer(i) in {"queue", "temporal"}}, module


def test_the_dashboard_goes_through_the_runners_not_the_backends_or_the_record():
    for module in (m for m in IMPORTS if layer(m) in {"dashboard", "admin"}):
        assert not {i for i in IMPORTS[module] if layer(i) in {"queue", "temporal", "tracking"}}, module


def private_names_defined(tree: ast.Module) -> set[str]:
    """The `_names` a module defines itself: methods and functions, class attributes, `self._x = ...`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return {n for n in names if n.startswith("_")}


def test_no_module_reads_another_modules_private_names():
    reads = []
    for path in modules():
        where = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text())
        own = private_names_defined(tree)  # a class of the module may read them on another instance
        for node in ast.walk(tree):
            private = (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            )
            if not private or node.attr in own or node.attr in ALLOWED_PRIVATE_READS:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                continue
            reads.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    assert reads == []
