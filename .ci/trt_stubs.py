"""Unpack tensorrt-stubs into typings/ for mypy, repairing the two kinds of invalid syntax it ships.

The stubs pin ``tensorrt`` itself (not installable here), so they are never pip-installed: installed
with --no-deps they make ``import tensorrt`` succeed as an empty namespace.  Their generated .pyi
also contains parameters named ``in`` (a keyword) and a required parameter after defaulted ones.
"""

import re
import sys
import zipfile
from pathlib import Path


def main(wheel: str, dest: str = "typings") -> None:
    out = Path(dest)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.startswith(("tensorrt/", "tensorrt_bindings/")) or not name.endswith(".pyi"):
                continue
            text = z.read(name).decode()
            text = re.sub(r"([(,]\s*)in:", r"\1in_:", text)
            text = text.replace(
                "power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)"
            )
            text = text.replace("import tensorrt_libs as tensorrt_libs\n", "")
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
