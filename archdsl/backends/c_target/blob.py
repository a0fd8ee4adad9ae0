"""The weights as C text: every constant array placed in one block of 64-bit words, written in
hexadecimal (19 bytes of text per 8 bytes of floats, about 2.4x; `%.9g` floats took 4x and
gcc parsed them several times slower). Each word holds two float32 in little-endian order, so
the bits are exact; the block is a union read through its float member (type punning through a
union is defined in C99)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ArchError

ALIGN = 4  # floats: every array starts on a 16-byte boundary (vector loads, and whole words)
WORDS_PER_LINE = 8


@dataclass
class Placed:
    name: str
    what: str
    size: int  # floats
    offset: int  # floats from the start of the block


def place(arrays) -> tuple[list[Placed], np.ndarray]:
    """Offsets of `arrays` (objects with name, values, what) in one float32 block, and the block
    (zero padding between arrays; at least one word, so a network without weights still has a
    non-empty weights file)."""
    placed, offset = [], 0
    for a in arrays:
        placed.append(Placed(a.name, a.what, int(a.values.size), offset))
        offset += -(-int(a.values.size) // ALIGN) * ALIGN
    block = np.zeros(max(offset, 2), dtype="<f4")
    for a, p in zip(arrays, placed):
        values = np.asarray(a.values, dtype=np.float32).ravel()
        if not np.all(np.isfinite(values)):
            raise ArchError("the weights hold NaN or infinite values, which C constants cannot express",
                            None, "check the weight file")
        block[p.offset:p.offset + p.size] = values
    return placed, block


def c_words(block: np.ndarray, placed: list[Placed], comment) -> str:
    """The block's words as initializer lines, each array's words under a comment naming it."""
    words = np.frombuffer(np.ascontiguousarray(block, dtype="<f4").tobytes(), dtype="<u8")
    text = [f"0x{w:016X}" for w in words.tolist()]
    starts = {p.offset // 2: p for p in placed}
    lines: list[str] = []
    run: list[str] = []
    for i, word in enumerate(text):
        if i in starts:
            if run:
                lines.append(",".join(run) + ",")
                run = []
            p = starts[i]
            lines.append(f"/* {comment(p.name)}: {comment(p.what)}; {p.size:,} floats from {p.offset:,} */")
        run.append(word)
        if len(run) == WORDS_PER_LINE:
            lines.append(",".join(run) + ",")
            run = []
    if run:
        lines.append(",".join(run) + ",")
    return "\n".join(lines)
