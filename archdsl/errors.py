"""Diagnostics: every user error is reported as `file:line:col: error: message`,
the source line, a caret under the offending column, and an optional hint.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    """A position in a spec file (1-based line and column)."""

    line: int
    col: int
    width: int = 1

    def shifted(self, cols: int, width: int | None = None) -> "Loc":
        return Loc(self.line, self.col + cols, self.width if width is None else width)


@dataclass
class Diagnostic:
    message: str
    loc: Loc | None = None
    hint: str | None = None
    notes: list[tuple[Loc | None, str]] = field(default_factory=list)

    def render(self, filename: str, source: str | None) -> str:
        lines = source.splitlines() if source is not None else []
        out = []

        def excerpt(loc: Loc) -> list[str]:
            if not (1 <= loc.line <= len(lines)):
                return []
            text = lines[loc.line - 1].expandtabs(1).rstrip()
            gutter = f"{loc.line:>5} | "
            caret = " " * (loc.col - 1) + "^" + "~" * max(0, min(loc.width, max(1, len(text) - loc.col + 1)) - 1)
            return [gutter + text, " " * (len(gutter) - 2) + "| " + caret]

        if self.loc:
            out.append(f"{filename}:{self.loc.line}:{self.loc.col}: error: {self.message}")
        else:
            out.append(f"{filename}: error: {self.message}" if filename else f"error: {self.message}")
        if self.loc:
            out.extend(excerpt(self.loc))
        for loc, note in self.notes:
            where = f"{filename}:{loc.line}:{loc.col}: " if loc else (f"{filename}: " if filename else "")
            out.append(f"{where}note: {note}")
            if loc:
                out.extend(excerpt(loc))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


class ArchError(Exception):
    """A user-facing error in a spec or a command-line argument (never a traceback)."""

    def __init__(self, message: str, loc: Loc | None = None, hint: str | None = None,
                 notes: list[tuple[Loc | None, str]] | None = None):
        super().__init__(message)
        self.diagnostics = [Diagnostic(message, loc, hint, list(notes or []))]
        self.filename = ""
        self.source: str | None = None

    @classmethod
    def many(cls, diagnostics: list[Diagnostic]) -> "ArchError":
        err = cls(diagnostics[0].message)
        err.diagnostics = list(diagnostics)
        return err

    def with_source(self, filename: str, source: str | None) -> "ArchError":
        if self.source is None:
            self.filename, self.source = filename, source
        return self

    def render(self) -> str:
        return "\n".join(d.render(self.filename, self.source) for d in self.diagnostics)

    def __str__(self) -> str:  # pragma: no cover - for debugging only
        return self.render()


def did_you_mean(word: str, candidates) -> str | None:
    """A 'did you mean' suggestion by edit distance (difflib keeps it dependency-free)."""
    import difflib

    cands = sorted(set(candidates))
    low = {c.lower(): c for c in cands}
    match = difflib.get_close_matches(word.lower().replace("_", " "), list(low), n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)
    return low[match[0]] if match else None
