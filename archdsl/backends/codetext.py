"""User text in generated code: the one place it is escaped.

A spec's file name, its network and layer names and its rows (comments included) are
untrusted. They reach generated code only as comments, docstrings and string literals,
through the filters below, one per place and language; identifiers are never user text
verbatim (each backend makes them with `identifier`). Every template is rendered in
`backends.common.template_env`, which has these filters, so a template writes
`{{ spec | c_comment }}`, `{{ spec | py_doc }}` or `{{ name | make_comment }}` and nothing else
needs to know what a
`*/`, a `\"\"\"`, a newline or a right-to-left override would do in that language.

    plain(text)          one printable line: control, format (bidi) and separator characters,
                         NUL and every newline written as visible \\xNN / \\uNNNN escapes
    c_comment(text)      inside /* ... */
    py_comment(text)     after a #
    py_doc(text)         inside a \"\"\"docstring\"\"\"
    py_str(text)         a Python string literal, quotes included
    c_str(text)          a C string literal, quotes included
    make_comment(text)   after a # in a Makefile
    identifier(name, taken, ...)   a fresh, collision-free identifier for a name
    py_module(name)      a generated Python module's file name (never shadowing numpy, torch, os, ...)
    source_label(path)   the spec's file name as generated files cite it (never a path)
"""
from __future__ import annotations

import hashlib
import keyword
import re
import unicodedata
from pathlib import Path

MAX_TEXT = 1000  # user text longer than this is cut in comments (a 5,000-character name stays readable)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    """Control (Cc, incl. NUL and every newline), format (Cf, incl. the bidi overrides),
    surrogates, private use and unassigned (Cs, Co, Cn), line and paragraph separators."""
    cat = unicodedata.category(ch)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def plain(text, limit: int = MAX_TEXT) -> str:
    """`text` as one line of printable characters (tabs become spaces, the rest is escaped)."""
    text = str(text).replace("\t", " ")
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def c_comment(text) -> str:
    # no comment delimiters, no trigraph (??/ would be a backslash), no line splice
    return " ".join(plain(text).replace("*/", "* /").replace("/*", "/ *").replace("??", "?\\?").split())


def py_comment(text) -> str:
    return plain(text)


def py_doc(text) -> str:
    # a backslash would start an escape (\N{...} is a syntax error); a quote could close the docstring
    return plain(text).replace("\\", "\\\\").replace('"', '\\"')


def py_str(text) -> str:
    """A Python string literal with the same characters (control characters escaped)."""
    return _literal(str(text), python=True)


C_LITERAL_MAX = 4095  # the longest string literal C99 compilers must accept (-pedantic warns beyond it)


def c_str(text) -> str:
    """A C string literal (printable ASCII kept; everything else as octal escapes of its UTF-8);
    past C99's length limit, a compound literal of its bytes (still a `const char *`)."""
    data = str(text).encode("utf-8")
    if len(data) > C_LITERAL_MAX:
        return "((const char[]){" + ", ".join(map(str, data)) + ", 0})"  # parenthesised: a macro argument
    return _literal(str(text), python=False)


def _literal(text: str, python: bool) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif python and not _unsafe(ch):
            out.append(ch)
        elif python:
            out.append(_escape(ch))
        elif " " <= ch <= "~" and ch != "?":  # '?' escaped: no trigraph in C
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def make_comment(text) -> str:
    # a backslash before the newline would continue the comment over the next line
    return plain(str(text).replace("\\", "/"))


SHADOWED = ("numpy", "torch", "onnx", "onnxruntime", "archdsl", "jinja2", "h5py", "tflite")


def py_module(name: str) -> str:
    """The file name (without .py) of a generated Python module for `name`: `name_net` when
    `name.py` would shadow, run from its folder, a module it imports (numpy, torch, the
    standard library's)."""
    import sys

    return name + "_net" if name in sys.stdlib_module_names or name in SHADOWED else name


def source_label(source_name: str) -> str:
    """The spec's file name as generated files cite it: the last component, never a path."""
    return Path(str(source_name).replace("\\", "/")).name or "<spec>"


# ---------------------------------------------------------------- identifiers

MAX_IDENT = 63  # C99 guarantees 63 significant characters of an internal identifier


def identifier(name: str, taken: set[str], reserved=frozenset(), prefix: str = "", fallback: str = "t_",
               limit: int | None = None) -> str:
    """A fresh identifier for `name`, added to `taken`: `prefix` + the name with every
    non-identifier character as '_'; `fallback` in front when that is not an identifier, a
    keyword, reserved or taken; a name longer than `limit` cut and given a digest of the
    whole name (still unique); then _2, _3, ... until it is free. Deterministic."""
    base = prefix + re.sub(r"\W", "_", name, flags=re.ASCII)
    if not base.isidentifier() or keyword.iskeyword(base) or base in reserved or base in taken:
        base = fallback + base
    if limit is not None and len(base) > limit:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
        base = base[:limit - 12] + "_" + digest
    candidate, k = base, 2
    while candidate in taken or candidate in reserved:
        candidate, k = f"{base}_{k}", k + 1
    taken.add(candidate)
    return candidate


# ---------------------------------------------------------------- templates

# The filters every template has (backends/common.template_env registers them).
FILTERS = {"c_comment": c_comment, "py_comment": py_comment, "py_doc": py_doc, "py_str": py_str,
           "c_str": c_str, "make_comment": make_comment, "plain": plain}
