"""Builds benches/floor_parser.pyx (the bench's hand-written rival) on demand.

The extension is compiled like sentrycore's (Cython 3, -O3, the same
directives) into a temporary directory named after the source's hash, so it
is built once per change, never lands in the repository and is never part of
the installed package.

    from benches.floor_build import load_floor
    FloorParser = load_floor().FloorParser
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("floor_parser.pyx")
MODULE = "floor_parser"


def _build_dir() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sentrycoin-floor-{digest}-py{sys.version_info[0]}{sys.version_info[1]}"


def load_floor() -> ModuleType:
    """The compiled floor_parser module (built first if this source was never built)."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    out = _build_dir()
    target = out / (MODULE + sysconfig.get_config_var("EXT_SUFFIX"))
    if not target.is_file():
        _build(out)
    spec = importlib.util.spec_from_file_location(MODULE, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE] = module
    return module


def _build(out: Path) -> None:
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    # Built in a directory of this process's own, then moved in with one
    # rename: two benches starting together never load a half-written file.
    work = out.with_name(f"{out.name}.build-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    ext = Extension(MODULE, [str(SOURCE)], extra_compile_args=["-O3"])
    modules = cythonize([ext], build_dir=str(work / "c"), quiet=True,
                        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                                             "cdivision": True, "initializedcheck": False})
    dist = Distribution({"ext_modules": modules, "script_name": "floor_build.py"})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(work)
    cmd.build_temp = str(work / "tmp")
    cmd.ensure_finalized()
    cmd.run()
    out.mkdir(parents=True, exist_ok=True)
    name = MODULE + sysconfig.get_config_var("EXT_SUFFIX")
    os.replace(work / name, out / name)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(load_floor().__file__)
