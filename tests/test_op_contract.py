"""The op contract, one test per (op, backend) and per (op, importer) (docs/architecture.md, "Adding an op").

Backends: the NumPy reference semantics, the NumPy, PyTorch, ONNX and C targets. For each op and
each backend: the backend's table has an entry for the op's class, and on the shared spec
tests/specs/all_ops.arch, which uses every op, every layer of that op matches the reference
(archdsl verify's tolerance). Importers: each op has a matcher kind that messages can name, and
each model-format name it declares reaches that format's reader. The tables derived from the
registry (the C activation enum and its rt_act.c cases, the NumPy activation kernels) and the
docs' op tables are checked here too.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import archdsl.ops as ops
from archdsl.analysis import analyze
from archdsl.backends import c_target, numpy_target
from archdsl.backends.common import has_lowering
from archdsl.commands.verify import compare, layer_scale
from archdsl.weights import init_weights

from conftest import ALL_OPS, ROOT, parse_text

BACKENDS = ("numpy reference", "numpy", "torch", "onnx", "c")
IMPORTERS = ("tflite", "onnx", "keras")
OPS = ops.op_names()


def table(backend: str) -> dict:
    if backend == "numpy reference":
        return numpy_target.REFERENCE
    if backend == "numpy":
        return numpy_target.LOWERINGS
    if backend == "c":
        return c_target.LOWERINGS
    from archdsl import backends

    return backends.load(backend).LOWERINGS


def target_or_skip(backend: str):
    from archdsl import backends

    name = "numpy" if backend == "numpy reference" else backend
    try:
        target = backends.load(name)
    except ModuleNotFoundError as e:
        pytest.skip(f"backend '{backend}' needs {e.name}")
    why = target.unavailable()
    if why:
        pytest.skip(f"backend '{backend}': {why}")
    return target


# ---------------------------------------------------------------- the tables


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_op_has_a_lowering(op, backend):
    if backend in ("torch", "onnx"):
        target_or_skip(backend)
    assert has_lowering(table(backend), ops.lookup(op)), f"op '{op}' has no lowering in backend '{backend}'"


@pytest.mark.parametrize("backend", BACKENDS)
def test_tables_name_registered_ops_only(backend):
    if backend in ("torch", "onnx"):
        target_or_skip(backend)
    registered = {type(op) for op in ops.REGISTRY.values()}
    stale = [k for k in table(backend) if k not in registered]
    assert not stale, f"backend '{backend}' lowers what is not a registered op class: {stale}"


@pytest.mark.parametrize("op", OPS)
def test_op_attributes_are_typed(op):
    """configure() returns the op's attrs_type: a frozen dataclass (an Attrs) that the op's own module
    declares, or the empty Attrs; every layer of the op in the shared spec carries exactly that type."""
    o = ops.lookup(op)
    cls = o.attrs_type
    assert issubclass(cls, ops.Attrs) and dataclasses.is_dataclass(cls), f"op '{op}': {cls} is not an Attrs dataclass"
    assert cls.__dataclass_params__.frozen, f"op '{op}': {cls.__name__} must be frozen"
    assert cls is ops.Attrs or cls.__module__ == type(o).__module__, \
        f"op '{op}': its attributes {cls.__name__} belong in {type(o).__module__}"
    nodes = [n for n in parse_text(ALL_OPS).nodes if n.op.name == op]
    assert nodes, f"tests/specs/all_ops.arch has no '{op}' row"
    for n in nodes:
        assert type(n.attrs) is cls, f"layer {n.name} ('{op}'): attributes {type(n.attrs).__name__}, not {cls.__name__}"
        hash(n.attrs)  # immutable all the way down: tuples, numbers, booleans
        for f in dataclasses.fields(n.attrs):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(n.attrs, f.name, getattr(n.attrs, f.name))


def test_the_shared_spec_uses_every_op():
    used = {n.op.name for n in parse_text(ALL_OPS).nodes}
    missing = sorted(set(OPS) - used)
    assert not missing, f"add a row using {missing} to tests/specs/all_ops.arch"


def test_every_activation_has_a_numpy_kernel():
    kernels = numpy_target._kernel_functions()
    missing = [op.name for op in ops.activations() if op.name not in kernels]
    assert not missing, f"archdsl/runtime/numpy_kernels.py has no kernel named after activation(s) {missing}"


def test_the_c_activation_enum_is_the_registry():
    header = c_target.runtime_text(c_target.RUNTIME_HEADER)
    body = re.search(r"enum arch_act \{(.*?)\};", header, re.S).group(1)
    values = re.findall(r"\b(ARCH_ACT_\w+)\b", body)
    assert values == ["ARCH_ACT_NONE", *c_target.ACTIVATIONS.values()]
    assert list(c_target.ACTIVATIONS) == [op.name for op in ops.activations()]
    act_c = c_target.runtime_text("rt_act.c")
    missing = [v for v in values if f"case {v}:" not in act_c]
    assert not missing, f"rt_act.c has no case for {missing}"
    assert not re.search(r"\bdefault\s*:", act_c), "a default: case would hide an activation without a kernel"


# ---------------------------------------------------------------- numbers, per op and backend


_RUNS: dict = {}


def _shared():
    if "graph" not in _RUNS:
        graph = parse_text(ALL_OPS)
        weights = init_weights(graph, seed=3)
        x = np.random.default_rng(3).standard_normal((2, *graph.input_shape.chw)).astype(np.float32)
        _, ref_layers = numpy_target.reference_forward(graph, weights, x, keep=True)
        _RUNS.update(graph=graph, weights=weights, x=x, ref=ref_layers)
    return _RUNS


def _layers(backend: str, tmp_path_factory) -> dict:
    if backend not in _RUNS:
        target = target_or_skip(backend)
        s = _shared()
        outdir = tmp_path_factory.mktemp(backend.replace(" ", "_"))
        target.compile(s["graph"], s["weights"], outdir, "allops")
        _RUNS[backend] = target.run_layers(outdir, "allops", s["x"])
    return _RUNS[backend]


@pytest.mark.parametrize("backend", ("numpy", "torch", "onnx", "c"))
@pytest.mark.parametrize("op", OPS)
def test_op_matches_the_reference(op, backend, tmp_path_factory):
    """Each layer of the op (or, where the backend fuses it, the step it is fused into) on the shared spec."""
    layers = _layers(backend, tmp_path_factory)
    s = _shared()
    graph, ref = s["graph"], s["ref"]
    step_of = {n.name: st.output for st in analyze(graph).steps for n in st.nodes}
    nodes = [n for n in graph.nodes if n.op.name == op]
    assert nodes, f"tests/specs/all_ops.arch has no '{op}' row"
    for n in nodes:
        name = n.name if n.name in layers else step_of[n.name]
        assert name in layers, f"backend '{backend}' exposes no output for layer {n.name} ('{op}')"
        c = compare(layers[name], ref[name], layer_scale(graph, ref, name))
        assert c.ok, (f"op '{op}', backend '{backend}': layer {name} differs from the reference by "
                      f"{c.max_abs:.3g} (tolerance {c.atol:.3g} + 1e-3*|ref|)")


# ---------------------------------------------------------------- importers


def _reader_names(importer: str) -> set[str]:
    if importer == "tflite":
        from archdsl.importers import tflite

        return set(tflite.HANDLERS)
    if importer == "onnx":
        from archdsl.importers import onnx_model

        return set(onnx_model.HANDLERS)
    from archdsl.importers import keras_h5

    return set(keras_h5.ACTIVATIONS)


@pytest.mark.parametrize("importer", IMPORTERS)
@pytest.mark.parametrize("op", OPS)
def test_op_is_known_to_the_importer(op, importer):
    from archdsl.importers.structure import CONTRACTED, IR_KINDS, KIND_WORDS

    o = ops.lookup(op)
    assert IR_KINDS[op] == o.import_kind
    assert o.import_kind in KIND_WORDS or o.import_kind in CONTRACTED, \
        f"op '{op}', importer '{importer}': kind '{o.import_kind}' has no words for messages"
    missing = [name for name in o.import_names.get(importer, ()) if name not in _reader_names(importer)]
    assert not missing, f"op '{op}', importer '{importer}': the reader does not handle {missing}"


def test_the_shared_spec_round_trips_through_onnx(tmp_path):
    """Export the shared spec to ONNX and import it back: every op is matched and every weight found."""
    target_or_skip("onnx")
    from archdsl.backends import onnx_target
    from archdsl.importers import import_weights

    graph = parse_text(ALL_OPS)
    weights = init_weights(graph, seed=5)
    onnx_target.compile(graph, weights, tmp_path, "allops")
    result = import_weights(graph, tmp_path / "allops.onnx")
    assert set(result.weights) == set(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(result.weights[key], value, err_msg=key)


# ---------------------------------------------------------------- the docs' op tables


def _block(path, start: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    i = text.index(start)
    end = text.find("\n\n", i)
    return text[i:end if end > 0 else len(text)]


@pytest.mark.parametrize("op", OPS)
def test_the_docs_name_the_op(op):
    words = rf"(?<!\w){re.escape(op)}(?!\w)"
    if ops.lookup(op).arity == 1:  # add, mul and concat are written as residual, scale and concat blocks
        assert re.search(rf"`{re.escape(op)}`", _block("docs/language.md", "- **Op name**")), \
            f"docs/language.md's list of op names lacks `{op}`"
    assert re.search(words, _block("docs/targets.md", "  | op | ONNX |")), f"docs/targets.md's ONNX table lacks {op}"
    assert re.search(words, _block("docs/targets.md", "| op | module |")), f"docs/targets.md's torch table lacks {op}"
    if ops.lookup(op).is_activation:
        assert re.search(words, _block("docs/c_runtime.md", "| `arch_activate` |")), \
            f"docs/c_runtime.md's arch_activate row lacks {op}"


def _op_cells(block: str) -> list[str]:
    """The op names in the first column of a markdown table ("avg pool / max pool, global avg pool")."""
    words = []
    for line in block.splitlines():
        cells = line.strip().strip("|").split("|")
        first = cells[0].strip()
        if not first or first in ("op", "---") or set(first) <= set("-:"):
            continue
        words += [w.strip().strip("`") for part in first.split(",") for w in part.split(" / ")]
    return [w for w in words if w]


@pytest.mark.parametrize("path, start", [("docs/targets.md", "  | op | ONNX |"), ("docs/targets.md", "| op | module |")])
def test_the_docs_op_tables_name_only_registered_ops(path, start):
    names = _op_cells(_block(path, start))
    assert names, f"{path}: no op table at {start!r}"
    stale = [n for n in names if ops.lookup(n) is None]
    assert not stale, f"{path}'s table at {start!r} names what is not a registered op: {stale}"


def test_the_language_docs_op_list_names_only_registered_ops():
    listed = re.findall(r"`([^`]+)`", _block("docs/language.md", "- **Op name**").split("Run\n")[0])
    assert listed, "docs/language.md has no list of op names"
    stale = [n for n in listed if ops.lookup(n) is None]
    assert not stale, f"docs/language.md's list of op names has what is not a registered op: {stale}"


def test_the_architecture_docs_attribute_table_is_the_registry():
    """docs/architecture.md's table of typed attributes: one row per attrs_type, with its fields in
    order, its module and exactly the ops that use it."""
    block = _block("docs/architecture.md", "| attributes (`attrs_type`) |")
    rows = {}
    for line in block.splitlines()[2:]:
        cls, fields, module, names = (c.strip() for c in line.strip().strip("|").split("|"))
        rows[cls.strip("`")] = ([f.strip("` ") for f in fields.split(",")] if fields != "(none)" else [],
                                module.strip("`"), sorted(n.strip() for n in names.split(",")))
    want = {}
    for name, op in ops.REGISTRY.items():
        cls = op.attrs_type
        module = cls.__module__.removeprefix("archdsl.").replace(".", "/") + ".py"
        entry = want.setdefault(cls.__name__, ([f.name for f in dataclasses.fields(cls)], module, []))
        entry[2].append(name)
    want = {k: (f, m, sorted(n)) for k, (f, m, n) in want.items()}
    assert rows == want, "docs/architecture.md's attributes table differs from the registry"


def test_the_architecture_doc_names_the_steps_this_test_checks():
    """docs/architecture.md's "Adding an op": every file it names exists, and it names every backend
    and importer kind checked here."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    steps = doc[doc.index("## Adding an op"):]
    steps = steps[:steps.find("\n## ", 3) if "\n## " in steps[3:] else len(steps)]
    paths = re.findall(r"`((?:archdsl|codegen_templates|tests|docs)/[\w./]+)`", steps)
    assert paths, "the steps name no file"
    missing = [p for p in paths if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
    for word in (*BACKENDS, *IMPORTERS):
        assert word in steps, f"docs/architecture.md's steps do not name '{word}'"
