"""The parts stay apart: what each package may import, read from the code's own imports."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "dialogues", "nlu", "storage", "locales")
# Only the edge talks to the outside world through these (CONVENTIONS.md, 1).
EDGE_ONLY = ("telegram", "fastapi", "starlette", "uvicorn", "apscheduler", "prometheus_client")
# The dialogue is pure: no database, no network, no processes, no framework.
IO_MODULES = ("sqlalchemy", "alembic", "httpx", "socket", "subprocess", "asyncio", "requests",
              "psycopg", "storage", "bot", *EDGE_ONLY)
# The parts of the edge; the composition modules at bot/'s top may wire any of them.
EDGE_PARTS = ("bot.api", "bot.channels", "bot.pushes")
COMPOSITION = ("bot.app", "bot.cli", "bot.simulation", "bot.replay")
# bot.channels.base is the contract every channel keeps; the sender delivers through it.
SHARED_CONTRACTS = ("bot.channels.base",)


@dataclass(frozen=True)
class Import:
    """One imported module (and, for `from X import Y`, the names) of one source file."""

    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    names: tuple[str, ...]
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> list[Import]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found += [Import(module, alias.name, (), node.lineno) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.append(Import(module, node.module,
                                        tuple(alias.name for alias in node.names), node.lineno))
    return found


IMPORTS = _imports()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _part(module: str) -> str:
    """Return the part a module belongs to: a package, or a subpackage of the edge."""
    for part in EDGE_PARTS:
        if _within(module, (part,)):
            return part
    return module.split(".")[0] if not module.startswith("bot.") else "bot"


def _where(imp: Import) -> str:
    return f"{imp.module} (line {imp.line}) imports {imp.target}"


def test_the_layout_is_read() -> None:
    assert len({i.module for i in IMPORTS}) > 40
    assert {_part(i.module) for i in IMPORTS} >= {*EDGE_PARTS, "bot", "dialogues", "storage"}


def test_dialogues_import_no_io() -> None:
    wrong = [_where(i) for i in IMPORTS
             if i.module.startswith("dialogues") and _within(i.target, IO_MODULES)]
    assert not wrong, wrong


def test_storage_never_imports_the_edge_or_the_dialogue() -> None:
    wrong = [_where(i) for i in IMPORTS if i.module.startswith("storage")
             and _within(i.target, ("bot", "dialogues", "nlu"))]
    assert not wrong, wrong


def test_only_the_edge_imports_the_frameworks() -> None:
    wrong = [_where(i) for i in IMPORTS
             if not i.module.startswith("bot") and _within(i.target, EDGE_ONLY)]
    assert not wrong, wrong


@pytest.mark.parametrize("part", EDGE_PARTS)
def test_a_part_of_the_edge_does_not_reach_into_a_sibling(part: str) -> None:
    siblings = tuple(p for p in EDGE_PARTS if p != part)
    wrong = [_where(i) for i in IMPORTS if _part(i.module) == part
             and _within(i.target, siblings) and not _within(i.target, SHARED_CONTRACTS)]
    assert not wrong, wrong


def test_the_top_of_the_edge_imports_its_parts_only_to_compose_them() -> None:
    wrong = [_where(i) for i in IMPORTS if _part(i.module) == "bot"
             and not _within(i.module, COMPOSITION) and _within(i.target, EDGE_PARTS)
             and not _within(i.target, SHARED_CONTRACTS)]
    assert not wrong, wrong


def test_no_module_imports_a_private_name_of_another_part() -> None:
    wrong = [f"{_where(i)}: {name}" for i in IMPORTS for name in i.names
             if name.startswith("_") and _within(i.target, PACKAGES)
             and _part(i.target) != _part(i.module)]
    assert not wrong, wrong
