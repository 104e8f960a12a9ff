"""The lease book: gangs, the order rule, expiry, dead holders, admin actions, fencing,
crash repair, both lock kinds, strict inventory validation and the CLI (real files,
real processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO
from conftest import run_cli as run_cli_process
from merlin.durations import parse_duration
from merlin.errors import BadInput, NotFound, SpecError
from merlin.leases.book import LeaseBook, LeaseLost, NotGranted, parse_bundle
from merlin.leases.locks import MkdirLock, choose_lock_kind, filesystem_type

INVENTORY = """\
schema_version: 1
items:
  - id: fpga-01
    pool: firesim_fpga
    labels: {board: u250}
    host: fpga-host-01
  - id: fpga-02
    pool: firesim_fpga
    labels: {board: vcu118}
  - id: board-01
    pool: board
"""


def _items() -> list[dict]:
    return [
        {"id": "fpga-01", "pool": "firesim_fpga", "labels": {"board": "u250"}, "host": "fpga-host-01"},
        {"id": "fpga-02", "pool": "firesim_fpga", "labels": {"board": "vcu118"}},
        {"id": "board-01", "pool": "board"},
    ]


@pytest.fixture
def book(tmp_path: Path) -> LeaseBook:
    b = LeaseBook(tmp_path / "state")
    b.define(_items())
    return b


def _fake_clock(book: LeaseBook, start: float = 1_000_000.0) -> list[float]:
    now = [start]
    book.clock = lambda: now[0]
    return now


# ------------------------------------------------------------------ grants


def test_gang_waits_holding_nothing_until_every_bundle_is_free(book: LeaseBook) -> None:
    fpga = book.reserve(["firesim_fpga:1,board=u250"])
    board = book.reserve(["board:1"])
    gang = book.reserve(["firesim_fpga:1,board=u250", "board:1"])
    assert gang["state"] == "waiting" and gang["items"] == []
    book.release(fpga["lease_id"])
    assert book.show(gang["lease_id"])["state"] == "waiting", "half a gang is never granted"
    assert book.show(gang["lease_id"])["items"] == []
    book.release(board["lease_id"])
    granted = book.show(gang["lease_id"])
    assert granted["state"] == "granted" and sorted(granted["items"]) == ["board-01", "fpga-01"]


def test_order_is_priority_then_age_and_backfill_never_delays_an_earlier_waiter(book: LeaseBook) -> None:
    holder = book.reserve(["firesim_fpga:2"])
    old = book.reserve(["firesim_fpga:1"])
    urgent = book.reserve(["firesim_fpga:1"], priority=5)
    assert [x["lease_id"] for x in book.queue()] == [urgent["lease_id"], old["lease_id"]]
    # the board is usable by no earlier waiter: a later request may take it at once
    backfill = book.reserve(["board:1"])
    assert backfill["state"] == "granted"
    # an item an earlier waiter can use is never taken by a later one of the same priority
    book.release(backfill["lease_id"])
    gang = book.reserve(["firesim_fpga:1", "board:1"])
    later_board = book.reserve(["board:1"])
    assert gang["state"] == "waiting" and later_board["state"] == "waiting"
    why = {c["code"] for c in book.why(later_board["lease_id"])}
    assert "lease_queued" in why
    book.release(holder["lease_id"])  # two fpgas free: urgent, then old (urgent came later but has priority)
    assert book.show(urgent["lease_id"])["state"] == "granted"
    assert book.show(old["lease_id"])["state"] == "granted"
    assert book.show(gang["lease_id"])["state"] == "waiting"


def test_impossible_request_is_refused_not_queued(book: LeaseBook) -> None:
    with pytest.raises(BadInput, match="matching item"):
        book.reserve(["firesim_fpga:3"])
    with pytest.raises(BadInput, match="matching item"):
        book.reserve(["firesim_fpga:1,board=zcu102"])
    assert book.queue() == []


def test_fencing_token_grows_with_every_grant_of_an_item(book: LeaseBook) -> None:
    tokens = []
    for _ in range(3):
        lease = book.reserve(["board:1"])
        tokens.append(lease["tokens"]["board-01"])
        book.release(lease["lease_id"])
    assert tokens == [1, 2, 3]


# ------------------------------------------------------------ expiry, crashes


def test_expiry_needs_ttl_plus_skew_and_grants_the_next_waiter_at_once(book: LeaseBook) -> None:
    now = _fake_clock(book)
    book.skew = 5.0
    first = book.reserve(["board:1"], ttl=60)
    second = book.reserve(["board:1"])
    now[0] += 64  # past the TTL, inside the skew margin: still held
    book.refresh()
    assert book.show(first["lease_id"])["state"] == "granted"
    now[0] += 2
    book.refresh()
    ended = book.show(first["lease_id"])
    assert ended["state"] == "expired" and "TTL" in ended["reason"]
    assert book.show(second["lease_id"])["state"] == "granted"
    with pytest.raises(LeaseLost, match="expired"):
        book.renew(first["lease_id"])


def test_renew_pushes_expiry(book: LeaseBook) -> None:
    now = _fake_clock(book)
    lease = book.reserve(["board:1"], ttl=60)
    now[0] += 50
    renewed = book.renew(lease["lease_id"])
    assert renewed["expires_at"] > lease["expires_at"]
    now[0] += 50
    book.refresh()
    assert book.show(lease["lease_id"])["state"] == "granted"


HOLDER = """
import os, sys
from merlin.leases.book import LeaseBook
lease = LeaseBook(sys.argv[1]).reserve(["board:1"], pid=os.getpid(), ttl=3600)
print(lease["lease_id"], flush=True)
sys.stdin.read()
"""


def test_lease_of_a_dead_holder_is_released_at_the_next_pass(book: LeaseBook) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(book.layout.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lid = proc.stdout.readline().strip()
    assert book.show(lid)["state"] == "granted"
    waiter = book.reserve(["board:1"])
    assert waiter["state"] == "waiting"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    book.refresh()
    dead = book.show(lid)
    assert dead["state"] == "released" and str(proc.pid) in dead["reason"]
    assert book.show(waiter["lease_id"])["state"] == "granted", "the release granted the next waiter at once"


# ------------------------------------------------------------- admin actions


def _reserve_as(uid: int, root: Path, pool: str, warm: Path) -> str:
    """A lease reserved by a real process running as ``uid``: another user, from the OS. The child
    starts as root (the interpreter lives under root's 0700 home), does every import on a throwaway
    book at ``warm``, then drops to ``uid`` for good before it touches ``root``'s book."""
    code = (
        "import os, sys; from merlin.leases.book import LeaseBook; "
        "w = LeaseBook(sys.argv[3]); w.define([{'id': 'b1', 'pool': sys.argv[2].split(':')[0]}]); "
        "w.release(w.reserve([sys.argv[2]])['lease_id']); "
        "os.setgid(int(sys.argv[4])); os.setuid(int(sys.argv[4])); "
        "print(LeaseBook(sys.argv[1]).reserve([sys.argv[2]])['lease_id'])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root), pool, str(warm), str(uid)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "LOGNAME": "root", "USER": "root"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second real user needs root (CI runs as root)")
def test_someone_elses_lease_needs_force_and_reason_and_records_who(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whose lease it is comes from the real uid, never $LOGNAME/$USER (issue 20 #10): a lease of
    uid 65534 (nobody) is not root's, whatever root's environment says."""
    import pwd
    import shutil
    import tempfile

    nobody = 65534
    shared = Path(tempfile.mkdtemp(prefix="merlin-uid-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        root = shared / "state"
        monkeypatch.setenv("MERLIN_STATE_UMASK", "000")  # a state root the whole group (here: everyone) shares
        book = LeaseBook(root)
        book.define(_items())
        for p in [root, *root.rglob("*")]:  # what define made, open to the other user as the shared umask would
            p.chmod(0o777 if p.is_dir() else 0o666)
        theirs = _reserve_as(nobody, root, "board:1", shared / "warm")
        name = pwd.getpwuid(nobody).pw_name
        assert book.show(theirs)["owner"]["uid"] == nobody and book.show(theirs)["owner"]["user"] == name
        monkeypatch.setenv("LOGNAME", name)  # saying so does not make it ours
        monkeypatch.setenv("USER", name)
        with pytest.raises(BadInput, match=f"belongs to {name}"):
            book.release(theirs)
        with pytest.raises(BadInput, match="`force` needs a `reason`") as err:
            book.release(theirs, force=True)
        assert (err.value.argument, err.value.related) == ("reason", ["force"])
        done = book.release(theirs, force=True, reason="board needed for the demo")
        assert done["state"] == "released"
        last = done["changes"][-1]
        assert "force-released by root@" in last["reason"] and "board needed for the demo" in last["reason"]
        mine = book.reserve(["board:1"])  # and root's own lease is released without force
        assert mine["owner"]["uid"] == 0 and book.release(mine["lease_id"])["state"] == "released"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_revoke_is_learned_at_the_next_renewal(book: LeaseBook) -> None:
    lease = book.reserve(["board:1"])
    book.revoke(lease["lease_id"], "hardware swap")
    with pytest.raises(LeaseLost, match="revoked.*hardware swap"):
        book.renew(lease["lease_id"])
    events = [e["event"] for e in book.events(lease["lease_id"])]
    assert events == ["reserved", "granted", "revoked"]


def test_cancel_withdraws_a_waiting_request_only(book: LeaseBook) -> None:
    held = book.reserve(["board:1"])
    waiting = book.reserve(["board:1"])
    with pytest.raises(BadInput, match="release"):
        book.cancel(held["lease_id"])
    assert book.cancel(waiting["lease_id"])["state"] == "cancelled"
    with pytest.raises(NotFound):
        book.show("lease-nope-000")


def test_drained_or_unhealthy_items_are_not_granted_and_why_says_so(book: LeaseBook) -> None:
    holder = book.reserve(["board:1"])
    book.drain("board-01", "rewiring")
    assert book.show(holder["lease_id"])["state"] == "granted", "current holders finish"
    book.release(holder["lease_id"])
    waiting = book.reserve(["board:1"])
    assert waiting["state"] == "waiting"
    assert [c["code"] for c in book.why(waiting["lease_id"])] == ["lease_item_drained"]
    book.drain("board-01", "", undo=True)
    assert book.show(waiting["lease_id"])["state"] == "granted"
    book.release(waiting["lease_id"])
    book.set_health("fpga-01", "bad", "DMA errors")
    u250 = book.reserve(["firesim_fpga:1,board=u250"])
    why = book.why(u250["lease_id"])
    assert why[0]["code"] == "lease_item_not_good" and why[0]["evidence"]["reason"] == "DMA errors"
    item = next(i for i in book.items() if i["id"] == "fpga-01")
    assert item["health"] == "bad" and item["health_reason"] == "DMA errors" and item["health_by"]


def test_define_keeps_runtime_health_and_refuses_to_drop_held_items(book: LeaseBook) -> None:
    book.set_health("fpga-02", "maintenance", "firmware update")
    held = book.reserve(["board:1"])
    with pytest.raises(BadInput, match="board-01"):
        book.define(_items()[:2])
    inv = book.define(_items())
    assert next(i for i in inv["items"] if i["id"] == "fpga-02")["health"] == "maintenance"
    assert book.show(held["lease_id"])["state"] == "granted"


def test_wait_returns_when_granted_and_times_out_as_not_granted(book: LeaseBook) -> None:
    held = book.reserve(["board:1"])
    with pytest.raises(NotGranted) as gave_up:
        book.reserve(["board:1"], wait=True, timeout=0.3)
    assert gave_up.value.lease["state"] == "waiting", "the request stays queued"
    book.cancel(gave_up.value.lease["lease_id"])
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; time.sleep(0.5); from merlin.leases.book import LeaseBook; LeaseBook(sys.argv[1]).release(sys.argv[2])",
         str(book.layout.root), held["lease_id"]]  # fmt: skip
    )
    t0 = time.monotonic()
    got = book.reserve(["board:1"], wait=True, timeout=30)
    assert got["state"] == "granted" and time.monotonic() - t0 < 10
    proc.wait()


# ------------------------------------------------------------ files, repair


def test_records_validate_against_the_published_schemas(book: LeaseBook) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    docs = REPO / "docs" / "records"
    lease = book.reserve(["firesim_fpga:1", "board:1"], run_id="demo-run-1")
    book.renew(lease["lease_id"])
    book.release(lease["lease_id"])
    jsonschema.validate(json.loads(book.layout.lease(lease["lease_id"]).read_text()), json.loads((docs / "lease.schema.json").read_text()))
    for event in book.events(lease["lease_id"]):
        jsonschema.validate(event, json.loads((docs / "lease_event.schema.json").read_text()))
    jsonschema.validate(json.loads(book.layout.inventory.read_text()), json.loads((docs / "inventory.schema.json").read_text()))
    from merlin.leases.models import RECORD_MODELS

    rec = RECORD_MODELS["lease"].model_validate_json(book.layout.lease(lease["lease_id"]).read_text())
    assert rec.owner.run_id == "demo-run-1" and rec.state.value == "released"


def test_a_pass_killed_after_its_commit_is_finished_by_the_next(book: LeaseBook, monkeypatch: pytest.MonkeyPatch) -> None:
    first = book.reserve(["board:1"])
    real_flush = LeaseBook._flush

    def die(self, outbox, repair):  # the commit is on disk; the records are not written yet
        if not repair:
            raise KeyboardInterrupt("killed")
        return real_flush(self, outbox, repair)

    monkeypatch.setattr(LeaseBook, "_flush", die)
    with pytest.raises(KeyboardInterrupt):
        book.release(first["lease_id"])
    assert json.loads(book.layout.lease(first["lease_id"]).read_text())["state"] == "granted", "record behind the book"
    monkeypatch.setattr(LeaseBook, "_flush", real_flush)
    book.refresh()
    assert json.loads(book.layout.lease(first["lease_id"]).read_text())["state"] == "released"
    assert [e["seq"] for e in book.events(first["lease_id"])] == [1, 2, 3], "no event lost or doubled"
    book.refresh()
    assert [e["seq"] for e in book.events(first["lease_id"])] == [1, 2, 3]


def test_a_torn_journal_line_is_skipped(book: LeaseBook) -> None:
    lease = book.reserve(["board:1"])
    with open(book.layout.book, "ab") as handle:
        handle.write(b'\n{"schema_version":1,"seq":99,"fen')  # SIGKILL in the middle of a write
    assert book.show(lease["lease_id"])["state"] == "granted"
    book.release(lease["lease_id"])
    assert book.show(lease["lease_id"])["state"] == "released"


# ------------------------------------------------------------------- locks


def test_shared_filesystems_get_the_mkdir_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = "/dev/vda / ext4 rw 0 0\nfiler:/lab /lab nfs4 rw 0 0\n/dev/sdb /gpfs/fs1 gpfs rw 0 0\n"
    assert filesystem_type(Path("/lab/merlin/state"), mounts) == "nfs4"
    assert choose_lock_kind(Path("/lab/merlin"), mounts=mounts) == "mkdir"
    assert choose_lock_kind(Path("/gpfs/fs1/x"), mounts=mounts) == "mkdir"
    assert choose_lock_kind(Path("/home/me"), mounts=mounts) == "flock"
    monkeypatch.setenv("MERLIN_LEASE_LOCK", "mkdir")
    assert choose_lock_kind(tmp_path) == "mkdir"
    monkeypatch.setenv("MERLIN_LEASE_LOCK", "sideways")
    with pytest.raises(BadInput):
        choose_lock_kind(tmp_path)


def test_mkdir_lock_takes_over_from_a_dead_owner_and_a_stale_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / ".book.lockdir"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.mkdir()
    (path / "owner").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "pid_start": 1.0}))
    lock = MkdirLock(path, stale_after=60)
    t0 = time.monotonic()
    lock.acquire(timeout=5)
    assert time.monotonic() - t0 < 2, "a dead owner on this host is taken over at once"
    lock.release()
    assert not path.exists()
    path.mkdir()  # an owner on another host: only its heartbeat tells
    (path / "owner").write_text(json.dumps({"host": "elsewhere", "pid": 1, "pid_start": 1.0}))
    live = MkdirLock(path, stale_after=0.5)
    with pytest.raises(Exception, match="busy"):
        MkdirLock(path, stale_after=60).acquire(timeout=0.2)
    os.utime(path / "owner")  # a heartbeat just now
    t0 = time.monotonic()
    live.acquire(timeout=5)
    assert 0.4 < time.monotonic() - t0 < 4, "taken over only once the heartbeat is older than stale_after"
    live.release()


def test_mkdir_lock_heartbeat_keeps_a_long_holder(tmp_path: Path) -> None:
    path = tmp_path / ".book.lockdir"
    holder = MkdirLock(path, stale_after=0.4, heartbeat=0.05)
    holder.acquire(timeout=1)
    try:
        with pytest.raises(Exception, match="busy"):
            MkdirLock(path, stale_after=0.4).acquire(timeout=1.0)
    finally:
        holder.release()


CONTEND = """
import os, sys
from merlin.leases.book import LeaseBook
book = LeaseBook(sys.argv[1])
for _ in range(int(sys.argv[2])):
    lease = book.reserve(["board:1"], pid=os.getpid(), wait=True, timeout=60)
    book.release(lease["lease_id"])
"""


@pytest.mark.slow  # several processes, seconds even on a quiet machine
@pytest.mark.parametrize("kind", ["flock", "mkdir"])
def test_both_lock_kinds_exclude_across_processes(tmp_path: Path, kind: str) -> None:
    book = LeaseBook(tmp_path / "state")
    book.define(_items())
    env = dict(os.environ, MERLIN_LEASE_LOCK=kind)
    procs = [subprocess.Popen([sys.executable, "-c", CONTEND, str(book.layout.root), "25"], env=env) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    grants = sorted(
        (e["book_seq"], e["tokens"]["board-01"], e["lease_id"]) for lease in book.all_leases() for e in book.events(lease["lease_id"]) if e["event"] == "granted"
    )
    assert [t for _, t, _ in grants] == list(range(1, 101)), "every grant of the item got the next fencing token"
    ends = {e["lease_id"]: e["book_seq"] for lease in book.all_leases() for e in book.events(lease["lease_id"]) if e["event"] == "released"}
    for (_, _, lid), (next_seq, _, _) in zip(grants, grants[1:], strict=False):
        assert ends[lid] <= next_seq, "the item was granted again before it was released"
    assert not list(book.dir.glob(".book.lockdir*")), "no lock directory left behind"


# -------------------------------------------------------------- inventory


def test_inventory_errors_are_one_located_line_each(tmp_path: Path) -> None:
    from merlin.leases.inventory import load_inventory_file

    bad = tmp_path / "lab.yaml"
    bad.write_text(
        "schema_version: 1\n"
        "items:\n"
        "  - id: fpga-01\n"
        "    pool: firesim_fpga\n"
        "    colour: red\n"
        "  - id: fpga-01\n"
        "    pool: firesim_fpga\n"
        "  - id: board 02\n"
        "    pool: board\n"
        "    health: shiny\n"
        "  - pool: board\n"
    )
    with pytest.raises(SpecError) as err:
        load_inventory_file(bad)
    lines = err.value.lines
    assert all(line.startswith(f"{bad}:") for line in lines), lines
    text = "\n".join(lines)
    assert f"{bad}:5: items[0].colour:" in text
    assert f"{bad}:6: items[1].id: 'fpga-01' is already the id of the item at line 3" in text
    assert f"{bad}:8: items[2].id:" in text
    assert f"{bad}:10: items[2].health:" in text
    assert any(":11: items[3]" in line and "id" in line for line in lines), lines
    good = tmp_path / "ok.yaml"
    good.write_text(INVENTORY)
    assert [i["id"] for i in load_inventory_file(good)] == ["fpga-01", "fpga-02", "board-01"]


def test_parsers() -> None:
    assert parse_bundle("firesim_fpga:2,board=u250") == {"pool": "firesim_fpga", "count": 2, "labels": {"board": "u250"}}
    assert parse_bundle("board", {"lab": "b1"}) == {"pool": "board", "count": 1, "labels": {"lab": "b1"}}
    assert parse_duration("15m") == 900 and parse_duration("2h") == 7200 and parse_duration(90) == 90
    for bad in ("x y", "fpga:0", "fpga:1,board"):
        with pytest.raises(BadInput):
            parse_bundle(bad)
    with pytest.raises(BadInput):
        parse_duration("forever")


# -------------------------------------------------------------------- CLI


def test_cli_define_reserve_queue_release_with_exit_codes(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    inv = tmp_path / "lab.yaml"
    inv.write_text(INVENTORY)
    assert run_cli("ray", "resources", "define", str(inv), "--state-root", root).returncode == 0
    first = run_cli("ray", "resources", "reserve", "board:1", "--json", "--state-root", root)
    assert first.returncode == 0, first.stderr
    granted = json.loads(first.stdout)
    assert granted["state"] == "granted" and granted["items"] == ["board-01"] and granted["lease_id"]
    second = run_cli("ray", "resources", "reserve", "board", "--json", "--state-root", root)
    assert second.returncode == 3, second.stderr
    waiting = json.loads(second.stdout)
    assert waiting["state"] == "waiting" and "waiting" in second.stderr
    queue = json.loads(run_cli("ray", "resources", "queue", "--json", "--state-root", root).stdout)
    assert [q["lease_id"] for q in queue] == [waiting["lease_id"]] and queue[0]["position"] == 1
    why = json.loads(run_cli("ray", "resources", "why", waiting["lease_id"], "--json", "--state-root", root).stdout)
    assert why[0]["code"] == "lease_item_held" and why[0]["evidence"]["holder_lease"] == granted["lease_id"]
    listed = json.loads(run_cli("ray", "resources", "list", "--json", "--state-root", root).stdout)
    board = next(i for i in listed["items"] if i["id"] == "board-01")
    assert board["holder"]["lease_id"] == granted["lease_id"] and board["waiting"] == [waiting["lease_id"]]
    assert run_cli("ray", "resources", "release", granted["lease_id"], "--state-root", root).returncode == 0
    shown = json.loads(run_cli("ray", "resources", "show", waiting["lease_id"], "--json", "--state-root", root).stdout)
    assert shown["state"] == "granted" and shown["tokens"] == {"board-01": 2}
    table = run_cli("ray", "resources", "list", "--state-root", root)
    assert "board-01" in table.stdout and waiting["lease_id"] in table.stdout
    assert run_cli("ray", "resources", "show", "lease-none-000", "--state-root", root).returncode == 4
    assert run_cli("ray", "resources", "reserve", "board:9", "--state-root", root).returncode == 2
    assert run_cli("ray", "resources", "health", "board-01", "shiny", "--reason", "x", "--state-root", root).returncode == 2
    revoked = run_cli("ray", "resources", "revoke", waiting["lease_id"], "--reason", "maintenance", "--state-root", root)
    assert revoked.returncode == 0
    renew = run_cli("ray", "resources", "renew", waiting["lease_id"], "--state-root", root)
    assert renew.returncode == 3 and "revoked" in renew.stderr


def test_cli_define_reports_every_inventory_error_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("schema_version: 1\nitems:\n  - id: a\n    pool: p\n    extra: 1\n  - id: b\n")
    res = run_cli("ray", "resources", "define", str(bad), "--state-root", str(tmp_path / "s"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{bad}:5: items[0].extra:") and lines[1].startswith(f"{bad}:6: items[1]")


# ------------------------------------------------------------ holding a lease while work runs


def test_keeper_renews_past_the_ttl_and_releases_at_the_end(book: LeaseBook) -> None:
    from merlin.leases.keeper import LeaseKeeper, lease_env

    book.skew = 0.0
    with LeaseKeeper(book, ["board:1"], ttl=0.6) as lease:
        env = lease_env(lease)
        assert env["MERLIN_LEASE_ITEMS"] == "board-01" and env["MERLIN_LEASE_TOKENS"] == "board-01:1"
        time.sleep(1.5)  # well past the TTL: only the renewals keep it
        book.refresh()
        assert book.show(lease["lease_id"])["state"] == "granted"
    ended = book.show(lease["lease_id"])
    assert ended["state"] == "released" and "ended" in ended["reason"]
    assert sum(1 for e in book.events(lease["lease_id"]) if e["event"] == "renewed") >= 2


def test_cli_run_sets_the_items_and_returns_the_exit_code(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    inv = tmp_path / "lab.yaml"
    inv.write_text(INVENTORY)
    assert run_cli("ray", "resources", "define", str(inv), "--state-root", root).returncode == 0
    res = run_cli("ray", "resources", "run", "--ttl", "1s", "--state-root", root, "firesim_fpga:1,board=u250", "board:1", "--",
                  sys.executable, "-c", "import os,sys,time; print(os.environ['MERLIN_LEASE_ITEMS']); time.sleep(1.2); sys.exit(7)")  # fmt: skip
    assert res.returncode == 7, res.stderr
    assert res.stdout.strip() == "fpga-01,board-01"
    listed = json.loads(run_cli("ray", "resources", "list", "--json", "--state-root", root).stdout)
    assert all(i["holder"] is None for i in listed["items"]), "released when the command ended"


def test_renew_after_an_unobserved_expiry_is_refused(book: LeaseBook) -> None:
    """The pass that expires a lease is the renewal's own: it must see its own change."""
    now = _fake_clock(book)
    book.skew = 1.0
    lease = book.reserve(["board:1"], ttl=10)  # the last pass granted it
    now[0] += 30
    with pytest.raises(LeaseLost, match="expired"):
        book.renew(lease["lease_id"])
    assert book.show(lease["lease_id"])["state"] == "expired"
    assert json.loads(book.layout.lease(lease["lease_id"]).read_text())["state"] == "expired"
    now[0] += 30
    other = book.reserve(["board:1"], ttl=10)
    now[0] += 30
    assert book.release(other["lease_id"])["state"] == "expired", "release of a lease that just expired reports it"


def test_jobs_why_names_the_holder_of_the_lease_a_run_waits_for(tmp_path: Path) -> None:
    from merlin.control.why import run_conditions
    from merlin.controlplane import ControlPlane
    from merlin.ledger.status import RunStatus, can_transition

    cp = ControlPlane(tmp_path / "state")
    cp.leases.define(_items())
    holder = cp.leases.reserve(["board:1"], run_id="first-run")
    run = cp.submit([sys.executable, "-c", "pass"], target="demo", workflow="why", engine="local", leases=["board:1"])
    try:
        assert run.status.value == "waiting", run.message  # a finished run is held by nothing (tests/test_why_document.py)
        conds = run_conditions(cp, run.run_id)
        assert conds[0]["layer"] == "leases" and conds[0]["code"] == "lease_item_held"
        ev = conds[0]["evidence"]
        assert ev["holder_lease"] == holder["lease_id"] and ev["run_id"] == "first-run" and ev["until"] == holder["expires_at"]
        steps = conds[0]["next_steps"]
        assert conds[0]["observed_at"] and conds[0]["hint"] and {"action": "why", "args": {"run_id": "first-run"}} in steps
        assert {"action": "release", "args": {"lease_id": holder["lease_id"], "force": True}} in steps
        res = run_cli("ray", "jobs", "why", run.run_id, "--json", "--state-root", str(tmp_path / "state"))
        assert res.returncode == 0 and json.loads(res.stdout)["conditions"][0]["code"] == "lease_item_held"
        text = run_cli("ray", "jobs", "why", run.run_id, "--state-root", str(tmp_path / "state"))
        assert f"ray resources release {holder['lease_id']} --force --reason WHY" in text.stdout, text.stdout
        assert "ray jobs why first-run" in text.stdout and "ask " in text.stdout
    finally:
        cp.cancel(run.run_id)  # its lease waiter would wait for the holder's lease to expire
    # the run vocabulary has a waiting state of its own, distinct from blocked and pending
    assert RunStatus.WAITING.value == "waiting" and not RunStatus.WAITING.is_terminal() and not RunStatus.WAITING.is_active()
    assert can_transition(None, "waiting") and can_transition("waiting", "pending") and not can_transition("succeeded", "waiting")


# ------------------------------------------------------- wake-ups, blocking lock

DOORBELL_WAITER = """
import sys
import merlin.leases.book as bookmod
bookmod.POLL_SLICE = bookmod.HOUSEKEEPING = 3600.0  # no polling, no housekeeping: only the doorbell can wake it
book = bookmod.LeaseBook(sys.argv[1])
print(book.wait(sys.argv[2], timeout=3600)["state"], flush=True)
"""


def test_a_waiter_sleeps_until_the_granting_pass_rings_its_doorbell(book: LeaseBook) -> None:
    """The waiter neither polls nor takes the lock: the pass that grants its lease wakes it."""
    held = book.reserve(["board:1"])
    waiting = book.reserve(["board:1"], pid=os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", DOORBELL_WAITER, str(book.layout.root), waiting["lease_id"]], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let it go to sleep on its doorbell
        assert proc.poll() is None, "it waits while the board is held"
        book.release(held["lease_id"])  # the pass grants the waiting lease and rings
        assert proc.communicate(timeout=60)[0].strip() == "granted"
    finally:
        proc.kill()


def test_doorbell_rings_only_its_own_lease_and_one_waiter_per_lease(tmp_path: Path) -> None:
    from merlin.leases.doorbell import Doorbell, Ringer

    bell = Doorbell.open(str(tmp_path), "lease-a")
    if bell is None:
        pytest.skip("no abstract unix sockets here (not Linux): waiters poll instead")
    try:
        assert Doorbell.open(str(tmp_path), "lease-a") is None, "a second waiter on the same lease falls back to polling"
        ringer = Ringer(str(tmp_path))
        ringer.ring("lease-b")
        assert not bell.wait(0.05), "rings for other leases do not wake it"
        Ringer(str(tmp_path / "other-book")).ring("lease-a")
        assert not bell.wait(0.05), "nor rings for the same id in another book"
        ringer.ring("lease-a")
        ringer.ring("lease-a")
        assert bell.wait(5.0) and not bell.wait(0.05), "one wake-up consumes every pending ring"
    finally:
        bell.close()


BLOCKED_LOCKER = """
import sys, time
from pathlib import Path
from merlin.errors import LockBusy
from merlin.leases.locks import Flock
lock = Flock(Path(sys.argv[1]))
t0 = time.monotonic()
try:
    lock.acquire(float(sys.argv[2]))
except LockBusy as exc:
    print("busy", exc, flush=True)
else:
    print("got", flush=True)
"""


def test_a_busy_flock_blocks_in_the_kernel_and_still_times_out(tmp_path: Path) -> None:
    """A single-threaded process sleeps in flock(2) (no polling); its timeout still holds (LockBusy)."""
    import fcntl

    path = tmp_path / ".book.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        gave_up = subprocess.run([sys.executable, "-c", BLOCKED_LOCKER, str(path), "0.5"], capture_output=True, text=True, timeout=60)
        assert gave_up.stdout.startswith("busy") and "waited 0.5s" in gave_up.stdout, gave_up.stderr
        waiter = subprocess.Popen([sys.executable, "-c", BLOCKED_LOCKER, str(path), "60"], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiter.poll() is None, "it blocks while the lock is held"
        with open(f"/proc/{waiter.pid}/wchan") as handle:
            wchan = handle.read()
        assert "poll" not in wchan and "nanosleep" not in wchan, f"sleeping in the kernel's lock wait, not a poll loop ({wchan})"
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert waiter.communicate(timeout=60)[0].strip() == "got"


def test_books_built_and_dropped_leak_no_descriptor(book: LeaseBook) -> None:
    """``cp.leases`` builds a book per call; each keeps its lock and flush-mark descriptors open
    between passes, so a long-lived process (the gateway, a waiter) must get them back when it drops one."""
    import gc

    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        other = LeaseBook(book.layout)
        other.release(other.reserve(["board:1"])["lease_id"])
    del other
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 1


def test_a_waiter_without_its_doorbell_still_sees_the_grant_by_polling(book: LeaseBook) -> None:
    """Where the doorbell cannot be had (its name taken, no abstract sockets, a grant from another
    host), the waiter reads its record between short sleeps and still returns on the grant."""
    from merlin.leases.doorbell import Doorbell

    held = book.reserve(["board:1"])
    waiting = book.reserve(["board:1"], pid=os.getpid())
    squatter = Doorbell.open(book._dir_s, waiting["lease_id"])  # the waiter's own bind now fails
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from merlin.leases.book import LeaseBook; print(LeaseBook(sys.argv[1]).wait(sys.argv[2], timeout=60)['state'])",
             str(book.layout.root), waiting["lease_id"]],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)
        book.release(held["lease_id"])
        assert proc.communicate(timeout=60)[0].strip() == "granted"
        if squatter is not None:
            assert squatter.wait(1.0), "the ring went to whoever holds the name: harmless, nothing trusted rides on it"
    finally:
        if squatter is not None:
            squatter.close()


# ------------------------------------------------------------- hostile numbers (issue 20 #1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pid": 1099511627776}, "pid: 1099511627776 is out of range"),
        ({"pid": 0}, "pid: 0 is out of range"),
        ({"priority": 10**400}, "priority:"),
        ({"priority": -(10**7)}, "out of range"),
    ],
)
def test_out_of_range_numbers_are_refused_and_the_book_stays_usable(book: LeaseBook, kwargs: dict, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        book.reserve(["board:1"], **kwargs)
    with pytest.raises(BadInput, match="count"):
        book.reserve([{"pool": "board", "count": 10**30}])
    with pytest.raises(BadInput, match="COUNT"):
        book.reserve(["board:" + "9" * 5000])
    lease = book.reserve(["board:1"])  # every operation still works
    assert lease["state"] == "granted" and book.release(lease["lease_id"])["state"] == "released"
    assert list(book.queue()) == []


def test_a_recorded_pid_no_process_can_have_is_never_alive() -> None:
    """A book written before pids were checked may hold one: the pass judges it dead, never raises."""
    from merlin.leases.passes import Liveness

    alive = Liveness()
    host = socket.gethostname()
    assert alive({"pid": 1099511627776, "host": host}, 0.0) is False
    assert alive({"pid": -5, "host": host}, 0.0) is False
    assert alive({"pid": os.getpid(), "host": host}, 0.0) is True


def test_cli_reserve_with_a_huge_pid_or_priority_is_exit_2_and_later_commands_work(book: LeaseBook) -> None:
    root = str(book.layout.root)
    for extra in (["--pid", "1099511627776"], ["--priority", "1" + "0" * 400]):
        res = run_cli("ray", "resources", "reserve", "board:1", *extra, "--state-root", root)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    ok = run_cli("ray", "resources", "reserve", "board:1", "--state-root", root, "--json")
    assert ok.returncode == 0, ok.stderr
    assert run_cli("ray", "resources", "queue", "--state-root", root).returncode == 0


def test_a_sigkilled_reserve_wait_is_withdrawn_at_the_next_pass(book: LeaseBook) -> None:
    """Issue 20 #5: a killed ``reserve --wait`` left its request queued, later granted to nobody."""
    held = book.reserve(["board:1"])
    root = str(book.layout.root)
    waiter = subprocess.Popen([sys.executable, "-m", "merlin", "ray", "resources", "reserve", "board:1", "--wait", "--state-root", root],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(book.queue()):
            assert time.monotonic() < deadline and waiter.poll() is None, waiter.stderr.read() if waiter.stderr else ""
            time.sleep(0.1)
        (queued,) = book.queue()
        assert queued["owner"]["waiter"]["pid"] == waiter.pid
    finally:
        waiter.kill()
        waiter.wait()
    book.refresh()
    gone = book.show(queued["lease_id"])
    assert gone["state"] == "cancelled" and f"({waiter.pid} on" in gone["reason"]
    book.release(held["lease_id"])
    assert book.show(queued["lease_id"])["state"] == "cancelled"  # the freed board went to nobody
    assert [i["holder"] for i in book.items() if i["id"] == "board-01"] == [None]


def test_a_timed_out_reserve_wait_stays_queued_after_it_exits(book: LeaseBook) -> None:
    """NotGranted says the request stays queued: its waiter is forgotten, so its exit withdraws nothing."""
    held = book.reserve(["board:1"])
    root = str(book.layout.root)
    res = run_cli_process("ray", "resources", "reserve", "board:1", "--wait", "--timeout", "1s", "--state-root", root)
    assert res.returncode == 3, res.stderr
    book.refresh()
    (queued,) = book.queue()
    assert "waiter" not in queued["owner"]
    book.release(held["lease_id"])
    assert book.show(queued["lease_id"])["state"] == "granted"


# ------------------------------------------------------------- reasons and escapes (issue 20 #8, #9)

GHP_REASON = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def test_reasons_are_kept_without_secrets_or_escapes_anywhere_under_the_state_root(book: LeaseBook) -> None:
    lease = book.reserve(["board:1"])
    book.release(lease["lease_id"], force=True, reason=f"rotating \x1b[31m{GHP_REASON}\x1b[0m now\nsecond line")
    book.set_health("fpga-01", "bad", f"fan \x1b]0;title\x07broken, token {GHP_REASON}")
    book.drain("fpga-02", "mysql -pDRAINpw99 broke it")
    shown = book.show(lease["lease_id"])["reason"]
    assert "\x1b" not in shown and GHP_REASON not in shown and "\n" not in shown and "rotating" in shown
    for path in book.layout.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert GHP_REASON.encode() not in data and b"DRAINpw99" not in data and b"\x1b" not in data, path


def test_resources_show_events_never_sends_a_raw_escape(book: LeaseBook) -> None:
    """A book written before reasons were cleaned may hold one: the view shows it as a visible escape."""
    lease = book.reserve(["board:1"])
    events = book.layout.lease_events(lease["lease_id"])
    line = json.loads(events.read_text().splitlines()[-1])
    events.write_text(events.read_text() + json.dumps(dict(line, seq=line["seq"] + 1, reason="old \x1b[2Jreason")) + "\n")
    res = run_cli("ray", "resources", "show", lease["lease_id"], "--events", "--state-root", str(book.layout.root))
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout and "old \\x1b[2Jreason" in res.stdout


def test_a_hint_quoting_a_state_root_with_an_escape_prints_no_raw_escape(tmp_path: Path) -> None:
    root = tmp_path / "st\x1b[31mate"
    res = run_cli("ray", "jobs", "status", "nosuch-20260101-000000-abcdef", "--state-root", str(root))
    assert res.returncode == 4, res.stderr
    assert "\x1b" not in res.stderr and "--state-root $'" in res.stderr and "\\x1b[31m" in res.stderr
