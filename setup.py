"""Builds the C++ WordPiece extension; everything else is in pyproject.toml."""

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

CORE_SOURCES = [
    "csrc/unicode_tables.cc",
    "csrc/normalizer.cc",
    "csrc/vocab.cc",
    "csrc/wordpiece.cc",
    "csrc/packing.cc",
]

tokenizer_extension = Pybind11Extension(
    "keras_bert_ft._wordpiece",
    sources=["csrc/bindings.cc", *CORE_SOURCES],
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-Wall", "-Wextra"],
)

setup(ext_modules=[tokenizer_extension], cmdclass={"build_ext": build_ext})
