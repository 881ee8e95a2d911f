"""models.config and batching_parameters.txt: parsed with protobuf's text format
against message types that match TF Serving's (tensorflow_serving itself is not
installed here, so the test declares the same fields: names, numbers and types)."""

from __future__ import annotations

import os

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

from keras_bert_ft.serving.config import (
    BATCHING_PARAMETERS,
    MODELS_CONFIG,
    BatchingParameters,
    write_serving_config,
)

F = descriptor_pb2.FieldDescriptorProto


def _tf_serving_messages():
    """ModelServerConfig and BatchingParameters with TF Serving's field names and types
    (tensorflow_serving/config/model_server_config.proto, .../session_bundle_config.proto)."""
    try:  # the real classes, when installed
        from tensorflow_serving.config import model_server_config_pb2
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return (model_server_config_pb2.ModelServerConfig,
                session_bundle_config_pb2.BatchingParameters)  # fmt: skip
    except ImportError:
        pass
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(name="tfs_test.proto", package="tfs_test",
                                           dependency=["google/protobuf/wrappers.proto"])

    def message(name, fields):
        m = f.message_type.add(name=name)
        for number, (field, kind, type_name, repeated) in enumerate(fields, start=1):
            m.field.add(name=field, number=number, type=kind, type_name=type_name,
                        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)

    message("ModelConfig", [("name", F.TYPE_STRING, None, False),
                            ("base_path", F.TYPE_STRING, None, False),
                            ("model_platform", F.TYPE_STRING, None, False)])
    message("ModelConfigList", [("config", F.TYPE_MESSAGE, ".tfs_test.ModelConfig", True)])
    message("ModelServerConfig",
            [("model_config_list", F.TYPE_MESSAGE, ".tfs_test.ModelConfigList", False)])
    wrapped = ".google.protobuf.Int64Value"
    message("BatchingParameters", [("max_batch_size", F.TYPE_MESSAGE, wrapped, False),
                                   ("batch_timeout_micros", F.TYPE_MESSAGE, wrapped, False),
                                   ("max_enqueued_batches", F.TYPE_MESSAGE, wrapped, False),
                                   ("num_batch_threads", F.TYPE_MESSAGE, wrapped, False),
                                   ("pad_variable_length_inputs", F.TYPE_BOOL, None, False)])
    for m in f.message_type:  # type_name is only for message fields
        for field in m.field:
            if field.type != F.TYPE_MESSAGE:
                field.ClearField("type_name")
    pool.Add(f)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tfs_test.{n}"))
                 for n in ("ModelServerConfig", "BatchingParameters"))  # fmt: skip


def _export_layout(root, *names):
    for name in names:
        (root / name / "1").mkdir(parents=True)
    (root / "not_a_model").mkdir()  # no version folder: not listed


def test_models_config_lists_every_exported_model(tmp_path):
    _export_layout(tmp_path, "sst2", "spam")
    config_path, _ = write_serving_config(tmp_path / "sst2")
    assert config_path == tmp_path / MODELS_CONFIG
    server_config, _ = _tf_serving_messages()
    parsed = text_format.Parse(config_path.read_text(), server_config())
    entries = {c.name: c for c in parsed.model_config_list.config}
    assert sorted(entries) == ["spam", "sst2"]
    for name, entry in entries.items():
        assert entry.base_path == str((tmp_path / name).resolve())
        assert os.path.isabs(entry.base_path)
        assert entry.model_platform == "tensorflow"


def test_batching_parameters_parse_with_the_chosen_values(tmp_path):
    _export_layout(tmp_path, "sst2")
    _, batching_path = write_serving_config(
        tmp_path / "sst2", BatchingParameters(batch_timeout_micros=1500, num_batch_threads=3))
    assert batching_path == tmp_path / BATCHING_PARAMETERS
    _, batching = _tf_serving_messages()
    parsed = text_format.Parse(batching_path.read_text(), batching())
    assert parsed.max_batch_size.value == 8
    assert parsed.batch_timeout_micros.value == 1500
    assert parsed.num_batch_threads.value == 3
    assert parsed.max_enqueued_batches.value == 3  # defaults to the thread count
    assert parsed.pad_variable_length_inputs is True


def test_automatic_thread_count_is_the_core_count():
    p = BatchingParameters().resolved()
    assert p.num_batch_threads == (os.cpu_count() or 1) == p.max_enqueued_batches


def test_rewrite_keeps_one_entry_per_model_and_leaves_no_temp_files(tmp_path):
    _export_layout(tmp_path, "sst2")
    write_serving_config(tmp_path / "sst2")
    write_serving_config(tmp_path / "sst2")
    assert (tmp_path / MODELS_CONFIG).read_text().count("config {") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        BATCHING_PARAMETERS, MODELS_CONFIG]


def test_bad_batching_values_are_refused():
    with pytest.raises(ValueError, match="max_batch_size must be at least 1"):
        BatchingParameters(max_batch_size=0).to_text()


def test_quotes_in_paths_are_escaped(tmp_path):
    _export_layout(tmp_path, 'odd"name')
    config_path, _ = write_serving_config(tmp_path / 'odd"name')
    server_config, _ = _tf_serving_messages()
    parsed = text_format.Parse(config_path.read_text(), server_config())
    assert parsed.model_config_list.config[0].name == 'odd"name'


def test_server_root_rewrites_base_paths_for_a_container(tmp_path):
    _export_layout(tmp_path, "sst2")
    config_path, _ = write_serving_config(tmp_path / "sst2", server_root="/models")
    server_config, _ = _tf_serving_messages()
    parsed = text_format.Parse(config_path.read_text(), server_config())
    assert parsed.model_config_list.config[0].base_path == "/models/sst2"
    with pytest.raises(ValueError, match="server_root must be an absolute path"):
        write_serving_config(tmp_path / "sst2", server_root="models")


def test_export_writes_both_files_beside_the_model(tmp_path):
    from tiny import tiny_encoder, tiny_tokenizer

    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.serving.export import export_for_serving

    model = BertClassifier(tiny_encoder(), 2, tokenizer=tiny_tokenizer(), max_length=16)
    root = tmp_path / "saved_models"
    path = export_for_serving(model, None, root / "tiny", pairs=False)
    assert path == root / "tiny" / "1"
    assert sorted(p.name for p in (root / "tiny").iterdir()) == ["1"]  # versions only
    server_config, batching = _tf_serving_messages()
    parsed = text_format.Parse((root / MODELS_CONFIG).read_text(), server_config())
    assert [(c.name, c.base_path) for c in parsed.model_config_list.config] == [
        ("tiny", str((root / "tiny").resolve()))]
    text_format.Parse((root / BATCHING_PARAMETERS).read_text(), batching())
