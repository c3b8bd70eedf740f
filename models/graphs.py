"""Electrode layouts -> graph edges for the GNN.

Edges are directed pairs (source, target) in both directions, always with one self loop per node, so a node keeps
its own embedding in the attention and a one-channel needle is a valid one-node graph. The GAT layers are built with
``add_self_loops=False`` because the loops are already here (and adding them inside the layer would need
data-dependent indexing that makes ONNX export harder).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simulators.electrodes import ElectrodeLayout

GRAPH_KINDS = ("layout", "full")


def as_layout(layout: ElectrodeLayout | dict[str, Any]) -> ElectrodeLayout:
    return layout if isinstance(layout, ElectrodeLayout) else ElectrodeLayout.from_dict(layout)


def grid_edges(grid_index: tuple[tuple[int, int], ...], diagonal: bool = True) -> list[tuple[int, int]]:
    """Neighbours on a grid by (row, col) index: 4-neighbourhood, or 8 with ``diagonal``; missing cells are skipped."""
    node_of = {cell: node for node, cell in enumerate(grid_index)}
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    edges = []
    for (row, col), node in node_of.items():
        for d_row, d_col in steps:
            neighbour = node_of.get((row + d_row, col + d_col))
            if neighbour is not None:
                edges.append((neighbour, node))
    return edges


def ring_edges(n_channels: int, reach: int = 1) -> list[tuple[int, int]]:
    """Each electrode linked to the ``reach`` nearest on either side around the ring (wrapping)."""
    edges = set()
    for node in range(n_channels):
        for step in range(1, reach + 1):
            for neighbour in ((node + step) % n_channels, (node - step) % n_channels):
                if neighbour != node:
                    edges.add((neighbour, node))
    return sorted(edges)


def nearest_edges(positions_mm: np.ndarray, k: int = 4) -> list[tuple[int, int]]:
    """Symmetric k-nearest-neighbour graph on electrode positions (for custom layouts)."""
    n = len(positions_mm)
    if n < 2:
        return []
    distances = np.linalg.norm(positions_mm[:, None, :] - positions_mm[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, : min(k, n - 1)]
    edges = set()
    for node, neighbours in enumerate(nearest):
        for neighbour in neighbours:
            edges.add((int(neighbour), node))
            edges.add((node, int(neighbour)))
    return sorted(edges)


def layout_edges(layout: ElectrodeLayout | dict[str, Any], graph: str = "layout") -> torch.Tensor:
    """edge_index (2, E) int64 for a layout, self loops included.

    ``graph="layout"``: grid 8-neighbours, ring +-1 neighbours, needle a lone node, custom 4 nearest neighbours.
    ``graph="full"``: every pair, so the graph attention learns which electrodes matter to each other.
    """
    layout = as_layout(layout)
    n = layout.n_channels
    if graph == "full":
        edges = [(source, target) for target in range(n) for source in range(n) if source != target]
    elif graph != "layout":
        raise ValueError(f"graph must be one of {GRAPH_KINDS}, not {graph!r}")
    elif layout.kind == "grid" and layout.grid_index:
        edges = grid_edges(layout.grid_index)
    elif layout.kind == "ring":
        edges = ring_edges(n)
    elif layout.kind == "needle" or n == 1:
        edges = []
    else:
        edges = nearest_edges(layout.positions_mm)
    edges += [(node, node) for node in range(n)]
    return torch.tensor(sorted(set(edges)), dtype=torch.long).reshape(-1, 2).T.contiguous()
