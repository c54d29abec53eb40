"""The workflow page's graph: steps placed in columns by depth, drawn as plain SVG by the template.

A step's column is the length of the longest chain of dependencies before it, so every edge points right; within
a column steps keep the order they were added. Pure layout: no queries, no markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..workflows import StepStatus

NODE_WIDTH = 180
NODE_HEIGHT = 44
COLUMN_GAP = 70
ROW_GAP = 18
MARGIN = 12
#: Columns of more steps than this are drawn with this many rows and a "+ n more" node: the page stays readable
#: for a fan-out of a thousand invoices.
MAX_ROWS = 12


@dataclass(frozen=True, slots=True)
class Node:
    job_id: str
    label: str
    status: str
    x: int
    y: int
    more: int = 0  # for the summary node of a long column: how many steps it stands for

    @property
    def text_x(self) -> int:
        return self.x + 10

    @property
    def text_y(self) -> int:
        return self.y + 18


@dataclass(frozen=True, slots=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def depths(steps: Sequence[StepStatus]) -> dict[str, int]:
    """Column of each step: 0 without dependencies, else one more than its deepest dependency in the graph
    (Kahn's order, so a chain of a thousand steps needs no recursion)."""
    known = {s.job_id for s in steps}
    waiting = {s.job_id: {d for d in s.depends_on if d in known} for s in steps}
    dependents: dict[str, list[str]] = {}
    for job_id, deps in waiting.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(job_id)
    found = {job_id: 0 for job_id, deps in waiting.items() if not deps}
    ready = list(found)
    while ready:
        job_id = ready.pop()
        for child in dependents.get(job_id, []):
            found[child] = max(found.get(child, 0), found[job_id] + 1)
            waiting[child].discard(job_id)
            if not waiting[child]:
                ready.append(child)
    for job_id in waiting:  # a cycle written by hand into the record: draw it in the first column
        found.setdefault(job_id, 0)
    return found


def layout(steps: Sequence[StepStatus]) -> Graph:
    column_of = depths(steps)
    columns: dict[int, list[StepStatus]] = {}
    for step in steps:
        columns.setdefault(column_of[step.job_id], []).append(step)
    nodes: list[Node] = []
    where: dict[str, Node] = {}
    rows = 0
    for col in sorted(columns):
        members = columns[col]
        shown = members if len(members) <= MAX_ROWS else members[: MAX_ROWS - 1]
        x = MARGIN + col * (NODE_WIDTH + COLUMN_GAP)
        for row, step in enumerate(shown):
            node = Node(step.job_id, step.job_name, step.status, x, MARGIN + row * (NODE_HEIGHT + ROW_GAP))
            nodes.append(node)
            where[step.job_id] = node
        if len(shown) < len(members):
            hidden = members[len(shown) :]
            summary = Node(
                "", f"+ {len(hidden)} more", "", x, MARGIN + len(shown) * (NODE_HEIGHT + ROW_GAP), len(hidden)
            )
            nodes.append(summary)
            for step in hidden:
                where[step.job_id] = summary
        rows = max(rows, min(len(members), MAX_ROWS))
    edges = []
    drawn: set[tuple[int, int, int, int]] = set()
    for step in steps:
        target = where[step.job_id]
        for dep in step.depends_on:
            source = where.get(dep)
            if source is None:
                continue
            line = (
                source.x + NODE_WIDTH,
                source.y + NODE_HEIGHT // 2,
                target.x,
                target.y + NODE_HEIGHT // 2,
            )
            if line not in drawn:
                drawn.add(line)
                edges.append(Edge(*line))
    width = MARGIN * 2 + max(len(columns), 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(rows, 1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Graph(nodes=nodes, edges=edges, width=width, height=height)
