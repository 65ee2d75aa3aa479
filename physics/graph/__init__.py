"""World states as torch_geometric graphs: neighbour search, hierarchy, builder."""

from physics.graph.builder import GraphBuilder, GraphConfig, NodeType, Relation, collate
from physics.graph.hierarchy import assign_roots, hierarchy_edges, kmeans
from physics.graph.neighbors import (
    RADIUS_METHODS,
    radius_graph,
    radius_graph_brute,
    radius_graph_kdtree,
)

__all__ = [
    "GraphBuilder",
    "GraphConfig",
    "NodeType",
    "Relation",
    "collate",
    "assign_roots",
    "hierarchy_edges",
    "kmeans",
    "RADIUS_METHODS",
    "radius_graph",
    "radius_graph_brute",
    "radius_graph_kdtree",
]
