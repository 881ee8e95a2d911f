"""TF Serving export: a fresh TensorFlow process serves the same probabilities.

The exports are of all-MiniLM-L6-v2 with a classification head, one for
single texts (SST-2) and one for pairs (MRPC). A subprocess that imports only
tensorflow and tensorflow_text loads each and must match `model.predict` on
200 real examples; it also feeds bad input. The graph's ops are checked
against the TF Serving allow-list, `saved_model_cli` must read the export, and
the warm-up records must parse as PredictionLog protos.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import corpora  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_ft import cpu_features
from keras_bert_ft.serving.export import (
    IDS_SIGNATURE,
    TEXT_SIGNATURE,
    WARMUP_FILE,
    export_for_serving,
    next_version,
)
from keras_bert_ft.serving.op_check import TF_TEXT_SERVING_OPS, saved_model_ops, unsupported_ops

VENV_BIN = Path(sys.executable).parent
N = 200

# Runs in a fresh interpreter: TensorFlow and tensorflow-text only.
SERVE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the WordPiece kernels)


def run(path, request_file, out_file):
    request = json.load(open(request_file))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    inputs = {k: tf.constant(v, tf.string) for k, v in request.items()}
    result = {"probabilities": serve(**inputs)["probabilities"].numpy().tolist()}

    def attempt(name, **kwargs):
        try:
            out = serve(**kwargs)
            result[name] = {"ok": True, "shape": list(out["probabilities"].shape),
                            "labels": [x.decode() for x in out["label"].numpy()]}
        except Exception as err:  # the answer is an error: record what kind
            result[name] = {"ok": False, "type": type(err).__name__, "message": str(err)}

    def strings(values):
        args = {"text": tf.constant(values, tf.string)}
        if "text_pair" in request:
            args["text_pair"] = tf.constant(values, tf.string)
        return args

    attempt("empty_string", **strings([""]))
    attempt("long_text", **strings(["word " * 20000]))
    attempt("empty_batch", **strings([]))
    attempt("invalid_utf8", **strings([b"\xff\xfe"]))
    wrong = {k: tf.constant([1, 2]) for k in strings([]).keys()}
    attempt("wrong_dtype", **wrong)
    result["imported_keras_bert_ft"] = any(m.startswith("keras_bert_ft") for m in sys.modules)
    json.dump(result, open(out_file, "w"))

args = sys.argv[1:]
for i in range(0, len(args), 3):
    run(*args[i:i + 3])
"""


@pytest.fixture(scope="module")
def minilm():
    import keras

    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier

    encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    keras.utils.set_random_seed(7)
    return encoder, tokenizer, BertClassifier


@pytest.fixture(scope="module")
def single(minilm, data_dir, tmp_path_factory):
    encoder, tokenizer, classifier = minilm
    model = classifier(encoder, 2, label_names=["negative", "positive"], tokenizer=tokenizer,
                       max_length=128, pooling="mean", pairs=False)
    texts = corpora.sst2_sentences(data_dir, "dev")[:N]
    base = tmp_path_factory.mktemp("exports") / "sst2"
    path = export_for_serving(model, tokenizer, base)
    return model, tokenizer, path, {"text": texts}


@pytest.fixture(scope="module")
def paired(minilm, data_dir, tmp_path_factory):
    encoder, tokenizer, classifier = minilm
    model = classifier(encoder, 3, label_names=["entailment", "neutral", "contradiction"],
                       tokenizer=tokenizer, max_length=64, truncation="ratio")
    premises, hypotheses = corpora.mrpc_pairs(data_dir, "dev")
    base = tmp_path_factory.mktemp("exports") / "mrpc"
    path = export_for_serving(model, tokenizer, base, pairs=True)
    return model, tokenizer, path, {"text": premises[:N], "text_pair": hypotheses[:N]}


@pytest.fixture(scope="module")
def fresh_results(single, paired, tmp_path_factory) -> dict:
    """Both exports served by one fresh interpreter (TensorFlow starts once)."""
    tmp = tmp_path_factory.mktemp("fresh")
    argv = []
    for name, (_, _, path, request) in (("single", single), ("paired", paired)):
        (tmp / f"{name}.json").write_text(json.dumps(request))
        argv += [str(path), str(tmp / f"{name}.json"), str(tmp / f"{name}.out.json")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", SERVE_SCRIPT, *argv], check=True, env=env,
                   timeout=600)
    return {name: json.loads((tmp / f"{name}.out.json").read_text())
            for name in ("single", "paired")}


@pytest.mark.parametrize("which", ["single", "paired"])
def test_fresh_process_matches_model_predict(which, request, fresh_results):
    model, tokenizer, path, inputs = request.getfixturevalue(which)
    result = fresh_results[which]
    assert not result["imported_keras_bert_ft"]
    encoded = tokenizer.encode_batch(inputs["text"], inputs.get("text_pair"),
                                     max_length=model.max_length, truncation=model.truncation)
    expected = model.predict(encoded, verbose=0)
    got = np.asarray(result["probabilities"])
    assert got.shape == (N, expected.shape[1])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)

    # Bad input: a valid answer or a clear error, never a crash of the process.
    assert result["empty_string"]["ok"] and result["empty_string"]["shape"][0] == 1
    assert result["long_text"]["ok"] and result["long_text"]["shape"][0] == 1
    assert result["empty_batch"]["ok"] and result["empty_batch"]["shape"][0] == 0
    assert not result["invalid_utf8"]["ok"]
    assert "not valid UTF-8" in result["invalid_utf8"]["message"]
    assert not result["wrong_dtype"]["ok"]
    assert "string" in result["wrong_dtype"]["message"]


# Serves exports in batches of changing sizes in a fresh interpreter whose environment the
# test sets; writes each export's probabilities in the order of the texts.
BATCHES_SCRIPT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401

texts = json.load(open(sys.argv[1]))
sizes, out = [1, 7, 32, 2, 25, 1, 16], {}
for path in sys.argv[3:]:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    rows, start, i = [], 0, 0
    while start < len(texts):
        chunk = texts[start:start + sizes[i % len(sizes)]]
        rows += serve(text=tf.constant(chunk))["probabilities"].numpy().tolist()
        start, i = start + len(chunk), i + 1
    out[path] = rows
json.dump(out, open(sys.argv[2], "w"))
"""


def test_exports_served_with_frozen_weights_match(single, tmp_path):
    """TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1, the server setting docs/serving.md recommends for
    bfloat16 exports, makes oneDNN reorder and cache each matmul's weights on first use.
    The float32 and bfloat16 exports served that way, in batches of 1 to 32 texts of
    changing lengths (a cache of anything but weights would answer later batches with
    earlier ones' values), must give what the model predicts."""
    model, tokenizer, path, inputs = single
    texts = inputs["text"][:120]
    bf16_path = export_for_serving(model, tokenizer, tmp_path / "bf16", precision="bfloat16")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1",
           "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1"}
    subprocess.run([sys.executable, "-c", BATCHES_SCRIPT, str(tmp_path / "texts.json"),
                    str(tmp_path / "out.json"), str(path), str(bf16_path)],
                   check=True, env=env, timeout=600)
    served = json.loads((tmp_path / "out.json").read_text())
    want = model.predict(tokenizer.encode_batch(texts, max_length=model.max_length), verbose=0)
    np.testing.assert_allclose(served[str(path)], want, atol=1e-5, rtol=0)
    bf16 = np.asarray(served[str(bf16_path)])
    np.testing.assert_allclose(bf16, want, atol=2e-2, rtol=0)
    assert np.mean(bf16.argmax(1) == want.argmax(1)) >= 0.98


def test_id_signature_matches_text_signature(paired):
    model, tokenizer, path, inputs = paired
    loaded = tf.saved_model.load(str(path))
    texts, pairs = inputs["text"][:16], inputs["text_pair"][:16]
    by_text = loaded.signatures[TEXT_SIGNATURE](text=tf.constant(texts),
                                                text_pair=tf.constant(pairs))
    encoded = tokenizer.encode_batch(texts, pairs, max_length=64, truncation="ratio")
    by_ids = loaded.signatures[IDS_SIGNATURE](**{k: tf.constant(v) for k, v in encoded.items()})
    np.testing.assert_allclose(by_ids["probabilities"], by_text["probabilities"], atol=1e-6)
    assert by_ids["label"].numpy().tolist() == by_text["label"].numpy().tolist()
    names = ["entailment", "neutral", "contradiction"]
    want = [names[i].encode() for i in np.argmax(by_ids["probabilities"], axis=1)]
    assert by_text["label"].numpy().tolist() == want


def test_ops_are_linked_by_tf_serving(single, paired):
    for _, _, path, _ in (single, paired):
        assert unsupported_ops(path) == []
        assert "FastWordpieceTokenizeWithOffsets" in saved_model_ops(path)
    assert "FastWordpieceTokenizeWithOffsets" in TF_TEXT_SERVING_OPS


def test_unsupported_ops_are_reported(tmp_path):
    class WithPyFunc(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x):
            return tf.numpy_function(lambda v: v, [x], tf.float32)

    tf.saved_model.save(WithPyFunc(), str(tmp_path / "m"))
    assert unsupported_ops(tmp_path / "m") == ["PyFunc"]


def test_saved_model_cli_reads_the_export(paired):
    out = subprocess.run([str(VENV_BIN / "saved_model_cli"), "show", "--dir", str(paired[2]),
                          "--all"], capture_output=True, text=True, timeout=300, check=True)
    for text in (TEXT_SIGNATURE, IDS_SIGNATURE, "text_pair", "probabilities", "label_id"):
        assert text in out.stdout


def test_assets(paired):
    _, tokenizer, path, _ = paired
    assert (path / "assets" / "labels.txt").read_text().split() == [
        "entailment", "neutral", "contradiction"]
    vocab = (path / "assets" / "vocab.txt").read_text("utf-8").split("\n")[:-1]
    assert vocab == tokenizer.get_vocab()


def prediction_log_class():
    """PredictionLog parsed with descriptors built here from the .proto field numbers."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name="kbf_test_prediction_log.proto", package="tensorflow.serving",
        dependency=["tensorflow/core/framework/tensor.proto"], syntax="proto3")

    def message(name, *fields, nested=()):
        m = fd.message_type.add(name=name) if not nested else nested[0].nested_type.add(name=name)
        for fname, number, ftype, type_name, label in fields:
            m.field.add(name=fname, number=number, type=ftype, type_name=type_name or None,
                        label=label)
        return m

    one, rep, msg, ns = F.LABEL_OPTIONAL, F.LABEL_REPEATED, F.TYPE_MESSAGE, ".tensorflow.serving."
    message("ModelSpec", ("name", 1, F.TYPE_STRING, "", one),
            ("signature_name", 3, F.TYPE_STRING, "", one))
    request = message("PredictRequest", ("model_spec", 1, msg, ns + "ModelSpec", one),
                      ("inputs", 2, msg, ns + "PredictRequest.InputsEntry", rep))
    entry = message("InputsEntry", ("key", 1, F.TYPE_STRING, "", one),
                    ("value", 2, msg, ".tensorflow.TensorProto", one), nested=(request,))
    entry.options.map_entry = True
    message("PredictLog", ("request", 1, msg, ns + "PredictRequest", one))
    message("PredictionLog", ("predict_log", 6, msg, ns + "PredictLog", one))
    pool = descriptor_pool.DescriptorPool()
    for dep in _file_and_deps(tensor_pb2.DESCRIPTOR):
        pool.AddSerializedFile(dep.serialized_pb)
    pool.Add(fd)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))


def _file_and_deps(file_descriptor, seen=None) -> list:
    seen = set() if seen is None else seen
    out = []
    for dep in file_descriptor.dependencies:
        if dep.name not in seen:
            out += _file_and_deps(dep, seen)
    if file_descriptor.name not in seen:
        seen.add(file_descriptor.name)
        out.append(file_descriptor)
    return out


def test_warmup_requests_parse_and_run(paired):
    _, _, path, _ = paired
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra" / WARMUP_FILE)))
    assert records
    log = prediction_log_class()()
    log.ParseFromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.signature_name == TEXT_SIGNATURE
    assert request.model_spec.name == "mrpc"
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    assert set(inputs) == {"text", "text_pair"}
    served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](
        **{k: tf.constant(v) for k, v in inputs.items()})
    assert served["probabilities"].shape[0] == len(inputs["text"])


def test_versions_are_never_overwritten(tmp_path):
    from tiny import tiny_encoder, tiny_tokenizer

    from keras_bert_ft.models import BertClassifier

    tokenizer = tiny_tokenizer()
    model = BertClassifier(tiny_encoder(), 2, tokenizer=tokenizer, max_length=16, pairs=False)
    base = tmp_path / "tiny"
    first = export_for_serving(model, tokenizer, base)
    assert first == base / "1"
    before = (first / "saved_model.pb").read_bytes()
    assert next_version(base) == 2
    second = export_for_serving(model, tokenizer, base)
    assert second == base / "2"
    assert (first / "saved_model.pb").read_bytes() == before
    with pytest.raises(FileExistsError):
        export_for_serving(model, tokenizer, base, version=1)
    # No temporary folders left behind for a polling server to trip over.
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_a_racing_export_gets_the_next_version(tmp_path, monkeypatch):
    """Another export takes the number between our scan and our rename: we take the next."""
    import keras_bert_ft.serving.export as export

    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("live")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "saved_model.pb").write_text("ours")
    real_rename, raced = os.rename, []

    def rival_first(src, dst):
        if not raced:  # the rival's version appears just before our rename
            raced.append(dst)
            Path(dst).mkdir()
            Path(dst, "saved_model.pb").write_text("rival")
        return real_rename(src, dst)

    monkeypatch.setattr(export.os, "rename", rival_first)
    assert export._publish(ours, base, None) == base / "3"
    assert [(base / v / "saved_model.pb").read_text() for v in "123"] == ["live", "rival", "ours"]


# -- tiny models: what the export stores, pairs, max_length, stale temp folders -------------

def tiny_classifier(**kwargs):
    from tiny import tiny_encoder, tiny_tokenizer

    from keras_bert_ft.models import BertClassifier

    return BertClassifier(tiny_encoder(), 2, tokenizer=tiny_tokenizer(), max_length=16, **kwargs)


def stored_values(version_dir: Path) -> int:
    """How many numbers the SavedModel's variables hold (its checkpoint's tensors)."""
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    return sum(int(np.prod(shape)) for name, shape in shapes.items()
               if name != "_CHECKPOINTABLE_OBJECT_GRAPH")


def test_export_stores_only_the_weights_of_a_trained_model(tmp_path):
    from tiny import texts_and_labels

    from keras_bert_ft.training import compile_classifier

    model = tiny_classifier(pairs=False)
    compile_classifier(model, total_steps=10, learning_rate=1e-3)
    texts, labels = texts_and_labels(4)
    batch = model.encode(texts)
    model.fit(batch, np.array(labels), batch_size=8, steps_per_epoch=1, epochs=1, verbose=0)
    # The optimizer now holds two slots per weight and an iteration counter.
    assert sum(int(np.prod(v.shape)) for v in model.optimizer.variables) > model.count_params()
    path = export_for_serving(model, None, tmp_path / "trained")
    assert stored_values(path) == model.count_params()
    # The weights are the trained ones: the export serves what the model predicts.
    served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](text=tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"], model.predict(batch, verbose=0),
                               atol=1e-5)


def saved_matmuls(version_dir: Path) -> int:
    """How many MatMul nodes the SavedModel's graphs and functions hold."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return sum(node.op == "MatMul" for meta in proto.meta_graphs
               for f in meta.graph_def.library.function for node in f.node_def)


def test_parallel_groups_split_the_projections_and_serve_the_same(tmp_path):
    """The default export runs each block's heads and feed-forward units in two groups:
    twice the projection matmuls, the same stored values, the same probabilities as the
    whole projections and as the model."""
    from tiny import texts_and_labels

    model = tiny_classifier(pairs=False)
    texts, _ = texts_and_labels(6)
    want = model.predict(model.encode(texts), verbose=0)
    whole = export_for_serving(model, None, tmp_path / "whole", parallel_groups=1)
    split = export_for_serving(model, None, tmp_path / "split")
    blocks = model.encoder.config.num_layers
    # Per block 4 projections, traced in both branches of the packing cond, and again for
    # the first-token block; pooler and head matmuls are never split.
    assert saved_matmuls(split) - saved_matmuls(whole) > 0
    assert (saved_matmuls(split) - saved_matmuls(whole)) % (4 * blocks) == 0
    assert stored_values(split) == stored_values(whole) == model.count_params()
    assert unsupported_ops(split) == []
    for path in (whole, split):
        served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](
            text=tf.constant(texts))["probabilities"]
        np.testing.assert_allclose(served, want, atol=1e-5)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="parallel_groups must be a positive whole number"):
            export_for_serving(model, None, tmp_path / "bad", parallel_groups=bad)


def test_bfloat16_export_agrees_with_float32_and_stores_bfloat16_projections(
        single, tmp_path, monkeypatch):
    """precision="bfloat16" of a float32 model: the projections are stored in bfloat16
    (same count of values), only allowed ops, and the probabilities on 64 real SST-2
    dev sentences stay within 2e-2 of the float32 model's, with the same argmax. On a
    CPU without bfloat16 instructions the export warns that it will be slower there."""
    model, tokenizer, _, inputs = single
    texts = inputs["text"][:64]
    monkeypatch.setattr(cpu_features, "cpu_info",
                        lambda: cpu_features.CpuInfo("AVX2 CPU", frozenset({"avx2", "fma"})))
    with pytest.warns(UserWarning, match=r"a bfloat16 export served on a CPU like this one: "
                                         r"this CPU \(AVX2 CPU\) has none"):
        path = export_for_serving(model, tokenizer, tmp_path / "bf16", precision="bfloat16")
    assert model.encoder.compute_dtype == "float32"  # the model's own policy is back
    assert unsupported_ops(path) == []
    assert stored_values(path) == model.count_params()
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    bf16_values = sum(int(np.prod(shapes[n])) for n, d in dtypes.items() if d == tf.bfloat16)
    c = model.encoder.config
    h, i = c.hidden_size, c.intermediate_size
    # Per layer: q, k, v and output (h x h + h each), intermediate and output dense.
    assert bf16_values == c.num_layers * (4 * (h * h + h) + (h * i + i) + (i * h + h))

    encoded = tokenizer.encode_batch(texts, max_length=model.max_length)
    want = model.predict(encoded, verbose=0)
    got = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](
        text=tf.constant(texts))["probabilities"].numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-2, rtol=0)
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.98
    with pytest.raises(ValueError, match="precision"):
        export_for_serving(model, tokenizer, tmp_path / "bad", precision="float16")


def test_pairs_default_to_the_model_and_contradictions_are_refused(tmp_path):
    pair_model = tiny_classifier(pairs=True)
    path = export_for_serving(pair_model, None, tmp_path / "pairs")
    inputs = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE].structured_input_signature
    assert sorted(inputs[1]) == ["text", "text_pair"]
    with pytest.raises(ValueError, match="trained on sentence pairs; export it with pairs=True"):
        export_for_serving(pair_model, None, tmp_path / "wrong", pairs=False)
    with pytest.raises(ValueError, match="trained on single texts"):
        export_for_serving(tiny_classifier(pairs=False), None, tmp_path / "wrong", pairs=True)
    assert not (tmp_path / "wrong").exists()  # refused before anything was written


def test_a_model_without_a_pairs_record_exports_single_texts_with_a_warning(tmp_path):
    from keras_bert_ft.serving.predict import export_inputs

    model = tiny_classifier()
    assert model.pairs is None
    with pytest.warns(UserWarning, match="pass pairs=True to export a pair model"):
        path = export_for_serving(model, None, tmp_path / "old")
    assert export_inputs(path) == ["text"]


def test_max_length_beyond_the_position_embeddings_is_refused(tmp_path):
    model = tiny_classifier(pairs=False)  # the tiny encoder has 64 positions
    with pytest.raises(ValueError, match="more than the encoder's 64 position embeddings"):
        export_for_serving(model, None, tmp_path / "long", max_length=65)
    assert not (tmp_path / "long").exists()


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_temp_folders_of_dead_processes_are_removed(tmp_path):
    from keras_bert_ft.serving.export import _host, remove_stale_temp_folders

    host = _host()
    dead = tmp_path / f".export-{host}-{dead_pid()}-abc123"
    live = tmp_path / f".export-{host}-{os.getpid()}-def456"
    elsewhere = tmp_path / f".export-otherhost-{dead_pid()}-ghi789"  # another machine's
    for folder in (dead, live, elsewhere):
        (folder / "model").mkdir(parents=True)
    assert remove_stale_temp_folders(tmp_path) == [dead]
    assert not dead.exists() and live.is_dir() and elsewhere.is_dir()


def test_ownerless_temp_folders_of_older_versions_go_after_a_day(tmp_path):
    from keras_bert_ft.serving.export import OLD_TEMP_MAX_AGE_S, remove_stale_temp_folders

    stale, recent = tmp_path / ".export-k3j_x9q2", tmp_path / ".export-a8c2mz01"
    for folder in (stale, recent):
        (folder / "model").mkdir(parents=True)
    old = time.time() - OLD_TEMP_MAX_AGE_S - 60
    os.utime(stale, (old, old))
    assert remove_stale_temp_folders(tmp_path) == [stale]
    assert recent.is_dir()


KILLED_EXPORT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
import tensorflow as tf
from tiny import tiny_encoder, tiny_tokenizer
from keras_bert_ft.serving.export import export_for_serving
from keras_bert_ft.models import BertClassifier

real_save = tf.saved_model.save

def slow_save(*args, **kwargs):  # the SavedModel is written, the export not yet published
    real_save(*args, **kwargs)
    print("saved", flush=True)
    time.sleep(600)

tf.saved_model.save = slow_save
model = BertClassifier(tiny_encoder(), 2, tokenizer=tiny_tokenizer(), max_length=16, pairs=False)
export_for_serving(model, None, sys.argv[1])
"""


def test_a_killed_export_publishes_nothing_and_the_next_export_cleans_up(tmp_path):
    import signal

    from tiny import SUPPORT, subprocess_env

    base = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(base),
                              str(SUPPORT)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=subprocess_env())
    try:
        line = child.stdout.readline()  # blocks until the child saved (or died)
        assert line.strip() == "saved", child.stderr.read()[-3000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    leftovers = [p.name for p in base.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".export-")
    assert f"-{child.pid}-" in leftovers[0]
    assert (base / leftovers[0] / "model" / "saved_model.pb").is_file()

    path = export_for_serving(tiny_classifier(pairs=False), None, base)
    assert path == base / "1"  # the killed export took no version number
    assert sorted(p.name for p in base.iterdir()) == ["1"]
