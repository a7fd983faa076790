#!/usr/bin/env python3
"""Peak resident memory of a command, split into anonymous and file-backed pages.

Usage: bench/rss_probe.py [--interval S] -- COMMAND ARGS...
Polls /proc/PID/status (VmRSS, RssAnon, RssFile) every --interval seconds while COMMAND runs and
prints one JSON line to stderr: peak_rss_mib, peak_anon_mib, peak_file_mib (memory-mapped weights
show up as RssFile), and ru_maxrss_mib from the kernel. COMMAND's stdout passes through; the exit
status is COMMAND's.
"""
import json
import resource
import subprocess
import sys
import time


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(rest.split()[0]) / 1024.0  # kB -> MiB
    except OSError:
        pass
    return out


def main():
    args = sys.argv[1:]
    interval = 0.02
    if len(args) >= 2 and args[0] == "--interval":
        interval = float(args[1])
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        sys.exit("rss_probe: usage: rss_probe.py [--interval S] -- COMMAND ARGS...")
    proc = subprocess.Popen(args)
    peak = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
    while proc.poll() is None:
        for k, v in read_status(proc.pid).items():
            peak[k] = max(peak[k], v)
        time.sleep(interval)
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mib": round(peak["VmRSS"], 1), "peak_anon_mib": round(peak["RssAnon"], 1),
                      "peak_file_mib": round(peak["RssFile"], 1), "ru_maxrss_mib": round(maxrss, 1),
                      "exit": proc.returncode}), file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
