"""Which TensorRT names the backend uses, and which names each real TensorRT binding has.

*Used names* come from the code itself (``ast``): ``trt.X`` and ``trt.X.Y`` chains, and attributes of
objects that come from ``trt`` (a builder, config, network, engine, context, ...), found by following
assignments from ``trt`` to a fixpoint.  A name is *guarded* when the module tests for it before use:
``hasattr(obj, "name")``, ``getattr(obj, "name", default)`` or the ``_flag("NAME")`` helper.

*Real names* come from NVIDIA's binding wheels (``tensorrt-bindings==8.6.1``,
``tensorrt-cu12-bindings==10.13.0.35``, ``tensorrt-cu13-bindings==11.4.0.106``: ~1 MB each, downloaded
once into a cache directory, never installed): pybind11 registers every class, enum member, method
and property under its name as a NUL-terminated string in ``tensorrt.so``.  The linker may merge a
string into the tail of a longer one, so a name counts as present when some string *ends* with it;
presence is proof, absence only evidence, confirmed by the absence of a docstring signature too.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEELS = {
    "8.6.1": "tensorrt-bindings==8.6.1",
    "10.13.0.35": "tensorrt-cu12-bindings==10.13.0.35",
    "11.4.0.106": "tensorrt-cu13-bindings==11.4.0.106",
}


@dataclass(frozen=True)
class Use:
    owner: str  # "trt", "trt.BuilderFlag", "config", ...
    name: str
    line: int
    guarded: bool

    def __str__(self) -> str:
        return f"{self.owner}.{self.name} (line {self.line}{', guarded' if self.guarded else ''})"


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; ``self.x`` -> ["self.x"]; anything else -> None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        parts.reverse()
        if parts[0] == "self" and len(parts) > 1:
            return ["self." + parts[1], *parts[2:]]
        return parts
    return None


def _root(node: ast.AST) -> list[str] | None:
    """The chain at the bottom of calls and subscripts: ``a.b(x).c[0]`` -> ["a", "b"] ..."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript) or (
            isinstance(node, ast.Attribute) and not isinstance(node.value, (ast.Name, ast.Attribute))
        ):
            node = node.value
        else:
            return _chain(node)


def used_names(source: str, module: str = "trt") -> list[Use]:
    tree = ast.parse(source)
    guarded: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.args:
            arg = n.args[1] if n.func.id in ("hasattr", "getattr") and len(n.args) > 1 else n.args[0]
            fn_ok = (
                n.func.id == "hasattr"
                or (n.func.id == "getattr" and len(n.args) == 3)
                or n.func.id == "_flag"
            )
            if fn_ok and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                guarded.add(arg.value)
    # Variables that hold TensorRT objects: assigned (anywhere) from an expression rooted at a tracked name.
    tracked = {module}
    changed = True
    while changed:
        changed = False
        for n in ast.walk(tree):
            if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
                root = _root(n.value)
                if not root or root[0] not in tracked:
                    continue
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                for t in targets:
                    elts = t.elts if isinstance(t, ast.Tuple) else [t]
                    for e in elts:
                        c = _chain(e)
                        if c and len(c) == 1 and c[0] not in tracked:
                            tracked.add(c[0])
                            changed = True
            elif isinstance(n, ast.For):  # ``for inp in dynamic`` where dynamic holds network inputs
                root = _root(n.iter)
                c = _chain(n.target)
                if root and root[0] in tracked and c and len(c) == 1 and c[0] not in tracked:
                    tracked.add(c[0])
                    changed = True
    uses: list[Use] = []
    for n in ast.walk(tree):
        if not isinstance(n, ast.Attribute):
            continue
        c = _chain(n)
        if not c or c[0] not in tracked or len(c) < 2:
            continue
        # trt.A.B -> (trt, A), (trt.A, B); obj.m -> (obj, m)
        owner = c[0]
        for name in c[1:]:
            if not name.startswith("__"):
                uses.append(Use(owner, name, n.lineno, name in guarded))
            owner = f"{owner}.{name}"
            if c[0] != module:
                break  # obj.m.x: only the TensorRT member m is a binding name
    seen: dict[tuple[str, str], Use] = {}
    for u in uses:
        seen.setdefault((u.owner, u.name), u)
    return sorted(seen.values(), key=lambda u: (u.line, u.owner, u.name))


@dataclass(frozen=True)
class Binding:
    version: str
    blob: bytes

    def has(self, name: str) -> bool:
        b = name.encode()
        # A NUL-terminated string equal to the name, or ending with it (merged into a longer string's tail).
        if b + b"\0" in self.blob:
            return True
        return re.search(rb"\b" + re.escape(b) + rb"\(self", self.blob) is not None  # a docstring signature


def binding_from_so(version: str, data: bytes) -> Binding:
    return Binding(version, data)


def cache_dir() -> Path:
    return Path(
        os.environ.get("PYTEST_TRT_BINDINGS_DIR", Path.home() / ".cache" / "pytest-trt" / "trt-bindings")
    )


def load_bindings() -> dict[str, Binding]:
    """Download (once) and read the three binding wheels; raises RuntimeError with pip's message."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for version, req in WHEELS.items():
        dist = req.split("==")[0].replace("-", "_")
        found = sorted(d.glob(f"{dist}-{version}-*.whl"))
        if not found:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
                   "--platform", "manylinux_2_17_x86_64", "-d", str(d), req]  # fmt: skip
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            found = sorted(d.glob(f"{dist}-{version}-*.whl"))
            if p.returncode != 0 or not found:
                raise RuntimeError(f"pip download {req} failed: {(p.stderr or p.stdout)[-400:]}")
        with zipfile.ZipFile(found[0]) as z:
            so = next(n for n in z.namelist() if n.endswith("/tensorrt.so"))
            out[version] = binding_from_so(version, z.read(so))
    return out


def rtx_binding() -> Binding | None:
    """TensorRT-RTX's own binding library, where the package is installed."""
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_rtx_bindings")  # what ``tensorrt_rtx`` re-exports
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        for so in sorted(Path(loc).glob("tensorrt_rtx*.so")):
            return binding_from_so("rtx", so.read_bytes())
    return None
