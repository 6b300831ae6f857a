"""The embedded store: durability across SIGKILL, several processes on one file, and its files."""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from imgclf.errors import UserError
from imgclf.serve.store import open_store
from imgclf.serve.store.sqlite import DB_NAME, IMAGES_DIR

# A child process that writes feedback as fast as it can and prints each id once the store has
# acknowledged it (the call returned). Image bytes are derived from the counter, so the parent can
# check every byte of every image afterwards.
FLOOD = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    from imgclf.serve.store import open_store

    def image(tag, i):
        return hashlib.sha256(f"{tag}-{i}".encode()).digest() * 64 + f"{tag}-{i}".encode()

    store_dir, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    store = open_store(store_dir)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    i = 0
    while count < 0 or i < count:
        if i % 3 == 0:  # an unsure prediction (queued, image kept), then feedback on it by id
            p = store.record_prediction(image(tag, i), model_version="m@1",
                                        topk=[{"label": "a", "probability": 0.4}], unsure=True)
            f = store.add_feedback("b", prediction_id=p.id, who=tag, note=str(i))
        else:  # feedback with an image of its own
            f = store.add_feedback("c", image=image(tag, i), who=tag, note=str(i))
        print(f"ack {i} {f.id}", flush=True)
        i += 1
    """
)


def expected_image(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}-{i}".encode()).digest() * 64 + f"{tag}-{i}".encode()


def start_flood(store_dir: Path, tag: str, count: int, go: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOD, str(store_dir), tag, str(count), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def acknowledged(lines: list[str]) -> dict[int, str]:
    """counter -> feedback id, for every complete "ack" line (a line cut by the kill is not an ack)."""
    acks = {}
    for line in lines:
        if line.endswith("\n") and line.startswith("ack "):
            _, i, fid = line.split()
            acks[int(i)] = fid
    return acks


def assert_intact(store, tag: str, acks: dict[int, str]) -> None:
    for i, fid in acks.items():
        record = store.get_feedback(fid)
        assert record is not None, f"acknowledged feedback {i} ({fid}) was lost"
        assert record.who == tag and record.note == str(i)
        assert store.image(record.image_sha256) == expected_image(tag, i)
        if i % 3 == 0:
            prediction = store.get_prediction(record.prediction_id)
            assert prediction is not None and prediction.image_sha256 == record.image_sha256


def test_every_acknowledged_record_and_image_survives_sigkill(tmp_path):
    store_dir, go = tmp_path / "store", tmp_path / "go"
    go.touch()
    proc = start_flood(store_dir, "k", -1, go)
    lines = []
    while len(acknowledged(lines)) < 60:  # well into the flood, then kill it mid-write
        line = proc.stdout.readline()
        assert line, f"the flooding process died: {proc.stderr.read()}"
        lines.append(line)
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=60)
    lines += rest.splitlines(keepends=True)  # acknowledged before the kill, still in the pipe
    assert proc.returncode == -signal.SIGKILL
    acks = acknowledged(lines)
    with open_store(store_dir) as store:
        assert_intact(store, "k", acks)
        with store._read() as cur:
            assert cur.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # At most the one write in flight when it was killed is beyond the acknowledged ones.
        assert len(acks) <= store.counts().feedback_total <= len(acks) + 1


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    store_dir, go = tmp_path / "store", tmp_path / "go"
    open_store(store_dir).close()  # created once; both writers then open the existing store
    procs = {tag: start_flood(store_dir, tag, 90, go) for tag in ("p1", "p2")}
    go.touch()  # both are connected and waiting: release them together
    acks = {}
    for tag, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        acks[tag] = acknowledged(out.splitlines(keepends=True))
        assert len(acks[tag]) == 90
    with open_store(store_dir) as store:
        for tag in procs:
            assert_intact(store, tag, acks[tag])
        counts = store.counts()
        assert counts.feedback_total == 180 and counts.predictions == 60 and counts.review_queue == 60


def test_connections_use_wal_and_full_sync(tmp_path):
    with open_store(tmp_path / "store") as store, store._read() as cur:
        assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert cur.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_images_are_files_named_by_their_digest_only(tmp_path):
    root = tmp_path / "store"
    with open_store(root) as store:
        data = b"not decided by the client"
        f = store.add_feedback("../../escape", image=data, who="../evil", note="/etc/passwd")
    sha = hashlib.sha256(data).hexdigest()
    assert f.image_sha256 == sha
    files = [p for p in (root / IMAGES_DIR).rglob("*") if p.is_file()]
    assert files == [root / IMAGES_DIR / sha[:2] / sha[2:4] / sha] and files[0].read_bytes() == data
    assert {p.name for p in root.iterdir()} - {f"{DB_NAME}-shm", f"{DB_NAME}-wal"} == {DB_NAME, IMAGES_DIR}
    assert not (tmp_path / "escape").exists()


def test_a_damaged_image_file_is_reported_not_served(tmp_path):
    with open_store(tmp_path / "store") as store:
        f = store.add_feedback("a", image=b"original bytes")
        path = store.images.path(f.image_sha256)
        path.write_bytes(b"tampered")
        with pytest.raises(UserError, match="damaged"):
            store.image(f.image_sha256)


def test_a_folder_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: x\n")
    with pytest.raises(UserError, match="not a feedback store"):
        open_store(tmp_path / "run")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        open_store(tmp_path / "file")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_threads_that_end_take_their_connections_with_them(tmp_path):
    with open_store(tmp_path / "store") as store:
        for i in range(20):  # a thread per request, as some servers run
            t = threading.Thread(target=store.add_feedback, args=("a",), kwargs={"image": b"%d" % i})
            t.start()
            t.join()
        gc.collect()
        assert store.open_connections() <= 2  # this thread's, and at most one not yet collected
        assert store.counts().feedback_total == 20


def test_a_closed_store_refuses_new_work(tmp_path):
    store = open_store(tmp_path / "store")
    store.add_feedback("a", image=b"x")
    store.close()
    with pytest.raises(UserError, match="closed"):
        store.counts()
    with open_store(tmp_path / "store") as again:
        assert again.counts().feedback_total == 1
