"""keras_bert_ft.infra: atomic writes of files and folders, the cache folder, the offline
switch and downloads; and the old keras_bert_ft.atomic path."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import sys
import threading

import pytest

from keras_bert_ft import infra
from keras_bert_ft.errors import DownloadError


class Boom(Exception):
    pass


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- atomic writes
def test_atomic_write_text_bytes_and_writer(tmp_path):
    assert infra.atomic_write(tmp_path / "a" / "t.txt", "héllo").read_text("utf-8") == "héllo"
    assert infra.atomic_write(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    infra.atomic_write(tmp_path / "c.txt", lambda tmp: tmp.write_text("from a writer"))
    assert (tmp_path / "c.txt").read_text() == "from a writer"
    assert listing(tmp_path) == ["a", "b.bin", "c.txt"]  # no temporary files left


@pytest.mark.parametrize("existed", [False, True])
def test_atomic_write_leaves_no_partial_file_when_the_writer_raises(tmp_path, existed):
    target = tmp_path / "model.safetensors"
    if existed:
        target.write_text("old")

    def writer(tmp):
        tmp.write_text("half of it")
        raise Boom

    with pytest.raises(Boom):
        infra.atomic_write(target, writer)
    assert listing(tmp_path) == (["model.safetensors"] if existed else [])
    if existed:
        assert target.read_text() == "old"


@pytest.mark.parametrize("existed", [False, True])
def test_atomic_folder_leaves_nothing_partial_when_the_writer_raises(tmp_path, existed):
    target = tmp_path / "saved_model"
    if existed:
        target.mkdir()
        (target / "old.txt").write_text("old")
    with pytest.raises(Boom):
        with infra.atomic_path(target, directory=True) as tmp:
            assert tmp.is_dir() and tmp.parent == tmp_path and listing(tmp) == []
            (tmp / "half.pb").write_text("half")
            raise Boom
    assert listing(tmp_path) == (["saved_model"] if existed else [])
    if existed:
        assert listing(target) == ["old.txt"]


def test_atomic_folder_replaces_an_existing_folder_whole(tmp_path):
    target = tmp_path / "preset"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with infra.atomic_path(target, directory=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert listing(target) == ["config.json"]
    assert listing(tmp_path) == ["preset"]  # the old folder and the temporary one are gone


def test_manifest_tells_a_damaged_folder(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"12345")
    infra.write_manifest(tmp_path)
    assert infra.check_manifest(tmp_path) is None
    assert infra.sha256_file(tmp_path / "w.bin") == hashlib.sha256(b"12345").hexdigest()
    (tmp_path / "w.bin").write_bytes(b"1234")
    assert infra.check_manifest(tmp_path) == "w.bin has 4 bytes, the manifest says 5"


# --------------------------------------------------------------------------- cache
def test_cache_dir_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("KBF_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert infra.cache_dir("hf") == tmp_path / "home" / ".cache" / "keras_bert_ft" / "hf"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert infra.cache_dir("datasets") == tmp_path / "xdg" / "keras_bert_ft" / "datasets"
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "kbf"))
    assert infra.cache_dir("vocab") == tmp_path / "kbf" / "vocab"  # wins over XDG
    with pytest.raises(ValueError, match="not a plain lowercase folder name"):
        infra.cache_dir("../elsewhere")


def test_registry_and_ops_use_the_one_layout(tmp_path, monkeypatch):
    from keras_bert_ft.data.registry import default_cache_dir
    from keras_bert_ft.tokenizers.op import vocab_cache_dir

    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "datasets"
    assert vocab_cache_dir() == tmp_path / "vocab"


# --------------------------------------------------------------------------- offline
@pytest.mark.parametrize("variable", ["KBF_OFFLINE", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("TRUE", True), ("Yes", True), (" yes ", True),
     ("0", False), ("", False), ("false", False), ("no", False), ("2", False)],
)  # fmt: skip
def test_offline_truth_table(monkeypatch, variable, value, expected):
    for name in infra.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert infra.offline() is False
    monkeypatch.setenv(variable, value)
    assert infra.offline() is expected
    assert infra.offline_variable() == (variable if expected else None)


# --------------------------------------------------------------------------- download
@pytest.fixture
def no_offline(monkeypatch):
    for name in infra.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_download_file_url_with_and_without_sha256(tmp_path, no_offline):
    source = tmp_path / "src" / "data.txt"
    source.parent.mkdir()
    source.write_bytes(b"payload")
    out = tmp_path / "out"
    assert infra.download(source.as_uri(), out / "a.txt").read_bytes() == b"payload"
    good = hashlib.sha256(b"payload").hexdigest()
    assert infra.download(source.as_uri(), out / "b.txt", sha256=good.upper()).exists()
    with pytest.raises(DownloadError, match="checksum mismatch.*expected 0000"):
        infra.download(source.as_uri(), out / "c.txt", sha256="0" * 64)
    assert listing(out) == ["a.txt", "b.txt"]  # nothing of c.txt, no temporary file
    with pytest.raises(DownloadError, match="could not download"):
        infra.download((tmp_path / "missing.txt").as_uri(), out / "d.txt")
    assert listing(out) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("variable", ["KBF_OFFLINE", "HF_HUB_OFFLINE"])
def test_download_refuses_the_network_when_offline(tmp_path, monkeypatch, no_offline, variable):
    monkeypatch.setenv(variable, "true")
    with pytest.raises(DownloadError, match=f"not downloading http://127.0.0.1:9/x: {variable}"):
        infra.download("http://127.0.0.1:9/x", tmp_path / "out" / "x")
    assert not (tmp_path / "out").exists()
    # A file:// URL is not the network: a mirror on a shared disk still works.
    (tmp_path / "mirror.txt").write_text("local")
    assert infra.download((tmp_path / "mirror.txt").as_uri(), tmp_path / "m").read_text() == "local"


def test_download_http_404_is_an_error_unless_missing_ok(tmp_path, no_offline):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "here.txt").write_text("here")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "www"))  # fmt: skip
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "out"
    try:
        assert infra.download(f"{base}/here.txt", out / "here.txt").read_text() == "here"
        assert infra.download(f"{base}/gone.txt", out / "gone.txt", missing_ok=True) is None
        with pytest.raises(DownloadError, match="HTTP 404"):
            infra.download(f"{base}/gone.txt", out / "gone.txt")
    finally:
        server.shutdown()
        server.server_close()
    assert listing(out) == ["here.txt"]


# --------------------------------------------------------------------------- old paths
def test_old_atomic_module_is_a_deprecated_alias(monkeypatch):
    monkeypatch.delitem(sys.modules, "keras_bert_ft.atomic", raising=False)
    with pytest.warns(DeprecationWarning, match="keras_bert_ft.atomic is deprecated"):
        old = importlib.import_module("keras_bert_ft.atomic")
    assert old is infra
    assert old.atomic_write is infra.atomic_write


def test_data_download_still_offers_download_and_offline():
    from keras_bert_ft.data import download as data_download

    assert data_download.download is infra.download
    assert data_download.offline is infra.offline
    assert callable(data_download.extract)
