"""`keras-bert-ft pretrain`: text reading and packing, outputs, resume, `train --from`,
and bad input (empty file, no [MASK], one-sentence documents with NSP)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tiny import save_tiny_hf, tiny_tokenizer, write_csv

from keras_bert_ft.cli.app import main
from keras_bert_ft.pretraining.data import (
    PretrainingDataError,
    pack_sentence_pairs,
    pack_sequences,
    read_documents,
)

SENTENCES = ["The film was a delight from start to end.", "Its actors were great fun!",
             "I would watch it again?", "The music, however, was dull.",
             "Nobody in the theatre left early."]  # fmt: skip


def write_corpus(path, documents=12):
    lines = [" ".join(SENTENCES[(d + i) % 5] for i in range(4)) for d in range(documents)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_hf(tmp_path_factory.mktemp("tiny") / "model")


def test_read_documents_both_layouts(tmp_path):
    per_line = tmp_path / "a.txt"
    per_line.write_text("One. Two!\nThree.\n", encoding="utf-8")
    assert read_documents(per_line) == [["One.", "Two!"], ["Three."]]
    blocks = tmp_path / "b.txt"
    blocks.write_text("One.\nTwo. Three.\n\n\nFour.\n", encoding="utf-8")
    assert read_documents(blocks) == [["One.", "Two.", "Three."], ["Four."]]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "A b.<br /><br />C d."}\n{"text": "E."}\n', encoding="utf-8")
    assert read_documents(jsonl) == [["A b.", "C d."], ["E."]]


def test_packing_fills_rows_and_pairs_follow_or_not(tmp_path):
    tok = tiny_tokenizer()
    docs = read_documents(write_corpus(tmp_path / "t.txt", documents=40))
    packed = pack_sequences(docs, tok, max_length=32)
    lengths = packed.input_mask.sum(1)
    assert lengths.max() <= 32 and (packed.input_word_ids[:, 0] == tok.cls_id).all()
    assert (packed.input_word_ids[np.arange(len(packed)), lengths - 1] == tok.sep_id).all()
    pairs = pack_sentence_pairs(docs, tok, max_length=48, seed=0)
    assert set(np.unique(pairs.next_sentence_labels)) == {0, 1}
    assert 0.3 < pairs.next_sentence_labels.mean() < 0.7
    assert (pairs.input_mask.sum(1) <= 48).all()
    # Segment B is typed 1 and ends with [SEP].
    assert (pairs.input_type_ids.sum(1) > 0).all()


def test_pretrain_writes_hf_dir_resumes_and_train_from_it(tmp_path, tiny_model_dir, capsys):
    text = write_corpus(tmp_path / "corpus.txt", documents=60)
    out = tmp_path / "run"
    args = ["pretrain", "--text", str(text), "--from", str(tiny_model_dir), "--steps", "4",
            "--steps-per-checkpoint", "2", "--batch-size", "4", "--max-length", "32",
            "--validation-fraction", "0.2", "--output-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "has no masked-LM head; starting it fresh" in printed.err
    assert "Held-out MLM before" in printed.out and "Held-out MLM after" in printed.out
    for name in ("config.json", "model.safetensors", "vocab.txt", "encoder.keras",
                 "validation_before.json", "validation_after.json", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "logs").is_dir() and (out / "checkpoints" / "epoch-0002").is_dir()
    after = json.loads((out / "validation_after.json").read_text())
    assert np.isfinite(after["mlm_loss"]) and 0 <= after["mlm_accuracy"] <= 1
    # More steps: resumes from the checkpoint, and the heads now load from the output.
    assert main([*args[:6], "6", *args[7:]]) == 0
    assert "Resuming from" in capsys.readouterr().out
    assert (out / "checkpoints" / "epoch-0003").is_dir()
    again = tmp_path / "again"
    shutil.copytree(out, again, ignore=shutil.ignore_patterns("checkpoints", "logs", "run.json"))
    assert main(["pretrain", "--text", str(text), "--from", str(again), "--steps", "1",
                     "--batch-size", "4", "--max-length", "32",
                     "--output-dir", str(tmp_path / "r2")]) == 0
    assert "starting it fresh" not in capsys.readouterr().err
    data = write_csv(tmp_path / "train.csv")
    assert main(["train", "--train", str(data), "--from", str(out), "--epochs", "1",
                     "--batch-size", "8", "--max-length", "16",
                     "--output-dir", str(tmp_path / "clf")]) == 0
    assert (tmp_path / "clf" / "model.keras").is_file()


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_empty_text_file(tmp_path, tiny_model_dir, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["pretrain", "--text", str(empty), "--from", str(tiny_model_dir),
                     "--output-dir", str(out)]) == 2
    assert "empty.txt: the file holds no text" in _error(capsys)
    assert not out.exists()


def test_vocabulary_without_mask(tmp_path, tiny_model_dir, capsys):
    model = tmp_path / "nomask"
    shutil.copytree(tiny_model_dir, model)
    vocab = (model / "vocab.txt").read_text(encoding="utf-8").replace("[MASK]\n", "[MASQ]\n")
    (model / "vocab.txt").write_text(vocab, encoding="utf-8")
    out = tmp_path / "o"
    assert main(["pretrain", "--text", str(write_corpus(tmp_path / "t.txt")), "--from",
                     str(model), "--max-length", "32", "--output-dir", str(out)]) == 2
    assert "has no [MASK] token" in _error(capsys)
    assert not out.exists()


def test_one_sentence_documents_with_nsp(tmp_path, tiny_model_dir, capsys):
    text = tmp_path / "one.txt"
    text.write_text("Just one sentence here.\nAnd another lone one.\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["pretrain", "--text", str(text), "--from", str(tiny_model_dir), "--nsp",
                     "--max-length", "32", "--validation-fraction", "0",
                     "--output-dir", str(out)]) == 2
    assert "documents of at least two sentences" in _error(capsys)
    assert not out.exists()
    with pytest.raises(PretrainingDataError):
        pack_sentence_pairs([["only one."]], tiny_tokenizer(), 32)


def test_masks_change_every_epoch_and_repeat_with_the_seed(tmp_path):
    from keras_bert_ft.pretraining.data import masked_dataset
    from keras_bert_ft.pretraining.masking import MaskingVocab

    tok = tiny_tokenizer()
    packed = pack_sequences(read_documents(write_corpus(tmp_path / "t.txt", 8)), tok, 32)
    vocab = MaskingVocab.from_tokenizer(tok)

    def first_epochs(seed):
        ds = masked_dataset(packed, vocab, batch_size=len(packed), seed=seed, shuffle=False)
        return [inputs["masked_lm_positions"].numpy() for inputs, _ in ds.take(3)]

    a, b = first_epochs(5), first_epochs(5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], first_epochs(6)[0])


def test_head_warmup_and_snapshots(tmp_path, tiny_model_dir, capsys):
    text = write_corpus(tmp_path / "corpus.txt", documents=60)
    out = tmp_path / "run"
    args = ["pretrain", "--text", str(text), "--from", str(tiny_model_dir), "--steps", "4",
            "--steps-per-checkpoint", "2", "--batch-size", "4", "--max-length", "32",
            "--validation-fraction", "0.2", "--head-warmup-steps", "3", "--snapshots",
            "--output-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Training the heads alone for 3 steps" in printed
    assert "Held-out MLM after the head warm-up" in printed
    # Resumed with more steps: the checkpoint holds the warmed heads, no second warm-up.
    assert main([*args[:6], "6", *args[7:]]) == 0
    printed = capsys.readouterr().out
    assert "Resuming from" in printed and "Training the heads alone" not in printed
    assert (out / "snapshots" / "step-000006").is_dir()
    before = json.loads((out / "validation_before.json").read_text())
    warmed = json.loads((out / "validation_after_head_warmup.json").read_text())
    assert warmed["mlm_loss"] != before["mlm_loss"]
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["step-000002", "step-000004", "step-000006"]  # nothing partial
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (out / "snapshots" / "step-000002" / name).is_file()
    data = write_csv(tmp_path / "train.csv")
    assert main(["train", "--train", str(data), "--from", str(out / "snapshots" / "step-000002"),
                 "--epochs", "1", "--batch-size", "8", "--max-length", "16",
                 "--output-dir", str(tmp_path / "clf")]) == 0
