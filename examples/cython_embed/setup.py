"""Build the embedding example: `python setup.py build_ext --inplace`."""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

import sentrycore

setup(
    name="sentrycore-embed-example",
    ext_modules=cythonize(
        [Extension("fast_replay", ["fast_replay.pyx"], include_dirs=[numpy.get_include()])],
        include_path=[sentrycore.get_include()],
        compiler_directives={"language_level": 3},
    ),
)
