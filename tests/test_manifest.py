"""The manifest: fields validated one clear error each, paths confined to the artifact, HMAC signature."""

import json
import os

import numpy as np
import pytest

from recsys import layout
from recsys.artifacts import Artifact, ArtifactWriter, file_sha256
from recsys.errors import ArtifactError
from recsys.manifest import KEY_ENV

KEY = "a-signing-key-of-some-length"


def build(path):
    with ArtifactWriter(path, config={"value": 1}, seed=0) as w:
        w.save_array("vectors.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
        w.save_json("meta.json", {"title": "a good product"})
    return path


def edit_manifest(path, change):
    m = json.loads((path / layout.MANIFEST).read_text())
    m = change(m)
    (path / layout.MANIFEST).write_text(json.dumps(m))


def rehash(path, name):
    """What someone without the key does after editing a file: record its new checksum."""
    def change(m):
        m["files"][name] = {"sha256": file_sha256(path / name), "bytes": (path / name).stat().st_size}
        return m
    edit_manifest(path, change)


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "the manifest is a JSON list, not an object"),
    (lambda m: {**m, "created_at": "yesterday"}, "manifest field 'created_at' 'yesterday' is not a time like"),
    (lambda m: {k: v for k, v in m.items() if k != "config"}, "manifest field 'config' is missing or not a dict"),
    (lambda m: {**m, "files": []}, "manifest field 'files' is missing or not a dict"),
    (lambda m: {**m, "files": {"meta.json": {"bytes": 10}}}, "manifest file 'meta.json': no sha256 (64 hex digits)"),
    (lambda m: {**m, "files": {"meta.json": {"sha256": "0" * 64}}}, "manifest file 'meta.json': no size recorded"),
    (lambda m: {**m, "files": {"../../../../etc/hostname": {"sha256": "0" * 64, "bytes": 1}}},
     "manifest file '../../../../etc/hostname': not a path inside the artifact folder"),
    (lambda m: {**m, "files": {"/etc/hostname": {"sha256": "0" * 64, "bytes": 1}}},
     "manifest file '/etc/hostname': not a path inside the artifact folder"),
])
def test_each_bad_manifest_field_gets_one_clear_error(tmp_path, change, message):
    art = build(tmp_path / "a")
    edit_manifest(art, change)
    with pytest.raises(ArtifactError) as e:
        Artifact.open(art)
    assert message in str(e.value) and str(e.value).endswith("rebuild the artifact")


def test_a_link_out_of_the_folder_is_not_read(tmp_path):
    art = build(tmp_path / "a")
    outside = tmp_path / "secret.txt"
    outside.write_text("not the artifact's")
    os.symlink(outside, art / "leak.txt")
    rehash(art, "leak.txt")
    with pytest.raises(ArtifactError, match="file leak.txt lies outside the artifact folder"):
        Artifact.open(art)


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    art = build(tmp_path / "a")
    np.save(art / "vectors.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    rehash(art, "vectors.npy")
    a = Artifact.open(art)  # the checksum matches: the file is as recorded
    with pytest.raises(ArtifactError, match=r"vectors.npy is not a plain array file .*; rebuild the artifact"):
        a.load_array("vectors.npy")


def test_a_signed_artifact_edited_and_rehashed_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    art = build(tmp_path / "a")
    sig = Artifact.open(art).manifest["signature"]
    assert len(sig["hmac-sha256"]) == 64
    (art / "meta.json").write_text(json.dumps({"title": "http://phishing.example"}))
    rehash(art, "meta.json")
    with pytest.raises(ArtifactError, match="the manifest's signature does not match"):
        Artifact.open(art)


def test_signature_needs_the_same_key(tmp_path, monkeypatch):
    art = build(tmp_path / "unsigned")
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(ArtifactError, match=f"the artifact is not signed, and \\${KEY_ENV} asks for signed"):
        Artifact.open(art)
    signed = build(tmp_path / "signed")
    assert Artifact.open(signed).load_json("meta.json") == {"title": "a good product"}
    monkeypatch.setenv(KEY_ENV, "another-key-of-some-length")
    with pytest.raises(ArtifactError, match="signed with another key"):
        Artifact.open(signed)
    monkeypatch.delenv(KEY_ENV)
    assert Artifact.open(signed).load_json("meta.json") == {"title": "a good product"}  # no key: checksums only


def test_a_short_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ArtifactError, match=f"\\${KEY_ENV}: give a secret of at least 16 characters"):
        build(tmp_path / "a")
    assert not (tmp_path / "a").exists()
