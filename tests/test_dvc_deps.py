"""dvc.yaml's code deps cannot drift: every module a stage's code imports (at any depth, inside functions too)
must lie under one of that stage's deps, or DVC would not rerun the stage when that module changes."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"phys_ml.cli": ROOT / "cli", "phys_ml.stages": ROOT / "stages", "phys_ml": ROOT / "phys_ml"}


def module_file(name: str) -> Path | None:
    """The source file of a phys_ml module (a package's __init__.py), or None for other modules."""
    for prefix, folder in PACKAGE_DIRS.items():  # longest prefixes first
        if name == prefix or name.startswith(prefix + "."):
            rest = name[len(prefix):].lstrip(".").split(".") if name != prefix else []
            base = folder.joinpath(*rest)
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def module_name(path: Path) -> str:
    for prefix, folder in PACKAGE_DIRS.items():
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([prefix, *parts])
    raise ValueError(path)


def imported_modules(path: Path) -> set[str]:
    """Every phys_ml module named by an import statement in ``path`` (relative imports resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name.startswith("phys_ml")}


def import_closure(entry: str) -> set[Path]:
    todo, seen = [entry], set()
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imported_modules(path))
        parent = module_name(path).rpartition(".")[0]  # importing a module runs its packages' __init__ too
        if parent:
            todo.append(parent)
    return seen


def only_a_docstring(path: Path) -> bool:
    """A package __init__.py holding nothing but its docstring runs no code."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def stage_entry(cmd: str) -> str:
    """The module whose functions a stage's command runs (the CLI only dispatches to it)."""
    words = cmd.split()
    assert words[0] == "phys-ml", cmd
    if words[1] == "report":
        return "phys_ml.stages.report_stage"
    if words[1] in ("generate", "train", "evaluate"):
        return f"phys_ml.stages.{words[2]}.pipeline"
    return f"phys_ml.stages.{words[1]}.pipeline"  # a task helper command such as `phys-ml groundwater ies`


def stages():
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        yield pytest.param(stage["cmd"].replace("${item.sub}", "sub"), stage["deps"], id=name)


@pytest.mark.parametrize("cmd,deps", list(stages()))
def test_every_imported_module_is_a_dep(cmd, deps):
    dep_paths = [ROOT / d for d in deps]
    # phys_ml/__init__.py only reads the installed version (stored in artifact metadata): not stage code
    closure = import_closure(stage_entry(cmd)) - {ROOT / "phys_ml" / "__init__.py"}
    missing = [str(p.relative_to(ROOT)) for p in sorted(closure)
               if not only_a_docstring(p) and not any(p == d or p.is_relative_to(d) for d in dep_paths)]
    assert not missing, f"`{cmd}` imports modules that are not among its dvc.yaml deps: {missing}"


def test_the_check_sees_function_level_and_relative_imports():
    closure = import_closure("phys_ml.stages.groundwater.pipeline")
    assert ROOT / "stages" / "common" / "artifacts.py" in closure
    assert ROOT / "stages" / "groundwater" / "ies.py" in closure
