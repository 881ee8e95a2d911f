"""Reading the CPU's bfloat16 instructions, and the warning when it has none."""

import warnings

import pytest

from keras_bert_ft import cpu_features
from keras_bert_ft.cpu_features import CpuInfo, bfloat16_instructions, cpu_info

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 fma {extra}

processor\t: 1
model name\t: other
flags\t\t: fpu avx512_bf16 amx_bf16
"""


def write_cpuinfo(tmp_path, extra: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return str(path)


def test_reads_the_first_processors_name_and_flags(tmp_path):
    info = cpu_info(write_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert info.model_name == "AMD EPYC 9B14"
    assert {"avx2", "avx512f", "avx512_bf16"} <= info.flags
    assert "amx_bf16" not in info.flags  # the second processor's line is not read
    assert bfloat16_instructions(info) == ("avx512_bf16",)


def test_an_avx2_only_cpu_has_no_bfloat16_instructions_and_warns(tmp_path):
    info = cpu_info(write_cpuinfo(tmp_path, "avx512f"))
    assert bfloat16_instructions(info) == ()
    with pytest.warns(UserWarning, match=r"a bfloat16 export: this CPU \(AMD EPYC 9B14\) "
                                         r"has none of the bfloat16 instructions"):
        assert cpu_features.warn_if_bfloat16_is_slow("a bfloat16 export", info)


def test_no_warning_with_bfloat16_instructions_or_unknown_features(tmp_path, monkeypatch):
    info = CpuInfo("x", frozenset({"avx2", "amx_bf16"}))
    monkeypatch.setattr(cpu_features, "cpu_info", lambda: None)  # unreadable /proc/cpuinfo
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cpu_features.warn_if_bfloat16_is_slow("x", info)
        assert not cpu_features.warn_if_bfloat16_is_slow("x")
    assert cpu_info(str(tmp_path / "missing")) is None
    (tmp_path / "noflags").write_text("processor\t: 0\nmodel name\t: x\n")
    assert cpu_info(str(tmp_path / "noflags")) is None


def test_mixed_bfloat16_on_a_cpu_without_bfloat16_warns(monkeypatch):
    import keras

    from keras_bert_ft.training import strategies

    avx2 = CpuInfo("AVX2 CPU", frozenset({"avx2"}))
    monkeypatch.setattr(cpu_features, "cpu_info", lambda: avx2)
    try:
        with pytest.warns(UserWarning, match="mixed_bfloat16 training on this CPU"):
            strategies.set_precision("mixed_bfloat16")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_prefer_onednn_sets_the_variable_only_when_nobody_chose(monkeypatch):
    monkeypatch.setattr(cpu_features.sys, "platform", "linux")
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "x86_64")
    monkeypatch.delitem(cpu_features.sys.modules, "tensorflow", raising=False)
    environ = {}
    assert cpu_features.prefer_onednn(environ) and environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    chosen = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert not cpu_features.prefer_onednn(chosen) and chosen["TF_ENABLE_ONEDNN_OPTS"] == "0"
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "aarch64")
    assert not cpu_features.prefer_onednn(environ := {}) and environ == {}


def test_prefer_onednn_leaves_a_loaded_tensorflow_alone(monkeypatch):
    import tensorflow  # noqa: F401

    environ = {}
    assert not cpu_features.prefer_onednn(environ) and environ == {}


def test_importing_the_package_first_turns_onednn_on_and_after_tensorflow_warns(tmp_path):
    """In fresh processes: keras_bert_ft first gets TensorFlow's oneDNN kernels; tensorflow
    first (variable unset, on a CPU where TF leaves them off) gets the warning instead."""
    import os
    import subprocess
    import sys

    probe = ("import warnings; warnings.simplefilter('always'); {first}; {second}; "
             "from tensorflow.python.util import _pywrap_util_port as p; "
             "print('MKL', p.IsMklEnabled(), os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}

    def run(first: str, second: str) -> tuple[str, str]:
        code = "import os; " + probe.format(first=first, second=second)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300, check=True)
        return [x for x in proc.stdout.splitlines() if x.startswith("MKL")][-1], proc.stderr

    out, _ = run("import keras_bert_ft", "import tensorflow")
    if sys.platform == "linux" and cpu_features.platform.machine() == "x86_64":
        assert out == "MKL True 1"
    out, err = run("import tensorflow", "import keras_bert_ft")
    assert out.endswith("None")  # the package sets nothing once TensorFlow is loaded
    off = out == "MKL False None"
    assert ("imported before keras_bert_ft with its oneDNN kernels off" in err) == off


def test_training_is_refused_when_weights_are_assumed_frozen(monkeypatch):
    from keras_bert_ft.training import create_optimizer

    for value in ("1", "true", "True"):
        monkeypatch.setenv("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", value)
        with pytest.raises(RuntimeError, match=r"Training with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS="
                                               r".* Unset it for training"):
            create_optimizer(1e-3, 10)
    for value in ("0", "false", ""):
        monkeypatch.setenv("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", value)
        assert create_optimizer(1e-3, 10) is not None


@pytest.mark.skipif(not cpu_features._x86_64_linux(), reason="oneDNN builds of TensorFlow")
def test_frozen_weights_make_oneDNN_ignore_a_changed_weight():
    """What the refusal guards against, in TensorFlow itself: with the variable set, a
    matmul keeps using the weight it first read after the weight is doubled."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, tensorflow as tf\n"
            "w = tf.Variable(np.ones((64, 64), 'float32'))\n"
            "b = tf.Variable(np.zeros(64, 'float32'))\n"
            "f = tf.function(lambda x: tf.nn.bias_add(tf.matmul(x, w), b))\n"
            "before = f(tf.ones((8, 64))).numpy()[0, 0]\n"
            "w.assign(2 * w)\n"
            "print('OUT', before, f(tf.ones((8, 64))).numpy()[0, 0])\n")

    def run(frozen: str) -> str:
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1",
               "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": frozen}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True).stdout
        return [x for x in out.splitlines() if x.startswith("OUT")][-1]

    assert run("0") == "OUT 64.0 128.0"
    assert run("1") == "OUT 64.0 64.0"
