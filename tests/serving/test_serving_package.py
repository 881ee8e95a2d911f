"""keras_bert_ft.serving as one package: the old module paths still work (deprecated),
the package imports without TensorFlow, and an export TF Serving could not load is
refused before it is published."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from keras_bert_ft.errors import ExportError

OLD_PATHS = {
    "keras_bert_ft.export": "keras_bert_ft.serving.export",
    "keras_bert_ft.serving_ops": "keras_bert_ft.serving.op_check",
    "keras_bert_ft.serving_predict": "keras_bert_ft.serving.predict",
    "keras_bert_ft.serving_config": "keras_bert_ft.serving.config",
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_path_warns_and_is_the_new_module(old, monkeypatch):
    new = importlib.import_module(OLD_PATHS[old])
    monkeypatch.delitem(sys.modules, old, raising=False)  # import it afresh
    with pytest.warns(DeprecationWarning, match=f"import {OLD_PATHS[old]} instead"):
        module = importlib.import_module(old)
    assert module is new
    assert sys.modules[old] is new


def test_the_package_and_its_light_modules_import_without_tensorflow():
    code = ("import sys, keras_bert_ft.serving as s, keras_bert_ft.serving.config, "
            "keras_bert_ft.serving.predict, keras_bert_ft.serving.op_check\n"
            "assert s.TEXT_SIGNATURE == 'serving_default' and s.IDS_SIGNATURE == 'serve_ids'\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_public_names_resolve_to_their_modules():
    import keras_bert_ft
    import keras_bert_ft.serving as serving

    assert serving.export_for_serving.__module__ == "keras_bert_ft.serving.export"
    assert keras_bert_ft.export_for_serving is serving.export_for_serving
    assert serving.ExportedClassifier.__module__ == "keras_bert_ft.serving.predict"
    assert serving.unsupported_ops.__module__ == "keras_bert_ft.serving.op_check"
    assert serving.write_serving_config.__module__ == "keras_bert_ft.serving.config"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        serving.nothing  # noqa: B018


def python_op_classifier(vocab_size: int):
    """A tiny classifier whose graph runs a Python function (a PyFunc op)."""
    import keras
    import tensorflow as tf

    class PythonIdentity(keras.layers.Layer):
        def call(self, x):
            y = tf.numpy_function(lambda v: v, [x], tf.float32)
            y.set_shape(x.shape)
            return y

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="input_word_ids")
    mask = keras.Input((None,), dtype="int32", name="input_mask")
    types = keras.Input((None,), dtype="int32", name="input_type_ids")
    x = keras.layers.Embedding(vocab_size, 8)(ids) + keras.layers.Embedding(2, 8)(types)
    x = x * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = PythonIdentity()(keras.ops.mean(x, axis=1))
    out = keras.layers.Dense(2, activation="softmax")(pooled)
    return keras.Model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}, out)


def test_an_export_tf_serving_cannot_load_is_refused_and_leaves_nothing(tmp_path):
    from tiny import tiny_tokenizer

    from keras_bert_ft.serving.export import export_for_serving

    tokenizer = tiny_tokenizer()
    model = python_op_classifier(tokenizer.vocab_size)
    base = tmp_path / "saved_models" / "pyfunc"
    with pytest.raises(ExportError, match=r"pyfunc: TF Serving's model server cannot run "
                                          r"this export: its graph uses PyFunc,"):
        export_for_serving(model, tokenizer, base, pairs=False, max_length=16)
    assert list(base.iterdir()) == []  # no version folder, no temporary folder
    # Nor the serving config, which names the versions TF Serving should load.
    assert sorted(p.name for p in base.parent.iterdir()) == ["pyfunc"]
