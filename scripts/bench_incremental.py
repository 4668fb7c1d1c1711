#!/usr/bin/env python3
"""Benchmark of the incremental backup layout (run through scripts/bench-incremental, which builds
the release binary and sets up a throwaway OS keyring).

Seeds a TimeTrack-like database (scripts/seed.py) on a fresh in-memory test server, then, for each
layout (`--layouts files incremental`), simulates `--days` days on the same starting data: each day
1% of the time entries are updated (one or two fields and updatedAt, same _id), 0.5% inserted (new
ObjectIds) and 0.1% deleted, then `driveback backup --layout LAYOUT` to a folder destination and
`driveback prune` (the configured retention policy: the destination is made the configured
`backup.dest`). Both layouts see exactly the same changes (the same starting documents, the same
RNG seed). One Markdown table per layout, one row per day: the size of the day's changes (their
raw BSON, zstd level 8), the bytes uploaded, the bytes held at the destination after retention,
the backup's wall time and the wall time of a restore of the newest backup.
"""
import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

# bench.py's server and measuring helpers (no scripts/__pycache__ left behind: it is not ignored).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import DRIVEBACK, drop_database, measured_child, seeded_server  # noqa: E402

DB = "timetrack"
SCRATCH_DB = "timetrack_restored"
# The issue's target for one day: uploaded <= 2 x changed + 1 MiB.
TARGET_SLACK = 1 << 20
ZSTD_LEVEL = 8
RAW = CodecOptions(document_class=RawBSONDocument)
PROJECTS = ["Website", "Mobile app", "Research", "Support", "Admin", "Marketing", "Infra"]
TAGS = ["deep-work", "meeting", "review", "bug", "planning", "call", "writing"]
# The simulated days start the day after seed.py's year of entries.
SIM_START = dt.datetime(2026, 1, 1, 18, 0, tzinfo=dt.timezone.utc)

try:
    import zstandard

    def compressed_size(data):
        return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))

    COMPRESSOR = f"python zstandard {zstandard.__version__}, level {ZSTD_LEVEL}"
except ImportError:
    def compressed_size(data):
        out = subprocess.run(["zstd", f"-{ZSTD_LEVEL}", "-q", "-c"], input=data, capture_output=True, check=True).stdout
        return len(out)

    _zv = re.search(r"v\d+(\.\d+)+", subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout)
    COMPRESSOR = f"the zstd command line tool {_zv.group(0) if _zv else ''} (`zstd -{ZSTD_LEVEL}`; python zstandard is not in the venv)"


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return f"{nproc} cores (nproc), {model}, {platform.system()} {platform.release()}"


def folder_size(path):
    """Bytes and files under path (every file: backups, sidecars, keys, marks)."""
    total = files = 0
    for d, _, names in os.walk(path):
        for n in names:
            total += os.path.getsize(os.path.join(d, n))
            files += 1
    return total, files


def snapshot(client):
    """Every collection of the seeded database as raw BSON, with its indexes."""
    db = client.get_database(DB, codec_options=RAW)
    snap = {}
    for name in sorted(db.list_collection_names()):
        docs = list(db[name].find({}, sort=[("_id", 1)]))
        indexes = [ix for ix in client[DB][name].list_indexes() if ix["name"] != "_id_"]
        snap[name] = (docs, indexes)
    return snap


def reload(client, snap):
    """Puts the seeded database back as it was when snapshotted."""
    client.drop_database(DB)
    db = client[DB]
    for name, (docs, indexes) in snap.items():
        for i in range(0, len(docs), 2000):
            db[name].insert_many(docs[i:i + 2000], ordered=False)
        for ix in indexes:
            opts = {k: v for k, v in ix.items() if k in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")}
            db[name].create_index(list(ix["key"].items()), name=ix["name"], **opts)


def new_entry(rnd, user_ids, when, serial):
    """A time entry like seed.py's, with an ObjectId of the simulated day (deterministic)."""
    oid = ObjectId(int(when.timestamp()).to_bytes(4, "big") + rnd.getrandbits(64).to_bytes(8, "big"))
    start = when - dt.timedelta(minutes=rnd.randint(0, 60 * 12))
    minutes = rnd.randint(5, 240)
    return {
        "_id": oid,
        "userId": rnd.choice(user_ids),
        "project": rnd.choice(PROJECTS),
        "description": f"Task {serial % 997}: " + " ".join(rnd.choice(TAGS) for _ in range(rnd.randint(1, 4))),
        "start": start,
        "end": start + dt.timedelta(minutes=minutes),
        "durationMinutes": minutes,
        "billable": rnd.random() < 0.6,
        "tags": rnd.sample(TAGS, rnd.randint(0, 3)),
        "updatedAt": when,
    }


def new_values(rnd, when):
    """One or two fields of a time entry changed, and updatedAt."""
    fields = {
        "description": lambda: f"Task {rnd.randint(0, 996)}: " + " ".join(rnd.choice(TAGS) for _ in range(rnd.randint(1, 4))),
        "durationMinutes": lambda: rnd.randint(5, 240),
        "billable": lambda: rnd.random() < 0.6,
        "tags": lambda: rnd.sample(TAGS, rnd.randint(0, 3)),
        "project": lambda: rnd.choice(PROJECTS),
    }
    chosen = rnd.sample(sorted(fields), rnd.randint(1, 2))
    s = {k: fields[k]() for k in chosen}
    s["updatedAt"] = when
    return s


def simulate_day(client, rnd, ids, user_ids, day):
    """Applies one day's changes to timeEntries; returns (updated, inserted, deleted, changed bytes)."""
    entries = client[DB]["timeEntries"]
    when = SIM_START + dt.timedelta(days=day)
    n = len(ids)
    n_upd, n_ins, n_del = round(n * 0.01), round(n * 0.005), round(n * 0.001)
    picked = rnd.sample(range(n), n_del + n_upd)
    deleted = [ids[i] for i in picked[:n_del]]
    updated = [ids[i] for i in picked[n_del:]]
    for i in range(0, len(deleted), 1000):
        entries.delete_many({"_id": {"$in": deleted[i:i + 1000]}})
    ops = [pymongo.UpdateOne({"_id": oid}, {"$set": new_values(rnd, when)}) for oid in updated]
    for i in range(0, len(ops), 1000):
        entries.bulk_write(ops[i:i + 1000], ordered=False)
    new_docs = [new_entry(rnd, user_ids, when, n + k) for k in range(n_ins)]
    for i in range(0, len(new_docs), 1000):
        entries.insert_many(new_docs[i:i + 1000], ordered=False)
    gone = set(deleted)
    ids[:] = [oid for oid in ids if oid not in gone] + [d["_id"] for d in new_docs]
    # The day's changed and inserted documents as the server now holds them, compressed together.
    raw = client.get_database(DB, codec_options=RAW)["timeEntries"]
    touched = updated + [d["_id"] for d in new_docs]
    blob = bytearray()
    for i in range(0, len(touched), 1000):
        for d in raw.find({"_id": {"$in": touched[i:i + 1000]}}):
            blob += d.raw
    return len(updated), len(new_docs), len(deleted), compressed_size(bytes(blob))


def counts(client, name):
    db = client[name]
    return {c: db[c].count_documents({}) for c in sorted(db.list_collection_names())}


def cli(args, env, check=True):
    r = subprocess.run([DRIVEBACK] + args, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"driveback {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def run_layout(layout, client, uri, snap, args, work, problems):
    dest_dir = os.path.join(work, layout)
    dest = f"folder:{dest_dir}"
    home = os.path.join(work, f"{layout}-home")
    env = dict(os.environ,
               DRIVEBACK_PASSPHRASE="benchmark passphrase",
               DRIVEBACK_KEYRING_SERVICE=f"driveback-bench-incremental-{os.getpid()}-{layout}",
               DRIVEBACK_CONFIG_DIR=os.path.join(home, "config"),
               DRIVEBACK_DATA_DIR=os.path.join(home, "data"))
    env.pop("DRIVEBACK_LOG", None)
    env.pop("DRIVEBACK_MONGO_URI", None)
    # The key is made before timing (its scrypt wrap is a one-off); the destination is the
    # configured one, so the retention policy applies to it.
    cli(["key", "init", "--dest", dest], env)
    cli(["config", "set", "backup.dest", dest], env)
    cli(["config", "set", "backup.database", DB], env)
    policy = {k: cli(["config", "get", f"retention.{k}"], env).stdout.strip() for k in ("daily", "weekly", "monthly", "keep_last")}

    rnd = random.Random(args.seed)
    ids = [d["_id"] for d in snap["timeEntries"][0]]
    user_ids = [d["_id"] for d in snap["users"][0]]
    rows = []
    for day in range(args.days + 1):
        row = {"day": day}
        if day == 0:
            row.update(updated=None, inserted=None, deleted=None, changed=None)
        else:
            u, i, d, c = simulate_day(client, rnd, ids, user_ids, day)
            row.update(updated=u, inserted=i, deleted=d, changed=c)
        # Each day's runs are dated that day (the CLI's DRIVEBACK_SIMULATED_NOW), so that the
        # retention policy keeps what it would over real days.
        day_env = dict(env, DRIVEBACK_SIMULATED_NOW=(SIM_START + dt.timedelta(days=day)).isoformat())
        r = measured_child([DRIVEBACK, "backup", "--mongo-uri", uri, "--db", DB, "--dest", dest, "--layout", layout, "--json"], day_env)
        b = json.loads(r["out"])
        for line in r["err"].splitlines():
            if line.strip():
                problems.append(f"{layout} day {day} backup: {line.strip()}")
        row.update(uploaded=b["bytes"], backup_secs=r["secs"], backup_cpu=r["cpu_secs"], backup_rss=r["rss_kib"] / 1024,
                   documents=b["documents"], chain=b.get("chain"))
        p = cli(["prune", "--dest", dest, "--json"], day_env, check=False)
        if p.returncode != 0:
            problems.append(f"{layout} day {day} prune exited {p.returncode}: {p.stderr.strip()}")
            row["pruned"] = None
        else:
            row["pruned"] = len(json.loads(p.stdout).get("deleted", []))
        row["held"], row["files"] = folder_size(dest_dir)
        row["restore_secs"] = None
        if day > 0 and (day % args.restore_every == 0 or day == args.days):
            drop_database(uri, SCRATCH_DB)
            rr = measured_child([DRIVEBACK, "restore", "--backup", "latest", "--dest", dest, "--mongo-uri", uri,
                                 "--db", SCRATCH_DB, "--yes", "--json"], day_env)
            row["restore_secs"] = rr["secs"]
            row["restore_cpu"] = rr["cpu_secs"]
            row["restore_rss"] = rr["rss_kib"] / 1024
            want, got = counts(client, DB), counts(client, SCRATCH_DB)
            if want != got:
                problems.append(f"{layout} day {day}: the restored database's counts {got} differ from the source's {want}")
            drop_database(uri, SCRATCH_DB)
        rows.append(row)
        print(f"[{layout}] day {day}: changed {row['changed']} B, uploaded {row['uploaded']} B, held {row['held']} B, "
              f"backup {row['backup_secs']:.2f} s" + (f", restore {row['restore_secs']:.2f} s" if row["restore_secs"] else ""),
              file=sys.stderr, flush=True)
    # One full backup of the last day's data: the files layout's last upload, else one more
    # backup of the final state in one file, to a destination of its own (untimed).
    if layout == "files":
        full = rows[-1]["uploaded"]
    else:
        ref = f"folder:{os.path.join(work, layout + '-full-reference')}"
        cli(["key", "init", "--dest", ref], env)
        full = json.loads(cli(["backup", "--mongo-uri", uri, "--db", DB, "--dest", ref, "--layout", "files", "--json"], env).stdout)["bytes"]
    return {"layout": layout, "rows": rows, "full": full,
            "policy": policy}


def in_target(r):
    return r["uploaded"] <= 2 * r["changed"] + TARGET_SLACK


def table(res):
    out = [f"### Layout `{res['layout']}`", "",
           "| day | backup | updated / inserted / deleted docs | changed bytes (zstd -8) | uploaded bytes | uploaded / changed | within target | "
           "held bytes after retention | files held | pruned | backup s | backup CPU s | backup peak RSS MiB | restore s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        c = r["chain"]
        kind = c["kind"] if c else "file"
        if r["changed"] is None:
            docs, changed, ratio, target = "(seeded data)", "n/a", "n/a", "n/a"
        else:
            docs = f"{r['updated']} / {r['inserted']} / {r['deleted']}"
            changed = str(r["changed"])
            ratio = f"{r['uploaded'] / r['changed']:.2f}x" if r["changed"] else "n/a"
            target = "yes" if in_target(r) else "no"
        restore = "" if r["restore_secs"] is None else f"{r['restore_secs']:.2f}"
        pruned = "n/a" if r["pruned"] is None else str(r["pruned"])
        out.append(f"| {r['day']} | {kind} | {docs} | {changed} | {r['uploaded']} | {ratio} | {target} | {r['held']} | {r['files']} | "
                   f"{pruned} | {r['backup_secs']:.2f} | {r['backup_cpu']:.2f} | {r['backup_rss']:.1f} | {restore} |")
    return "\n".join(out)


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def summary(results):
    out = ["| layout | mean uploaded / changed | days within target | held after last day / one full backup | "
           "mean backup s (days 1+) | mean backup CPU s (days 1+) | day-0 full backup s | mean restore s | mean restore CPU s | "
           "backup peak RSS MiB (max) | restore peak RSS MiB (max) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        days = [r for r in res["rows"] if r["changed"] is not None]
        ratio = mean(r["uploaded"] / r["changed"] for r in days if r["changed"])
        within = sum(1 for r in days if in_target(r))
        held = res["rows"][-1]["held"] / res["full"] if res["full"] else None
        restores = [r["restore_secs"] for r in days if r["restore_secs"] is not None]
        rrss = [r["restore_rss"] for r in days if r.get("restore_rss") is not None]
        fmt = lambda x, s: "n/a" if x is None else format(x, s)  # noqa: E731
        out.append(f"| {res['layout']} | {fmt(ratio, '.2f')}x | {within} of {len(days)} | {fmt(held, '.2f')}x "
                   f"({res['rows'][-1]['held']} / {res['full']}) | {fmt(mean(r['backup_secs'] for r in days), '.2f')} | "
                   f"{fmt(mean(r['backup_cpu'] for r in days), '.2f')} | "
                   f"{res['rows'][0]['backup_secs']:.2f} | {fmt(mean(restores), '.2f')} | "
                   f"{fmt(mean(r['restore_cpu'] for r in days if r.get('restore_cpu') is not None), '.2f')} | "
                   f"{max(r['backup_rss'] for r in res['rows']):.1f} | {fmt(max(rrss) if rrss else None, '.1f')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000, help="time entries seeded (scripts/seed.py)")
    ap.add_argument("--days", type=int, default=30, help="simulated days of changes, one backup each")
    ap.add_argument("--layouts", nargs="+", choices=["files", "incremental"], default=["files", "incremental"])
    ap.add_argument("--restore-every", type=int, default=1, help="restore the newest backup every K-th day (and on the last day)")
    ap.add_argument("--seed", type=int, default=18, help="seed of the day's random changes (the same for every layout)")
    args = ap.parse_args()
    if args.restore_every < 1 or args.days < 1:
        ap.error("--days and --restore-every must be at least 1")

    started = time.time()
    print(f"Measured with `scripts/bench-incremental --entries {args.entries} --days {args.days} --layouts {' '.join(args.layouts)} "
          f"--restore-every {args.restore_every}` on {time.strftime('%Y-%m-%d %H:%M %Z')} ({machine()}); release build; "
          "test server SecantusDB (in-memory) on loopback; TimeTrack-like data from `scripts/seed.py`; folder destinations.")
    print(flush=True)
    work = tempfile.mkdtemp(prefix="driveback-bench-incremental-")
    server, _port, uri = seeded_server(args.entries)
    problems = []
    try:
        client = pymongo.MongoClient(uri)
        snap = snapshot(client)
        results = []
        for k, layout in enumerate(args.layouts):
            if k > 0:
                reload(client, snap)
            results.append(run_layout(layout, client, uri, snap, args, work, problems))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    p = results[0]["policy"]
    for res in results:
        print(table(res))
        print()
    print("### Summary")
    print()
    print(summary(results))
    print()
    print(
        f"- Each simulated day: 1% of the time entries updated (one or two fields and `updatedAt`, same `_id`), 0.5% inserted "
        f"(new ObjectIds), 0.1% deleted (of the current count; the other collections unchanged), then `driveback backup --layout LAYOUT` "
        f"and `driveback prune`. Day 0 is the first backup of the seeded data. Both layouts see the same data and changes (RNG seed {args.seed}).\n"
        f"- *changed bytes*: the day's updated and inserted documents as the server holds them after the day's changes, their raw BSON "
        f"concatenated and compressed with {COMPRESSOR}. *uploaded*: the backup's `bytes` (`--json`). *within target*: uploaded <= "
        f"2 x changed + 1 MiB (the issue's target).\n"
        f"- *held*: every file in the destination folder after retention (backups, their sidecars, key, marks). "
        f"*held after last day / one full backup*: against one full backup of the last day's data in one file (the files layout's last upload; "
        f"for the incremental layout, one more `--layout files` backup of the final state to another folder).\n"
        f"- Retention: the configured default policy (retention.daily={p['daily']}, weekly={p['weekly']}, monthly={p['monthly']}, "
        f"keep_last={p['keep_last']}), applied by the backup itself (the destination is `backup.dest`) and by `driveback prune` after it. "
        f"Each day's backup, prune and restore are dated that day ({SIM_START:%Y-%m-%d %H:%M} UTC plus the day, through the "
        "CLI's `DRIVEBACK_SIMULATED_NOW`), so the policy keeps what it would over real days.\n"
        f"- *restore s*: `driveback restore --backup latest` of the newest backup into a scratch database (every {args.restore_every} "
        "day(s) and on the last day; its collection counts checked against the source). *backup s*, *restore s*: wall time of the "
        "process; *peak RSS*: its maximum resident set (`getrusage` of a fresh helper's children).\n"
        f"- Whole run: {(time.time() - started) / 60:.1f} min.")
    if problems:
        print()
        print("Problems and warnings seen:")
        for line in problems:
            print(f"- {line}")


if __name__ == "__main__":
    main()
