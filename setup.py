"""Builds the Cython extensions of sentrycore; metadata lives in pyproject.toml."""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# Hot code runs without bounds or wraparound checks; the .pyx files repeat
# these in their headers so a stray build path cannot lose them.
COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}

extensions = [
    Extension(
        f"sentrycore.{name}",
        [f"sentrycore/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in ("book", "counters", "detector", "marketcore", "parse", "band", "framefeed", "leveltext", "bybit",
                 "okx", "coinbase", "kraken")
]

setup(ext_modules=cythonize(extensions, compiler_directives=COMPILER_DIRECTIVES))
