"""The whole fine-tuned classifier as a Hugging Face directory.

`save_hf` writes the encoder only; `save_hf_classifier` writes encoder and head
so that `transformers.AutoModelForSequenceClassification.from_pretrained(path)`
gives the same scores as the Keras model, with `id2label` / `label2id` from the
label names, a tokenizer that `AutoTokenizer` loads, and a model card
(`README.md`) built from what the training run recorded.

How heads map onto `transformers`:

- pooling "pooled" with no hidden layers is `BertForSequenceClassification`
  (BERT pooler, dropout, one linear layer): the pooler is the encoder's, the
  `logits` Dense becomes `classifier`. Plain `from_pretrained(path)` loads it.
- "mean" or "cls" pooling, or hidden layers in the head (the package's default
  is mean pooling): `transformers` has no class with that head (its BERT
  classifier always applies the pooler, and has one linear layer). The export
  then carries the head's PyTorch code (`modeling_keras_bert_ft.py`, from
  `hf_remote_head.py`) under its own `model_type`, and loads with
  `from_pretrained(path, trust_remote_code=True)`; without that flag
  `transformers` refuses it rather than loading a BERT head that would give
  other scores.
- softmax head: `problem_type` "single_label_classification"; multi-label
  (a sigmoid per class): "multi_label_classification" (the user applies the
  sigmoid, as `transformers` does for that problem type); regression:
  "regression" with one output.
- one sigmoid unit for two classes (`binary_sigmoid`): `transformers` has no
  single-logit binary classifier (one output means regression there), so the
  head is converted to two logits (0, z). softmax((0, z)) = (1 - sigmoid(z),
  sigmoid(z)), so the probabilities are the same, and the exported model is an
  ordinary two-class classifier that `transformers` pipelines and losses
  handle as such.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_bert_ft.checkpoints.huggingface import read_state_dict
from keras_bert_ft.checkpoints.huggingface import save as save_hf
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.infra import atomic_write

PROBLEM_TYPES = {
    "softmax": "single_label_classification",
    "binary": "single_label_classification",
    "multi_label": "multi_label_classification",
    "regression": "regression",
}
MODEL_CARD = "README.md"
REMOTE_CODE_FILE = "modeling_keras_bert_ft.py"
REMOTE_MODEL_TYPE = "keras_bert_ft"
# Activations of hidden head layers that hf_remote_head.py maps to torch modules.
REMOTE_ACTIVATIONS = ("gelu", "relu", "tanh", "sigmoid", "linear", "silu", "swish")


class HFExportError(CheckpointFormatError):
    """A classifier whose head has no `transformers` equivalent, or a bad export target."""


def check_exportable(model) -> None:
    """Raise `HFExportError` unless `model` can be written for `transformers`."""
    if not hasattr(model.encoder, "weight_map") or not hasattr(model.encoder, "config"):
        raise HFExportError(
            f"the encoder is a {type(model.encoder).__name__}; only a BertEncoder can be "
            "written as a Hugging Face BERT")  # fmt: skip
    if model.hidden_units and model.hidden_activation not in REMOTE_ACTIVATIONS:
        raise HFExportError(
            f"the head's hidden activation {model.hidden_activation!r} has no PyTorch "
            f"counterpart here; supported: {', '.join(REMOTE_ACTIVATIONS)}")


def needs_remote_code(model) -> bool:
    """True when the head is not `BertForSequenceClassification`'s (see the module
    docstring): the export then loads with `trust_remote_code=True`."""
    return model.pooling != "pooled" or bool(model.hidden_units)


def hf_classifier_config(model) -> dict:
    """The `config.json` of the exported classifier."""
    config = model.encoder.config.to_hf_dict()
    head = model.head_type
    if head == "regression":
        names = ["value"]
    elif model.label_names:
        names = list(model.label_names)
    else:
        names = [f"LABEL_{i}" for i in range(model.num_classes)]
    config.update(
        architectures=["BertForSequenceClassification"],
        problem_type=PROBLEM_TYPES[head],
        id2label={str(i): name for i, name in enumerate(names)},
        label2id={name: i for i, name in enumerate(names)},
    )
    if needs_remote_code(model):
        module = REMOTE_CODE_FILE.removesuffix(".py")
        config.update(
            model_type=REMOTE_MODEL_TYPE,
            architectures=["KerasBertFtForSequenceClassification"],
            auto_map={
                "AutoConfig": f"{module}.KerasBertFtConfig",
                "AutoModelForSequenceClassification":
                    f"{module}.KerasBertFtForSequenceClassification",
            },
            pooling=model.pooling,
            head_hidden_units=list(model.hidden_units),
            head_hidden_activation=model.hidden_activation,
        )  # fmt: skip
    return config


def head_weights(model) -> dict[str, np.ndarray]:
    """The head's tensors under the exported model's names: `classifier.*`, and for
    hidden layers `hidden.<k>.*` (k: the Linear's place in the torch Sequential, where
    each hidden layer is Dropout, Linear, activation)."""
    state = {}
    for i in range(len(model.hidden_units)):
        dense = model.get_layer(f"head_hidden_{i}")
        state[f"hidden.{3 * i + 1}.weight"] = np.ascontiguousarray(
            np.asarray(dense.kernel.numpy(), dtype=np.float32).T)
        state[f"hidden.{3 * i + 1}.bias"] = np.asarray(dense.bias.numpy(), dtype=np.float32)
    state["classifier.weight"], state["classifier.bias"] = classifier_weights(model)
    return state


def classifier_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """`classifier.weight` (num_labels, hidden) and `classifier.bias` (num_labels,) in
    `transformers`' layout; a one-unit sigmoid becomes the two logits (0, z)."""
    dense = model.get_layer("logits")
    kernel = np.asarray(dense.kernel.numpy(), dtype=np.float32).T  # torch: (out, in)
    bias = np.asarray(dense.bias.numpy(), dtype=np.float32)
    if model.head_type == "binary":
        kernel = np.concatenate([np.zeros_like(kernel), kernel])
        bias = np.concatenate([np.zeros_like(bias), bias])
    return np.ascontiguousarray(kernel), bias


def save_hf_classifier(
    model,
    path: str | os.PathLike,
    *,
    run_dir: str | os.PathLike | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` (a `BertClassifier`) as a directory that
    `AutoModelForSequenceClassification` and `AutoTokenizer` load.

    The directory is written beside `path` under a temporary name and renamed
    when complete. `run_dir`, the train output folder, feeds the model card
    (base model, data, metrics, settings); without it the card says they were
    not recorded. Heads other than BERT's pooler + one linear layer need
    `trust_remote_code=True` to load (see the module docstring and
    `needs_remote_code`). Raises `HFExportError` for an encoder or activation
    that cannot be written, and for an existing `path` unless `overwrite`.
    """
    from safetensors.numpy import save_file

    check_exportable(model)
    if model.tokenizer is None:
        raise HFExportError("the model has no tokenizer; its vocabulary is needed for export")
    target = Path(path)
    if target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise HFExportError(f"{target} already exists; choose another folder or overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        vocab = tmp / "vocab.source.txt"
        vocab.write_text("\n".join(model.tokenizer.get_vocab()) + "\n", encoding="utf-8")
        save_hf(model.encoder, str(tmp), vocab_file=str(vocab))
        vocab.unlink()
        # save_hf names the encoder's tensors as BertModel does; the classifier holds
        # them under `bert.`, next to its own `classifier` layer.
        state = {f"bert.{k}": v for k, v in read_state_dict(str(tmp)).items()
                 if model.pooling == "pooled" or not k.startswith("pooler.")}  # fmt: skip
        state.update(head_weights(model))
        if needs_remote_code(model):
            code = Path(__file__).with_name("hf_remote_head.py").read_text(encoding="utf-8")
            atomic_write(tmp / REMOTE_CODE_FILE, code)
        atomic_write(tmp / "model.safetensors", _safetensors_bytes(save_file, state))
        atomic_write(tmp / "config.json", _json(hf_classifier_config(model)))
        atomic_write(tmp / "tokenizer_config.json", _json(_tokenizer_config(model)))
        atomic_write(tmp / "special_tokens_map.json", _json(_special_tokens(model.tokenizer)))
        run = read_run_record(run_dir) if run_dir is not None else {}
        card = model_card(model, run, name or target.name, str(target))
        atomic_write(tmp / MODEL_CARD, card)
        if target.exists():  # overwrite: move the old folder away first, then delete it
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                          dir=target.parent))  # fmt: skip
            os.replace(target, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _safetensors_bytes(save_file, state: dict) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        file = Path(d) / "model.safetensors"
        save_file(state, str(file), metadata={"format": "pt"})
        return file.read_bytes()


def _json(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _tokenizer_config(model) -> dict:
    tok = model.tokenizer
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tok.lowercase,
        "strip_accents": None if tok.strip_accents == tok.lowercase else tok.strip_accents,
        "tokenize_chinese_chars": True,
        "model_max_length": model.max_length,
        **_special_tokens(tok),
    }


def _special_tokens(tok) -> dict:
    return {"unk_token": tok.unk_token, "sep_token": tok.sep_token, "pad_token": tok.pad_token,
            "cls_token": tok.cls_token, "mask_token": tok.mask_token}  # fmt: skip


# --------------------------------------------------------------------------- model card


def read_run_record(run_dir: str | os.PathLike) -> dict:
    """What a train output folder recorded: run.json, settings.json, report/metrics.json
    (each as a dict, or missing when the file is not there)."""
    root = Path(run_dir)
    if root.is_file():  # model.keras inside the folder
        root = root.parent
    record = {}
    for key, rel in (("run", "run.json"), ("settings", "settings.json"),
                     ("metrics", "report/metrics.json")):  # fmt: skip
        file = root / rel
        if file.is_file():
            try:
                record[key] = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise HFExportError(f"{file}: cannot read it for the model card ({e})") from None
    return record


def model_card(model, run: dict, name: str, where: str = ".") -> str:
    """The README.md of the export: base model, labels, data, metrics, the command.

    `run` is `read_run_record`'s result ({} when nothing was recorded); `where` is the
    folder path the usage example loads from."""
    settings = run.get("settings") or (run.get("metrics") or {}).get("settings") or {}
    record = run.get("run") or {}
    record = record.get("identity", record)  # run.json holds {"format": ..., "identity": ...}
    base = settings.get("model") or (record.get("model") or {}).get("source")
    metrics = run.get("metrics")
    front = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             "tags:", "- keras-bert-ft", "- bert"]  # fmt: skip
    if base and not Path(base).exists() and "/" in base:  # a Hub id, not a local path
        front.append(f"base_model: {base}")
    front.append("---")
    lines = [*front, "", f"# {name}", ""]
    kind = "sentence pairs" if model.pairs else "single texts" if model.pairs is False else "texts"
    remote = needs_remote_code(model)
    if remote:
        hidden = (f", hidden layers {list(model.hidden_units)} ({model.hidden_activation})"
                  if model.hidden_units else "")  # fmt: skip
        exported_as = (
            f"`KerasBertFtForSequenceClassification` ({model.pooling} pooling{hidden}, then "
            f"a linear classifier), whose PyTorch code is `{REMOTE_CODE_FILE}` in this "
            "folder: load it with `trust_remote_code=True`")
    else:
        exported_as = "`BertForSequenceClassification`"
    lines += [
        f"A BERT classifier of {kind}, fine-tuned with keras-bert-ft and exported as "
        f"{exported_as} (problem type `{PROBLEM_TYPES[model.head_type]}`).",
        "",
        "## Base model",
        "",
        f"`{base}`" if base else "Not recorded (no run.json / settings.json given at export).",
        "",
        "## Labels",
        "",
        "| id | label |",
        "| --- | --- |",
        *(f"| {i} | {n} |" for i, n in
          hf_classifier_config(model)["id2label"].items()),  # fmt: skip
        "",
    ]
    lines += [f"Texts were packed as `[CLS] a [SEP]`{' b [SEP]' if model.pairs else ''} and "
              f"cut to {model.max_length} tokens ({model.truncation}); the tokenizer's "
              "`model_max_length` is set to that.", ""]  # fmt: skip
    if model.pairs:
        # Measured with transformers 5: a 7 + 7 word pair cut to 16 tokens loses the
        # first text's last word there, the second text's here.
        lines += ["When a pair is too long and both texts are equally long, transformers' "
                  "`longest_first` truncation cuts the first text, while this model was "
                  "trained cutting the second (as original BERT does); only such pairs get "
                  "other token ids.", ""]  # fmt: skip
    if model.head_type == "binary":
        lines += ["Trained with one sigmoid unit; exported as two logits (0, z), which give "
                  "the same probabilities under softmax.", ""]  # fmt: skip
    lines += ["## Data", "", *_data_lines(record, metrics), "", "## Metrics", "",
              *_metric_lines(metrics), "", "## Training command", "", *_command_lines(settings),
              "", "## Use", "", "```python",
              "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
              "",
              f"tokenizer = AutoTokenizer.from_pretrained({where!r})",
              f"model = AutoModelForSequenceClassification.from_pretrained({where!r}"
              + (", trust_remote_code=True)" if remote else ")"),
              'inputs = tokenizer(["some text"], return_tensors="pt")'
              if not model.pairs else
              'inputs = tokenizer(["first text"], ["second text"], return_tensors="pt")',
              "probabilities = model(**inputs).logits.softmax(-1)"
              if model.head_type in ("softmax", "binary") else
              "scores = model(**inputs).logits" + (".sigmoid()"
                                                   if model.head_type == "multi_label" else ""),
              "```", ""]  # fmt: skip
    return "\n".join(lines)


def _data_lines(record: dict, metrics: dict | None) -> list[str]:
    data = record.get("data") or {}
    lines = []
    for split in ("train", "validation"):
        d = data.get(split)
        if d:
            kind = "pairs" if d.get("pairs") else "texts"
            lines.append(f"- {split}: {_count(d.get('rows'))} {kind} from `{d.get('source')}` "
                         f"(content sha256 `{str(d.get('sha256', ''))[:16]}…`)")  # fmt: skip
    if metrics and metrics.get("evaluated_on"):
        lines.append(f"- metrics below: {_count(metrics.get('num_examples'))} examples from "
                     f"`{metrics['evaluated_on']}`")  # fmt: skip
    return lines or ["Not recorded (no run.json given at export)."]


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _metric_lines(metrics: dict | None) -> list[str]:
    if not metrics:
        return ["Not recorded (no report/metrics.json given at export)."]
    keys = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1")
    lines = ["| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {metrics[k]:.4f} |" for k in keys if isinstance(metrics.get(k), float)]
    per_class = metrics.get("per_class") or {}
    if per_class:
        lines += ["", "| label | precision | recall | f1 | support |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {n} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | "
                  f"{c['support']} |" for n, c in per_class.items()]  # fmt: skip
    return lines


# settings.json key -> train option; values printed as the option expects them.
_OPTIONS = (("model", "--model"), ("num_layers", "--num-layers"), ("pooling", "--pooling"),
            ("hidden_units", "--hidden-units"), ("dropout", "--dropout"),
            ("learning_rate", "--learning-rate"), ("batch_size", "--batch-size"),
            ("epochs", "--epochs"), ("warmup_ratio", "--warmup-ratio"),
            ("weight_decay", "--weight-decay"), ("clipnorm", "--clipnorm"),
            ("layer_decay", "--layer-decay"), ("max_length", "--max-length"),
            ("class_weight", "--class-weight"), ("precision", "--precision"),
            ("seed", "--seed"))  # fmt: skip


def _command_lines(settings: dict) -> list[str]:
    if not settings:
        return ["Not recorded (no settings.json given at export)."]
    args = ["keras-bert-ft", "train", "--train", "DATA"]
    for key, option in _OPTIONS:
        value = settings.get(key)
        if value is None or value == [] or value == ():
            continue
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = ",".join(str(v) for v in value)
        args += [option, str(value)]
    layers = settings.get("train_encoder_layers")
    if layers == 0:
        args += ["--fine-tune", "frozen"]
    elif layers:
        args += ["--fine-tune", "top", "--train-layers", str(layers)]
    return ["Rebuilt from the run's settings.json (DATA: the data listed above):", "",
            "```sh", " ".join(args), "```"]  # fmt: skip
