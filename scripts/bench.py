#!/usr/bin/env python3
"""Driveback's benchmark driver (run through scripts/bench, which builds the release binaries).

For each database size: start a fresh in-memory test server, seed a TimeTrack-like database,
measure the raw driver read (the backup's ceiling), `driveback backup` (wall time, client CPU,
documents/s, MB/s, peak RSS of the process), the archive size against gzip -6 of the same plain
archive, the insert ceiling (the plain driver inserting the same documents, `examples/raw_insert.rs`,
the restore's ceiling), and `driveback restore` twice: with the backup key from the OS keyring and
with the key unlocked from the passphrase (scrypt). With --levels, one backup per zstd level in a
second table, against a CPU proxy for `mongodump --gzip`. When mongodump and mongorestore are on
the PATH, they run on the same server and data too. Prints Markdown tables.
"""
import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
VENV = os.environ.get("DRIVEBACK_VENV", os.path.join(ROOT, ".venv"))
DRIVEBACK = os.path.join(TARGET, "release", "driveback")
RAW_READ = os.path.join(TARGET, "release", "examples", "raw_read")
RAW_INSERT = os.path.join(TARGET, "release", "examples", "raw_insert")
# Peak RSS a passphrase unlock adds to a restore (scrypt at 2^18 takes 256 MiB); a passphrase run
# whose peak is not at least this much above the keyring run's did not unlock with scrypt.
SCRYPT_MIB_MIN = 200


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def measured_child(cmd, env):
    """Runs cmd in a fresh Python helper so RUSAGE_CHILDREN covers only it."""
    helper = (
        "import resource,subprocess,sys,time,json;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "s=time.perf_counter()-t;"
        "print(json.dumps({'rc':p.returncode,'secs':s,'rss_kib':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,'cpu_secs':(lambda u:u.ru_utime+u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN)),'out':p.stdout,'err':p.stderr}))"
    )
    res = subprocess.run([sys.executable, "-c", helper] + cmd, env=env, capture_output=True, text=True, check=True)
    r = json.loads(res.stdout)
    if r["rc"] != 0:
        raise SystemExit(f"{cmd[0]} failed: {r['err']}")
    return r


def seeded_server(entries):
    """Starts the test server on a free port and seeds `timetrack` with `entries` entries: the
    server process, its port and its URI (terminate the process when done)."""
    port = free_port()
    server = subprocess.Popen(
        [os.path.join(VENV, "bin", "secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        subprocess.run([os.path.join(VENV, "bin", "python"), os.path.join(ROOT, "scripts", "seed.py"), "--uri", uri, "--db", "timetrack", "--entries", str(entries)],
                       check=True, stdout=subprocess.DEVNULL)
    except BaseException:
        server.terminate()
        raise
    return server, port, uri


def drop_database(uri, name):
    subprocess.run([os.path.join(VENV, "bin", "python"), "-c",
                    f"import pymongo;pymongo.MongoClient({uri!r}).drop_database({name!r})"], check=True)


def default_level():
    """The product's default zstd level, as `driveback backup --help` shows it (else None)."""
    out = subprocess.run([DRIVEBACK, "backup", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"zstd level[^\[]*\[default: (\d+)\]", out, re.S)
    return int(m.group(1)) if m else None


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_start_rss(stderr):
    """rss_mib of the engine's debug line "resident memory at the start of the load", else None."""
    for line in ANSI.sub("", stderr).splitlines():
        if "resident memory at the start of the load" in line:
            m = re.search(r"rss_mib\s*[=:]\s*\"?([0-9.]+)", line)
            if m:
                return float(m.group(1))
    return None


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def backup_at(level, entries, work, uri, env):
    """One timed `driveback backup` to its own folder destination (its key made before timing)."""
    dest = os.path.join(work, f"dest-{entries}-{level or 'default'}")
    # The key is made before timing (its scrypt wrap is a one-off, never on the backup path).
    subprocess.run([DRIVEBACK, "key", "init", "--dest", f"folder:{dest}"], env=env, check=True, capture_output=True)
    cmd = [DRIVEBACK, "backup", "--mongo-uri", uri, "--db", "timetrack", "--dest", f"folder:{dest}", "--json"]
    if level is not None:
        cmd += ["--level", str(level)]
    r = measured_child(cmd, env)
    return dest, json.loads(r["out"]), r


def bench(entries, work, levels, ceiling_parallel, tools):
    server, port, uri = seeded_server(entries)
    try:
        service = f"driveback-bench-{port}"
        env = dict(os.environ, DRIVEBACK_PASSPHRASE="benchmark passphrase", DRIVEBACK_KEYRING_SERVICE=service)
        env.pop("DRIVEBACK_LOG", None)

        raw = measured_child([RAW_READ, uri, "timetrack"], env)
        raw_stats = json.loads(raw["out"])
        # The product default (no --level) for the main table, then every other level asked for.
        dest, b, backup = backup_at(None, entries, work, uri, env)
        by_level = {}
        for level in levels:
            by_level[level] = (b, backup) if level is None else backup_at(level, entries, work, uri, env)[1:]

        plain = os.path.join(work, f"plain-{entries}.archive")
        subprocess.run([DRIVEBACK, "export", "--backup", b["id"], "--dest", f"folder:{dest}", "--out", plain], env=env, check=True, capture_output=True)
        # gzip -6 of the same plain archive: the size mongodump --gzip makes, and its CPU.
        gz = measured_child(["gzip", "-6", "-k", "-f", plain], env)
        gzip_bytes = os.path.getsize(plain + ".gz")

        # The restore's ceiling: the same documents inserted by the plain driver, P batches in flight.
        ceiling = [json.loads(line) for line in measured_child([RAW_INSERT, uri, "timetrack"] + [str(p) for p in ceiling_parallel], env)["out"].splitlines() if line.strip()]
        best = min(ceiling, key=lambda c: c["seconds"])

        restore_cmd = [DRIVEBACK, "restore", "--backup", b["id"], "--dest", f"folder:{dest}", "--mongo-uri", uri, "--yes", "--json"]
        # With the key from the OS keyring (where `key init` stored it): the restore itself.
        restore = measured_child(restore_cmd + ["--db", "timetrack_restored"], env)
        drop_database(uri, "timetrack_restored")
        # With a keyring service the key was never stored under: the CLI finds no key there and
        # unlocks the destination's key file with the passphrase (scrypt, 256 MiB for about 1 s).
        unlock_env = dict(env, DRIVEBACK_KEYRING_SERVICE=f"{service}-unlock")
        unlocked = measured_child(restore_cmd + ["--db", "timetrack_unlocked"], unlock_env)
        drop_database(uri, "timetrack_unlocked")
        unlock_checked = unlocked["rss_kib"] / 1024 - restore["rss_kib"] / 1024 >= SCRYPT_MIB_MIN
        if not unlock_checked:
            print(f"warning: at {entries} entries the passphrase restore's peak RSS ({unlocked['rss_kib'] / 1024:.1f} MiB) is not "
                  f"{SCRYPT_MIB_MIN} MiB above the keyring restore's ({restore['rss_kib'] / 1024:.1f} MiB): was the key unlocked with scrypt?",
                  file=sys.stderr, flush=True)
        # Once more with the engine's debug log (untimed): its resident memory when the load
        # starts, after the passphrase unlock, i.e. whether scrypt's memory was returned by then.
        debug_env = dict(env, DRIVEBACK_KEYRING_SERVICE=f"{service}-debug", DRIVEBACK_LOG="driveback_engine=debug")
        debug = measured_child(restore_cmd + ["--db", "timetrack_debug"], debug_env)
        drop_database(uri, "timetrack_debug")

        docs = raw_stats["documents"]
        mb = raw_stats["bytes"] / 1e6
        row = {
            "entries": entries,
            "documents": docs,
            "bson_mb": mb,
            "raw_secs": raw_stats["seconds"],
            "raw_docs_s": docs / raw_stats["seconds"],
            "raw_rss": raw["rss_kib"] / 1024,
            "raw_cpu": raw["cpu_secs"],
            "backup_secs": backup["secs"],
            "backup_cpu": backup["cpu_secs"],
            "backup_docs_s": docs / backup["secs"],
            "backup_mb_s": mb / backup["secs"],
            "backup_rss": backup["rss_kib"] / 1024,
            "archive_bytes": b["bytes"],
            "plain_bytes": os.path.getsize(plain),
            "gzip_bytes": gzip_bytes,
            "gzip_secs": gz["secs"],
            "gzip_cpu": gz["cpu_secs"],
            "ceiling": ceiling,
            "ceiling_secs": best["seconds"],
            "ceiling_parallel": best["parallel"],
            "restore_secs": restore["secs"],
            "restore_cpu": restore["cpu_secs"],
            "restore_docs_s": docs / restore["secs"],
            "restore_rss": restore["rss_kib"] / 1024,
            "unlock_secs": unlocked["secs"],
            "unlock_cpu": unlocked["cpu_secs"],
            "unlock_rss": unlocked["rss_kib"] / 1024,
            "unlock_checked": unlock_checked,
            "load_start_rss": load_start_rss(debug["err"]),
            "levels": [],
            "tools": None,
        }
        for level in levels:
            lb, lr = by_level[level]
            row["levels"].append({"level": level, "secs": lr["secs"], "cpu": lr["cpu_secs"], "rss": lr["rss_kib"] / 1024, "bytes": lb["bytes"]})

        if tools:
            # The standard tools on the same server and data: mongodump's gzipped archive, then
            # mongorestore of it into a new database (timetrack_mr).
            archive = os.path.join(work, f"mongodump-{entries}.archive.gz")
            dump = measured_child(["mongodump", "--uri", uri, "--db", "timetrack", f"--archive={archive}", "--gzip"], env)
            mr = measured_child(["mongorestore", "--uri", uri, f"--archive={archive}", "--gzip", "--nsFrom", "timetrack.*", "--nsTo", "timetrack_mr.*"], env)
            drop_database(uri, "timetrack_mr")
            row["tools"] = {
                "dump_secs": dump["secs"], "dump_cpu": dump["cpu_secs"], "dump_rss": dump["rss_kib"] / 1024, "dump_bytes": os.path.getsize(archive),
                "restore_secs": mr["secs"], "restore_cpu": mr["cpu_secs"], "restore_rss": mr["rss_kib"] / 1024,
            }
        return row
    finally:
        server.terminate()
        server.wait()


def table(rows):
    out = ["| entries | docs | BSON MB | raw read s | raw docs/s | backup s | backup docs/s | backup MB/s | backup / raw | backup CPU s | backup peak RSS MiB | file MB | file / gzip -6 "
           "| insert ceiling s (P) | restore s | restore / ceiling | restore docs/s | restore CPU s | restore peak RSS MiB | restore with passphrase s | with passphrase peak RSS MiB | RSS at load start MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['entries']} | {r['documents']} | {r['bson_mb']:.1f} | {r['raw_secs']:.2f} | {r['raw_docs_s']:.0f} | {r['backup_secs']:.2f} | {r['backup_docs_s']:.0f} | "
            f"{r['backup_mb_s']:.1f} | {r['raw_secs'] / r['backup_secs'] * 100:.0f}% | {r['backup_cpu']:.2f} | {r['backup_rss']:.1f} | {r['archive_bytes'] / 1e6:.2f} | "
            f"{r['archive_bytes'] / r['gzip_bytes']:.2f}x | {r['ceiling_secs']:.2f} ({r['ceiling_parallel']}) | {r['restore_secs']:.2f} | "
            f"{r['restore_secs'] / r['ceiling_secs']:.2f}x | {r['restore_docs_s']:.0f} | {r['restore_cpu']:.2f} | {r['restore_rss']:.1f} | "
            f"{r['unlock_secs']:.2f} | {r['unlock_rss']:.1f}{'' if r['unlock_checked'] else ' (no unlock?)'} | {fmt(r['load_start_rss'], '.1f')} |")
    return "\n".join(out)


def ceiling_lines(rows):
    return "\n".join(f"- Insert ceiling at {r['entries']} entries: " + ", ".join(f"P={c['parallel']} {c['seconds']:.2f} s" for c in r["ceiling"]) + "."
                     for r in rows)


def levels_table(rows, default):
    out = ["| entries | zstd level | backup s | backup CPU s | backup peak RSS MiB | file bytes | file / gzip -6 | mongodump --gzip proxy CPU s | backup CPU / proxy CPU | backup CPU / mongodump CPU |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        # A lower bound of mongodump --gzip's CPU: the plain driver's read plus gzip -6 of the same
        # archive. mongodump's Go driver and BSON handling are not counted, so the proxy
        # underestimates it and backup CPU / proxy CPU is conservative (mongodump's real ratio is lower).
        proxy = r["raw_cpu"] + r["gzip_cpu"]
        for lv in r["levels"]:
            level = lv["level"] if lv["level"] is not None else default
            label = "default" if level is None else f"{level} (default)" if level == default else str(level)
            dump = ratio(lv["cpu"], r["tools"]["dump_cpu"]) if r["tools"] else "n/a"
            out.append(f"| {r['entries']} | {label} | {lv['secs']:.2f} | {lv['cpu']:.2f} | {lv['rss']:.1f} | {lv['bytes']} | {ratio(lv['bytes'], r['gzip_bytes'])} | "
                       f"{proxy:.2f} ({r['raw_cpu']:.2f} + {r['gzip_cpu']:.2f}) | {ratio(lv['cpu'], proxy)} | {dump} |")
    return "\n".join(out)


def tools_table(rows):
    out = ["| entries | mongodump --gzip s | CPU s | peak RSS MiB | MB | backup s / mongodump s | backup CPU / mongodump CPU | file / mongodump file | backup RSS / mongodump RSS "
           "| mongorestore --gzip s | CPU s | peak RSS MiB | restore s / mongorestore s | restore with passphrase s / mongorestore s | restore RSS / mongorestore RSS |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["tools"]
        out.append(f"| {r['entries']} | {t['dump_secs']:.2f} | {t['dump_cpu']:.2f} | {t['dump_rss']:.1f} | {t['dump_bytes'] / 1e6:.2f} | "
                   f"{ratio(r['backup_secs'], t['dump_secs'])} | {ratio(r['backup_cpu'], t['dump_cpu'])} | {ratio(r['archive_bytes'], t['dump_bytes'])} | {ratio(r['backup_rss'], t['dump_rss'])} | "
                   f"{t['restore_secs']:.2f} | {t['restore_cpu']:.2f} | {t['restore_rss']:.1f} | {ratio(r['restore_secs'], t['restore_secs'])} | "
                   f"{ratio(r['unlock_secs'], t['restore_secs'])} | {ratio(r['restore_rss'], t['restore_rss'])} |")
    return "\n".join(out)


NOTES = (
    "- *raw read*: the plain Rust driver reading every collection as raw BSON in natural order "
    "(`examples/raw_read.rs`), in the same run: the ceiling a backup can reach.\n"
    "- *backup / raw*: raw read time divided by backup time (target: at least 90%).\n"
    "- *CPU s*: the measured client process's user + system CPU time (`getrusage`); the server's is not counted.\n"
    "- *peak RSS*: the measured process's own maximum resident set (target: flat from 20k to 200k documents).\n"
    "- *file / gzip -6*: the encrypted backup's size against `gzip -6` of the same plain archive "
    "(what `mongodump --gzip` makes).\n"
    "- *insert ceiling (P)*: the plain Rust driver inserting the same documents, read into memory beforehand, into fresh "
    "collections in batches of 1000 with P `insert_many` calls in flight across all collections (`examples/raw_insert.rs`), "
    "in the same run on the same server; the best of P = {ps} is shown. *restore / ceiling*: restore time divided by it "
    "(1.00x is the plain driver's speed).\n"
    "- *restore*: `driveback restore` into a new database with the backup key from the OS keyring: the restore's own time "
    "and memory. *restore with passphrase*: the same restore when the key is not in the keyring and is unlocked from the "
    "passphrase (scrypt, 256 MiB); the unlock's cost is the difference between the two.\n"
    "- *RSS at load start*: the engine's debug log (`resident memory at the start of the load`, `rss_mib`) in one more "
    "restore with the passphrase unlock: whether scrypt's memory was returned before the documents load (n/a: the build "
    "does not log it).\n"
)

TOOLS_NOTES = (
    "- *mongodump / mongorestore*: MongoDB's database tools on the same server and data in the same run: "
    "`mongodump --archive --gzip` of the database, then `mongorestore --archive --gzip` of that archive into a new "
    "database; the ratios are Driveback's figure (the top table's backup, restore with the key from the keyring, or "
    "restore with the passphrase) divided by the tool's.\n"
)

LEVEL_NOTES = (
    "- One backup per zstd level (`driveback backup --level N`), each to its own folder. *mongodump --gzip proxy CPU*: the "
    "raw read's CPU plus `gzip -6`'s CPU on the same plain archive. It underestimates mongodump (its Go driver and BSON "
    "handling are not counted), so *backup CPU / proxy CPU* is conservative: against mongodump itself the ratio is lower.\n"
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--levels", type=int, nargs="+", help="zstd levels to compare, one backup each (default: only the product default)")
    ap.add_argument("--ceiling-parallel", type=int, nargs="+", default=[1, 2, 4, 8], help="insert_many calls in flight for the insert ceiling")
    ap.add_argument("--write", action="store_true", help="record the tables in docs/BENCHMARKS.md")
    args = ap.parse_args()
    levels = args.levels or [None]
    tools = bool(shutil.which("mongodump") and shutil.which("mongorestore"))
    work = tempfile.mkdtemp(prefix="driveback-bench-")
    try:
        default = default_level()
        rows = [bench(n, work, levels, args.ceiling_parallel, tools) for n in args.entries]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = table(rows)
    lt = levels_table(rows, default)
    if tools:
        tt = tools_table(rows) + "\n\n" + TOOLS_NOTES.rstrip("\n")
    else:
        tt = "mongodump and mongorestore were not on the PATH: no comparison with the standard tools in this run."
    notes = NOTES.format(ps=", ".join(str(p) for p in args.ceiling_parallel))
    print(t)
    print()
    print(ceiling_lines(rows))
    print()
    print(lt)
    print()
    print(LEVEL_NOTES, end="")
    print()
    print(tt)
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
        levels = f" --levels {' '.join(map(str, args.levels))}" if args.levels else ""
        record(os.path.join(ROOT, "docs", "BENCHMARKS.md"),
               f"Measured with `scripts/bench --write{levels}` on {time.strftime('%Y-%m-%d')} ({machine}); release build; "
               "test server SecantusDB (in-memory) on loopback; TimeTrack-like data from `scripts/seed.py`.\n\n"
               f"{t}\n\n{notes}{ceiling_lines(rows)}\n\n{lt}\n\n{LEVEL_NOTES}\n{tt}\n")


def record(path, body):
    """Rewrites the top of the benchmarks page with body. Everything from its first "## " section
    on is kept (the reading of the figures, and the sections other benchmarks add, e.g.
    scripts/bench-drive), so body must not contain a "## " heading."""
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        m = re.search(r"^## ", old, re.M)
        if m:
            kept = "\n" + old[m.start():]
    with open(path, "w") as f:
        f.write("# Benchmarks\n\n" + body + kept)


if __name__ == "__main__":
    main()
