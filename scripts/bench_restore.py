#!/usr/bin/env python3
"""Restore benchmark: one seeded test server, one backup, then repeated restores of it.

Seeds a TimeTrack-like database once, makes one backup, then restores it `--runs` times with
each binary given by `--bin` (interleaved: A, B, A, B, ...), every run into a new database, and
prints each run's wall time, client CPU and peak RSS and the median per binary. With
`--parallel N [N ...]`, every binary runs `driveback restore --parallel N` for each value, all the
(binary, N) combinations interleaved in each round, with the median per combination. Comparing two builds in one
run of this script puts both under the same load. With DRIVEBACK_LOG=driveback_engine=debug the
engine's restore timings (reader, loader, verification, indexes, swap) are printed too.

Run through scripts/bench-restore (a throwaway keyring), e.g.
  scripts/bench-restore --entries 50000 --runs 3 --bin target/release/driveback
  scripts/bench-restore --entries 50000 --runs 3 --parallel 1 2 4 8
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", action="append", help="driveback binaries to compare (default: the release build)")
    ap.add_argument("--parallel", type=int, nargs="+", help="pass `--parallel N` to `driveback restore` for each value (default: the setting)")
    ap.add_argument("--perf", help="record the first run of the first binary with `perf record -g` into this file")
    ap.add_argument("--callgrind", action="store_true", help="after the timed runs, one run of each binary under callgrind: instructions executed by the restore process")
    args = ap.parse_args()
    bins = args.bin or [bench.DRIVEBACK]
    # Every (binary, --parallel) combination, in the order each round runs them.
    combos = [(x, p) for x in bins for p in (args.parallel or [None])]

    def label(c):
        return c[0] if c[1] is None else f"{c[0]} p={c[1]}"

    def restore_cmd(c, db):
        cmd = [c[0], "restore", "--backup", b["id"], "--dest", f"folder:{dest}", "--mongo-uri", uri, "--db", db, "--yes", "--json"]
        return cmd if c[1] is None else cmd + ["--parallel", str(c[1])]

    work = tempfile.mkdtemp(prefix="driveback-bench-restore-")
    server, port, uri = bench.seeded_server(args.entries)
    try:
        env = dict(os.environ, DRIVEBACK_PASSPHRASE="benchmark passphrase", DRIVEBACK_KEYRING_SERVICE=f"driveback-bench-{port}")
        dest = os.path.join(work, "dest")
        subprocess.run([bins[0], "key", "init", "--dest", f"folder:{dest}"], env=env, check=True, capture_output=True)
        b = json.loads(subprocess.run([bins[0], "backup", "--mongo-uri", uri, "--db", "timetrack", "--dest", f"folder:{dest}", "--json"],
                                      env=env, check=True, capture_output=True, text=True).stdout)
        print(f"backup {b['id']}: {b['bytes']} bytes, {args.entries} entries", flush=True)
        secs = {c: [] for c in combos}
        rss = {c: [] for c in combos}
        cpu = {c: [] for c in combos}
        n = 0
        for run in range(args.runs):
            for c in combos:
                n += 1
                cmd = restore_cmd(c, f"restored_{n}")
                if args.perf and run == 0 and c == combos[0]:
                    cmd = ["perf", "record", "-g", "-F", "499", "-o", args.perf, "--"] + cmd
                r = bench.measured_child(cmd, env)
                secs[c].append(r["secs"])
                rss[c].append(r["rss_kib"] / 1024)
                cpu[c].append(r["cpu_secs"])
                print(f"run {run + 1} {label(c)}: {r['secs']:.2f} s, client CPU {r['cpu_secs']:.2f} s, peak RSS {r['rss_kib'] / 1024:.1f} MiB", flush=True)
                for line in r["err"].splitlines():
                    if "restore timings" in line or "reader timings" in line:
                        print("   ", line.strip(), flush=True)
                # Each run's database is dropped so the server's memory does not grow run to run.
                subprocess.run([os.path.join(bench.VENV, "bin", "python"), "-c",
                                f"import pymongo;pymongo.MongoClient({uri!r}).drop_database('restored_{n}')"], check=True)
        instructions = {}
        if args.callgrind:
            for c in combos:
                n += 1
                out = os.path.join(work, f"callgrind.{n}")
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + restore_cmd(c, f"restored_{n}")
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                with open(out) as f:
                    instructions[c] = next(int(l.split()[1]) for l in f if l.startswith("summary:") or l.startswith("totals:"))
                print(f"callgrind {label(c)}: {instructions[c]:,} instructions", flush=True)
                subprocess.run([os.path.join(bench.VENV, "bin", "python"), "-c",
                                f"import pymongo;pymongo.MongoClient({uri!r}).drop_database('restored_{n}')"], check=True)
        print()
        print("| binary | runs | restore s (median) | restore s (all) | client CPU s (median) | peak RSS MiB (median) | instructions (callgrind) |")
        print("|---|---|---|---|---|---|---|")
        for c in combos:
            ins = f"{instructions[c]:,}" if c in instructions else "-"
            print(f"| {label(c)} | {len(secs[c])} | {statistics.median(secs[c]):.2f} | {', '.join(f'{s:.2f}' for s in secs[c])} | "
                  f"{statistics.median(cpu[c]):.2f} | {statistics.median(rss[c]):.1f} | {ins} |")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
