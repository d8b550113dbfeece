"""The reasoning tree: every candidate step of one search tree, as a Textual ``Tree``.

Children of a step are the candidates that continue it, in expansion order (a
rollback starts a new expansion round under the same parent). Labels are
:class:`rich.text.Text` built by :func:`presrm.tui.format.node_label`, so step
text is never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from presrm.inspect.trees import NodeRow, TreeDetail
from presrm.tui import format as fmt


class ReasoningTree(Tree[NodeRow]):
    """A search tree; node data is the :class:`NodeRow` (None at the root, the question)."""

    BINDINGS = [
        Binding("e", "expand_all", "Expand all"),
        Binding("c", "chosen_path", "Chosen path"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(Text("loading…", style="dim"), **kwargs)  # type: ignore[arg-type]
        self.detail: TreeDetail | None = None
        self._by_node: dict[int, TreeNode[NodeRow]] = {}
        self.guide_depth = 3

    def show(self, detail: TreeDetail, focus_node: int | None = None) -> None:
        """(Re)build from ``detail``, keeping the cursor on the same step when possible."""
        same_tree = self.detail is not None and self.detail.tree_id == detail.tree_id
        previous = (
            self.cursor_node.data.node_id
            if same_tree and self.cursor_node and self.cursor_node.data
            else None
        )
        collapsed = self._collapsed_ids() if same_tree else set()
        self.detail = detail
        self.clear()
        root_label = Text()
        root_label.append(f"{detail.problem_id} ", style="bold")
        root_label.append(fmt.one_line(detail.question, 100))
        self.root.set_label(root_label)
        self.root.expand()
        by_node: dict[int, TreeNode[NodeRow]] = {}

        def add(parent: TreeNode[NodeRow], parent_id: int | None) -> None:
            for node in detail.children(parent_id):
                label = fmt.node_label(node, detail.node_flag_count(node.node_id))
                kids = detail.children(node.node_id)
                if kids:
                    child = parent.add(label, data=node, expand=node.node_id not in collapsed)
                    by_node[node.node_id] = child
                    add(child, node.node_id)
                else:
                    by_node[node.node_id] = parent.add_leaf(label, data=node)

        add(self.root, None)
        self._by_node = by_node
        target = focus_node if focus_node is not None else previous
        if target is None:
            path = detail.chosen_path()
            target = path[0].node_id if path else None
        if target is not None and target in by_node:
            self.select_step(target)

    def _collapsed_ids(self) -> set[int]:
        out: set[int] = set()
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.data is not None and node.allow_expand and not node.is_expanded:
                out.add(node.data.node_id)
            stack.extend(node.children)
        return out

    def select_step(self, node_id: int) -> None:
        """Move the cursor to a step, expanding its ancestors."""
        node = self._by_node.get(node_id)
        if node is None:
            return
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        # Reading last_line rebuilds the line index after the expansions above, so the
        # cursor lands now and the screen is drawn once, not before and after the move.
        if self.last_line >= 0:
            self.move_cursor(node, animate=False)

    def action_expand_all(self) -> None:
        self.root.expand_all()

    def action_chosen_path(self) -> None:
        """Collapse everything but the accepted solution and go to its last step."""
        if self.detail is None:
            return
        path = self.detail.chosen_path()
        keep = {n.node_id for n in path}
        for node_id, tree_node in self._by_node.items():
            if tree_node.allow_expand:
                if node_id in keep:
                    tree_node.expand()
                else:
                    tree_node.collapse()
        if path:
            self.select_step(path[-1].node_id)
