"""The package's import graph has no cycles: every import counts, those inside functions and
under ``TYPE_CHECKING`` included (import-linter's layer contracts ignore the latter)."""

from __future__ import annotations

import grimp


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One shortest cycle through each strongly connected group of modules (Tarjan's
    algorithm), as ``[a, b, ..., a]``."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return [_shortest_cycle(min(group), group, edges) for group in groups]


def _shortest_cycle(start: str, group: set[str], edges: dict[str, list[str]]) -> list[str]:
    """Breadth-first from ``start`` back to itself, inside its group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for other in edges[module]:
                if other == start:
                    return [*paths[module], start]
                if other in group and other not in paths:
                    paths[other] = [*paths[module], other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"{start} is in a cycle group but on no cycle")


def describe(cycle: list[str], graph: grimp.ImportGraph) -> str:
    """``a -> b (a.py:12 'from b import x') -> ...``: each step with its import line."""
    steps = []
    for importer, imported in zip(cycle, cycle[1:], strict=False):
        detail = graph.get_import_details(importer=importer, imported=imported)
        where = f" (line {detail[0]['line_number']}: {detail[0]['line_contents']})" if detail \
            else ""
        steps.append(f"{importer} -> {imported}{where}")
    return "\n    ".join(steps)


def test_import_cycles_are_found():
    graph = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.c", imported="p.d")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]


def test_emovox_has_no_import_cycles():
    graph = grimp.build_graph("emovox", include_external_packages=False)
    cycles = import_cycles(graph)
    report = "\n".join(f"  cycle {i + 1}:\n    {describe(c, graph)}" for i, c in enumerate(cycles))
    print(report or "no import cycles")
    assert not cycles, f"{len(cycles)} import cycle(s) in src/emovox:\n{report}"
