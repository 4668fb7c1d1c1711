#!/usr/bin/env python3
"""Driveback's benchmark driver (run through scripts/bench, which builds the release binaries).

For each database size: start a fresh in-memory test server, seed a TimeTrack-like database,
measure the raw driver read (the ceiling), `driveback backup` and `driveback restore` (wall time,
documents/s, MB/s, peak RSS of the process), the archive size, and gzip -6 of the same plain
archive for comparison. Prints a Markdown table.
"""
import argparse
import gzip
import json
import os
import platform
import resource
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


def bench(entries, work):
    server, port, uri = seeded_server(entries)
    try:
        env = dict(os.environ, DRIVEBACK_PASSPHRASE="benchmark passphrase", DRIVEBACK_KEYRING_SERVICE=f"driveback-bench-{port}")
        dest = os.path.join(work, f"dest-{entries}")
        # The key is made before timing (its scrypt wrap is a one-off, never on the backup path).
        subprocess.run([DRIVEBACK, "key", "init", "--dest", f"folder:{dest}"], env=env, check=True, capture_output=True)

        raw = measured_child([RAW_READ, uri, "timetrack"], env)
        raw_stats = json.loads(raw["out"])
        backup = measured_child([DRIVEBACK, "backup", "--mongo-uri", uri, "--db", "timetrack", "--dest", f"folder:{dest}", "--json"], env)
        b = json.loads(backup["out"])
        plain = os.path.join(work, f"plain-{entries}.archive")
        subprocess.run([DRIVEBACK, "export", "--backup", b["id"], "--dest", f"folder:{dest}", "--out", plain], env=env, check=True, capture_output=True)
        t = time.perf_counter()
        gz = subprocess.run(["gzip", "-6", "-c", plain], check=True, capture_output=True).stdout
        gzip_secs = time.perf_counter() - t
        restore = measured_child([DRIVEBACK, "restore", "--backup", b["id"], "--dest", f"folder:{dest}", "--mongo-uri", uri, "--db", "timetrack_restored", "--yes", "--json"], env)
        docs = raw_stats["documents"]
        mb = raw_stats["bytes"] / 1e6
        return {
            "entries": entries,
            "documents": docs,
            "bson_mb": mb,
            "raw_secs": raw_stats["seconds"],
            "raw_docs_s": docs / raw_stats["seconds"],
            "raw_rss": raw["rss_kib"] / 1024,
            "backup_secs": backup["secs"],
            "backup_docs_s": docs / backup["secs"],
            "backup_mb_s": mb / backup["secs"],
            "backup_rss": backup["rss_kib"] / 1024,
            "archive_bytes": b["bytes"],
            "plain_bytes": os.path.getsize(plain),
            "gzip_bytes": len(gz),
            "gzip_secs": gzip_secs,
            "restore_secs": restore["secs"],
            "restore_docs_s": docs / restore["secs"],
            "restore_rss": restore["rss_kib"] / 1024,
        }
    finally:
        server.terminate()
        server.wait()


def table(rows):
    out = ["| entries | docs | BSON MB | raw read s | raw docs/s | backup s | backup docs/s | backup MB/s | backup / raw | backup peak RSS MiB | file MB | file / gzip -6 | restore s | restore docs/s | restore peak RSS MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['entries']} | {r['documents']} | {r['bson_mb']:.1f} | {r['raw_secs']:.2f} | {r['raw_docs_s']:.0f} | {r['backup_secs']:.2f} | {r['backup_docs_s']:.0f} | "
            f"{r['backup_mb_s']:.1f} | {r['raw_secs'] / r['backup_secs'] * 100:.0f}% | {r['backup_rss']:.1f} | {r['archive_bytes'] / 1e6:.2f} | "
            f"{r['archive_bytes'] / r['gzip_bytes']:.2f}x | {r['restore_secs']:.1f} | {r['restore_docs_s']:.0f} | {r['restore_rss']:.1f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--write", action="store_true", help="record the table in docs/BENCHMARKS.md")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="driveback-bench-")
    try:
        rows = [bench(n, work) for n in args.entries]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = table(rows)
    print(t)
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
        path = os.path.join(ROOT, "docs", "BENCHMARKS.md")
        # Sections other benchmarks add at the end (scripts/bench-drive) are kept.
        kept = ""
        if os.path.exists(path):
            old = open(path).read()
            marker = "\n## Google Drive (emulator on loopback)\n"
            if marker in old:
                kept = old[old.index(marker):]
        with open(path, "w") as f:
            f.write("# Benchmarks\n\n")
            f.write(f"Measured with `scripts/bench --write` on {time.strftime('%Y-%m-%d')} ({machine}); release build; "
                    "test server SecantusDB (in-memory) on loopback; TimeTrack-like data from `scripts/seed.py`.\n\n")
            f.write(t + "\n\n")
            f.write(
                "- *raw read*: the plain Rust driver reading every collection as raw BSON in natural order "
                "(`examples/raw_read.rs`), in the same run: the ceiling a backup can reach.\n"
                "- *backup / raw*: raw read time divided by backup time (target: at least 90%).\n"
                "- *peak RSS*: the measured process's own maximum resident set (target: flat from 20k to 200k documents).\n"
                "- *file / gzip -6*: the encrypted backup's size against `gzip -6` of the same plain archive "
                "(what `mongodump --gzip` makes).\n")
            f.write(kept)


if __name__ == "__main__":
    main()
