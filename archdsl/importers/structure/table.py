"""The mapping table `archdsl import` prints."""
from __future__ import annotations

from .layouts import fmt_shape
from .matcher import ImportResult

def render_table(result: ImportResult, width: int = 44) -> str:
    """The mapping, one line per IR parameter: spec line, IR param, model tensor, model shape -> IR shape."""
    def short(name: str) -> str:  # the middle goes: the start names the layer, the end the tensor
        if len(name) <= width:
            return name
        tail = (width - 1) // 2
        return name[: width - 1 - tail] + "…" + name[-tail:]

    head = ("line", "IR parameter", "model tensor", "model shape", "IR shape", "")
    body = [(str(r.line), r.ir_key, short(r.model_tensor), fmt_shape(r.model_shape) if r.model_shape else "-",
             fmt_shape(r.ir_shape), r.note) for r in result.rows]
    widths = [max(len(row[i]) for row in [head] + body) for i in range(5)]
    lines = []
    for row in [head] + body:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 5)]
        arrow = "->" if row is not head else "  "
        text = f"{cells[0]}  {cells[1]}  {cells[2]}  {cells[3]} {arrow} {cells[4]}  {row[5]}"
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"
