"""Data parallel search: the ranks' trees back in order, with the run's ids."""

from __future__ import annotations

from presrm.search.tree import Tree
from presrm.store.writer import RunStore


def interleave(parts: list[list[Tree]]) -> list[Tree]:
    """Undo the ``part[rank::world]`` split: the trees back in their problems' order."""
    out: list[Tree] = []
    for i in range(max((len(p) for p in parts), default=0)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def renumber(trees: list[Tree], store: RunStore) -> list[Tree]:
    """Give trees searched with per-rank ids (LocalIds) the run's ids, in place.

    Tree, node and judgment ids come from the store's counters, like in a one-process run;
    the references between them (a node's parent, a judgment's two nodes and winner) follow.
    """
    for tree in trees:
        (tree.tree_id,) = store.new_ids("tree", 1)
        new = dict(zip([n.node_id for n in tree.nodes], store.new_ids("node", len(tree.nodes)), strict=True))
        for node in {id(n): n for n in [*tree.nodes, *tree.path]}.values():  # each object once
            node.node_id = new[node.node_id]
            node.parent_id = None if node.parent_id is None else new[node.parent_id]
        for judgment, jid in zip(tree.judgments, store.new_ids("judgment", len(tree.judgments)), strict=True):
            judgment.judgment_id = jid
            judgment.node_a = new[judgment.node_a]
            judgment.node_b = None if judgment.node_b is None else new[judgment.node_b]
            judgment.winner = None if judgment.winner is None else new[judgment.winner]
    return trees
