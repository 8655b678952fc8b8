"""Artifact folders: manifest, checksums, schema version, atomic replacement, no pickle."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from recsys import layout
from recsys.artifacts import SCHEMA_VERSION, Artifact, ArtifactWriter, frame_fingerprint, machine_info
from recsys.errors import ArtifactError
from recsys.prepare import load_prepared_tables, prepare, save_prepared


def build(path, value, fail=False):
    with ArtifactWriter(path, config={"value": value}, seed=3) as w:
        w.save_array("vectors.npy", np.full((4, 2), value, dtype=np.float32))
        w.save_json("meta.json", {"value": value})
        if fail:
            raise RuntimeError("boom halfway")


def test_manifest_lists_every_file_with_checksums(tmp_path):
    build(tmp_path / "a", 1.0)
    art = Artifact.open(tmp_path / "a")
    m = art.manifest
    assert m["schema_version"] == SCHEMA_VERSION and m["seed"] == 3 and m["config"] == {"value": 1.0}
    assert set(m["files"]) == {"vectors.npy", "meta.json"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in m["files"].values())
    assert {"python", "numpy", "polars", "recsys"} <= set(m["packages"])
    assert m["machine"]["cpus"] == os.cpu_count() and m["machine"]["cpu"]
    assert art.load_array("vectors.npy").tolist() == [[1.0, 1.0]] * 4


def test_machine_info_reads_the_cpu_model_and_vector_instructions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu sse2 avx2 avx512f\n\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu sse2 avx2 avx512f\n")
    m = machine_info(info)
    assert (m["cpu"], m["simd"], m["cpus"]) == ("Intel(R) Xeon(R) Gold 6338", "avx512", os.cpu_count())
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm\n")  # an ARM machine names no model here
    assert machine_info(info)["simd"] == "neon"
    assert machine_info(tmp_path / "absent")["simd"] is None


def test_failed_build_leaves_previous_intact(tmp_path):
    build(tmp_path / "a", 1.0)
    with pytest.raises(RuntimeError, match="boom halfway"):
        build(tmp_path / "a", 2.0, fail=True)
    assert Artifact.open(tmp_path / "a").load_json("meta.json") == {"value": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary folder left behind
    build(tmp_path / "a", 3.0)
    assert Artifact.open(tmp_path / "a").load_json("meta.json") == {"value": 3.0}


def test_killed_build_leaves_previous_intact(tmp_path):
    build(tmp_path / "a", 1.0)
    marker = tmp_path / "halfway"
    script = textwrap.dedent(f"""
        import time, numpy as np
        from recsys.artifacts import ArtifactWriter
        w = ArtifactWriter({str(tmp_path / 'a')!r})
        w.save_array("vectors.npy", np.zeros(3))
        open({str(marker)!r}, "w").close()
        time.sleep(60)
        w.commit()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Artifact.open(tmp_path / "a").load_json("meta.json") == {"value": 1.0}
    assert any(p.name.startswith(".a.tmp-") for p in tmp_path.iterdir())
    build(tmp_path / "a", 2.0)  # the next build removes the dead build's leftovers
    assert not any(p.name.startswith(".a.") for p in tmp_path.iterdir())


def test_interrupted_swap_is_recovered(tmp_path):
    build(tmp_path / "a", 1.0)
    os.replace(tmp_path / "a", tmp_path / ".a.old-1-deadbeef")  # as if killed between the two renames
    assert Artifact.open(tmp_path / "a").load_json("meta.json") == {"value": 1.0}


def test_corrupt_file_is_detected(tmp_path):
    build(tmp_path / "a", 1.0)
    with open(tmp_path / "a" / "vectors.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(ArtifactError, match=r"checksum mismatch for vectors.npy \(the file was changed or is corrupt\); rebuild the artifact"):
        Artifact.open(tmp_path / "a")


def test_schema_version_mismatch(tmp_path):
    build(tmp_path / "a", 1.0)
    mpath = tmp_path / "a" / layout.MANIFEST
    m = json.loads(mpath.read_text())
    m["schema_version"] = 99
    mpath.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=rf"artifact schema version 99, this recsys .* reads version {SCHEMA_VERSION}; rebuild it"):
        Artifact.open(tmp_path / "a")


def test_missing_artifact_and_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="no artifact folder here; build one with `recsys build-index --out"):
        Artifact.open(tmp_path / "nothing")
    build(tmp_path / "a", 1.0)
    (tmp_path / "a" / "meta.json").unlink()
    with pytest.raises(ArtifactError, match="file meta.json listed in the manifest is missing"):
        Artifact.open(tmp_path / "a")


def test_object_arrays_refused(tmp_path):
    w = ArtifactWriter(tmp_path / "a")
    with pytest.raises(ArtifactError, match="object arrays would need pickle"):
        w.save_array("ids.npy", np.array(["a", None], dtype=object))
    w.abort()


def test_prepared_data_round_trip_and_determinism(tmp_path, synthetic):
    prepared = prepare(synthetic.dataset, holdout="loo")
    for name in ("one", "two"):
        with ArtifactWriter(tmp_path / name, config={"holdout": "loo"}, seed=0) as w:
            save_prepared(w, prepared)
    one, two = Artifact.open(tmp_path / "one"), Artifact.open(tmp_path / "two")
    assert one.manifest["files"] == two.manifest["files"]  # same inputs -> byte-identical files
    data = one.manifest["data"]
    assert data["fingerprint"] == frame_fingerprint(prepared.events)
    assert data["rows_kept"] == prepared.events.height and data["users"] == len(prepared.users)
    assert one.manifest["cleaning"]["rows_in"] == synthetic.dataset.events.height
    tables = load_prepared_tables(one)
    assert tables["items"].ids.tolist() == prepared.items.ids.tolist()
    assert tables["test"].equals(prepared.split.test)
    assert tables["weights"] == synthetic.dataset.weights  # same weights in the same order (the event codes)


def test_every_timing_benchmark_records_the_machine_the_same_way():
    # the CPU model and vector instructions, where the figures came from (floating-point kernels differ)
    import re
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    timed = ["build_stages", "candidates", "contention", "devices", "ingest", "inspector_pages", "locust_load",
             "reorder_features", "rerank_speed", "run", "scale", "serve_load", "two_tower"]
    for name in timed:
        text = (bench / f"{name}.py").read_text()
        assert re.search(r'"machine": (\{\*\*)?machine_info\(\)', text), name
        assert "platform.machine()" not in text and "platform.processor()" not in text, name
