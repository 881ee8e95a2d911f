"""Builds the C++ WordPiece extension and its TensorFlow op library.

Everything else is in pyproject.toml. The op library (`_wordpiece_op.so`, a
plain shared library for `tf.load_op_library`, not a Python module) needs
TensorFlow at build time for its headers and flags; without TensorFlow it is
skipped with a warning and the rest of the package still installs.
"""

import json
import os
import warnings
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import Extension, setup

SOURCE_LIST = "csrc/sources.txt"


def read_sources(part: str, path: str = SOURCE_LIST) -> list[str]:
    """The sources of one part ("core", "python", "tf") in csrc/sources.txt, in order."""
    sources = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in ("core", "python", "tf"):
            raise ValueError(f"{path}, line {number}: expected 'core|python|tf PATH', got {line!r}")
        if fields[0] == part:
            sources.append(fields[1])
    return sources


CORE_SOURCES = read_sources("core")

tokenizer_extension = Pybind11Extension(
    "keras_bert_ft._wordpiece",
    sources=[*read_sources("python"), *CORE_SOURCES],
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fno-math-errno", "-Wall", "-Wextra"],
)

OP_NAME = "keras_bert_ft._wordpiece_op"
# Written next to the op library: the TensorFlow it was compiled against.
OP_BUILD_INFO = "_wordpiece_op_build.json"

op_library = Extension(
    OP_NAME,
    sources=[*read_sources("tf"), *CORE_SOURCES],
    include_dirs=["csrc"],
    language="c++",
)


def tensorflow_build_flags() -> tuple[dict | None, str]:
    """Compile and link flags of the importable TensorFlow, or None and the reason."""
    if os.environ.get("KBF_SKIP_TF_OP"):
        return None, "KBF_SKIP_TF_OP is set"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except Exception as err:  # absent, or present but broken: build the rest anyway
        return None, f"TensorFlow is not importable at build time ({type(err).__name__}: {err})"
    compile_flags = []
    for flag in tf.sysconfig.get_compile_flags():
        # TF's headers as system headers: their warnings are not ours.
        if flag.startswith("-I"):
            compile_flags += ["-isystem", flag[2:]]
        else:
            compile_flags.append(flag)
    return {
        "tensorflow": tf.__version__,
        "compile_flags": compile_flags,
        "link_flags": list(tf.sysconfig.get_link_flags()),
    }, ""


class BuildExt(build_ext):
    """pybind11's build_ext, plus the op library built with TensorFlow's flags."""

    def get_ext_filename(self, fullname: str) -> str:
        # Called with the full dotted name and with its last part alone.
        if fullname.split(".")[-1] == OP_NAME.split(".")[-1]:
            return os.path.join(*fullname.split(".")) + ".so"
        return super().get_ext_filename(fullname)

    def build_extensions(self) -> None:
        self.tf_flags = None
        if any(ext.name == OP_NAME for ext in self.extensions):
            self.tf_flags, reason = tensorflow_build_flags()
            if self.tf_flags is None:
                warnings.warn(
                    f"{reason}: skipping the TensorFlow op library keras_bert_ft/_wordpiece_op.so. "
                    "The package works without it, but keras_bert_ft.ops, the WordPieceEncode "
                    "layer and in-graph tokenization will not. Install tensorflow and rebuild "
                    "with `pip install --no-build-isolation .` to get it.",
                    stacklevel=1,
                )
                self.extensions = [ext for ext in self.extensions if ext.name != OP_NAME]
                # A library left in build/ by an earlier build must not ship instead.
                stale = Path(self.get_ext_fullpath(OP_NAME))
                for path in (stale, stale.with_name(OP_BUILD_INFO)):
                    path.unlink(missing_ok=True)
        super().build_extensions()

    def build_extension(self, ext) -> None:
        if ext.name == OP_NAME:
            flags = self.tf_flags
            version_define = '-DKBF_BUILT_WITH_TF="{}"'.format(flags["tensorflow"])
            ext.extra_compile_args = [
                *flags["compile_flags"], "-O3", "-fno-math-errno", "-Wall", "-Wextra",
                "-fvisibility=hidden",
                version_define,
            ]
            ext.extra_link_args = flags["link_flags"]
        super().build_extension(ext)
        if ext.name == OP_NAME:
            info = Path(self.get_ext_fullpath(ext.name)).with_name(OP_BUILD_INFO)
            info.write_text(json.dumps(self.tf_flags, indent=1) + "\n")

    def copy_extensions_to_source(self) -> None:
        # In-place and editable builds copy the libraries only; the build info goes along.
        super().copy_extensions_to_source()
        built = Path(self.build_lib, *OP_NAME.split(".")).with_name(OP_BUILD_INFO)
        if any(ext.name == OP_NAME for ext in self.extensions) and built.exists():
            package_dir = self.get_finalized_command("build_py").get_package_dir("keras_bert_ft")
            self.copy_file(str(built), os.path.join(package_dir, OP_BUILD_INFO))

    def get_outputs(self) -> list[str]:
        outputs = super().get_outputs()
        op_path = self.get_ext_fullpath(OP_NAME)
        if op_path in outputs:
            outputs.append(str(Path(op_path).with_name(OP_BUILD_INFO)))
        return outputs


setup(ext_modules=[tokenizer_extension, op_library], cmdclass={"build_ext": BuildExt})
