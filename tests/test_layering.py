"""The package's import layering: no import circles, and no layer reaching up.

Rules: ``modules/`` and ``objectives/`` import nothing from ``torchrl_vd.train``; ``modules/`` imports nothing
from ``torchrl.envs`` or ``torchrl_vd.envs`` (networks know shapes, not environments); ``envs/`` imports
nothing from ``objectives/`` or ``train/``; nothing below ``reproduce/`` (the research harness, on top of
``train/``) imports it; nothing below ``export/`` (run files in other tools' formats) imports it, and it
imports nothing from ``reproduce/``; only the console entry points import ``cli.py``. Imports inside functions count too.

Run ``python tests/test_layering.py`` to print every import edge of torchrl_vd/ and the breaks (none).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "torchrl_vd"
LOWER = ("torchrl_vd.keys", "torchrl_vd.igm", "torchrl_vd.testing", "torchrl_vd.modules", "torchrl_vd.envs",
         "torchrl_vd.objectives", "torchrl_vd.train")
RULES = [("torchrl_vd.modules", "torchrl_vd.train"), ("torchrl_vd.objectives", "torchrl_vd.train"),
         ("torchrl_vd.modules", "torchrl.envs"), ("torchrl_vd.modules", "torchrl_vd.envs"),
         ("torchrl_vd.envs", "torchrl_vd.objectives"), ("torchrl_vd.envs", "torchrl_vd.train")]
RULES += [(low, "torchrl_vd.reproduce") for low in LOWER]  # the harness sits on top of train/
RULES += [(low, "torchrl_vd.export") for low in LOWER]  # the exporters read train/'s run files, from above
RULES += [("torchrl_vd.export", "torchrl_vd.reproduce")]
RULES += [(low, "torchrl_vd.cli") for low in (*LOWER, "torchrl_vd.reproduce", "torchrl_vd.export")]  # the CLI on top


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> every module it imports (absolute names; ``from a import b`` counts a and a.b)."""
    graph = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[module] = targets
    return graph


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    return sorted({f"{m} imports {t} ({src} must not reach {dst})" for m, ts in graph.items() for t in ts
                   for src, dst in RULES if _within(m, src) and _within(t, dst)})


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Import circles between files (package ``__init__`` re-exports left out)."""
    inits = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    edges = {m: {t for t in ts if t in graph and t != m and t not in inits and not _within(m, t)}
             for m, ts in graph.items() if m not in inits}
    found, done = set(), set()

    def visit(u, stack):
        for v in edges.get(u, ()):
            if v in stack:
                found.add(" -> ".join(stack[stack.index(v):] + [v]))
            elif v not in done:
                visit(v, stack + [v])
        done.add(u)

    for u in sorted(edges):
        if u not in done:
            visit(u, [u])
    return sorted(found)


def test_no_layer_reaches_up():
    assert layer_breaks(import_graph()) == []


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_checker_catches_a_break_and_a_circle():
    graph = {"torchrl_vd.modules.x": {"torchrl_vd.train.loop"}, "torchrl_vd.train.a": {"torchrl_vd.train.b"},
             "torchrl_vd.train.b": {"torchrl_vd.train.a"}, "torchrl_vd.train.c": {"torchrl_vd.reproduce.run"},
             "torchrl_vd.reproduce.d": {"torchrl_vd.cli"}}
    assert layer_breaks(graph) == ["torchrl_vd.modules.x imports torchrl_vd.train.loop "
                                   "(torchrl_vd.modules must not reach torchrl_vd.train)",
                                   "torchrl_vd.reproduce.d imports torchrl_vd.cli "
                                   "(torchrl_vd.reproduce must not reach torchrl_vd.cli)",
                                   "torchrl_vd.train.c imports torchrl_vd.reproduce.run "
                                   "(torchrl_vd.train must not reach torchrl_vd.reproduce)"]
    assert circles(graph) == ["torchrl_vd.train.a -> torchrl_vd.train.b -> torchrl_vd.train.a"]


if __name__ == "__main__":
    g = import_graph()
    for module in sorted(g):
        internal = sorted(t for t in g[module] if t in g and t != module)
        print(f"{module} -> {', '.join(internal) or '-'}")
    problems = layer_breaks(g) + [f"circle: {c}" for c in circles(g)]
    print("\n".join(problems) or "layering: 0 upward imports, 0 circles")
    raise SystemExit(1 if problems else 0)
