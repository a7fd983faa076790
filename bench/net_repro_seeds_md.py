#!/usr/bin/env python3
"""One markdown table per fabric from `lookahead net repro --seeds N`'s net-repro-seeds.csv.

Usage: net_repro_seeds_md.py net-repro-seeds.csv > tables.md

Rows algorithm x size, columns schemes. A cell is the mean CCT over the seeds [min-max] (mean / spray's
mean over the same seeds) where every seed finished, "DNF in k of n seeds (Q QPs gave up)" where some
did not (Q summed over the seeds that did not finish), and "DNF (Q QPs gave up)" where none did. The
ratio is left out where spray did not finish every seed. (`net repro`'s own net-repro.md has the same
cells as one table per algorithm; this layout is docs/results/net-singlepath.md's.)
"""
import csv
import statistics
import sys

# one scheme/algorithm/fabric order for every net repro table (bench/ is on sys.path: the script's own folder)
from net_repro_merge import ALGOS, FABRICS, SCHEMES, order


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = {}
    with open(sys.argv[1], newline="") as f:
        reader = csv.DictReader(f)
        need = {"fabric", "failed", "algo", "size_bytes", "scheme", "seed", "finished", "cct_us", "failed_qps"}
        if not need <= set(reader.fieldnames or []):
            sys.exit(f"{sys.argv[1]}: not a net-repro-seeds.csv (missing columns {sorted(need - set(reader.fieldnames or []))})")
        for r in reader:
            key = (r["fabric"], r["failed"], r["algo"], int(r["size_bytes"]), r["scheme"])
            runs.setdefault(key, []).append(r)

    def mean_if_all_finished(key):
        rs = runs.get(key, [])
        if not rs or any(r["finished"] != "1" for r in rs):
            return None
        return statistics.fmean(float(r["cct_us"]) for r in rs)

    out = []
    for fab in order({k[0] for k in runs}, FABRICS):
        keys = [k for k in runs if k[0] == fab]
        schemes = order({k[4] for k in keys}, SCHEMES)
        failed = next((k[1] for k in keys if k[1]), "")
        seeds = max(len(runs[k]) for k in keys)
        out.append(f"\n#### {fab}{f' (failed cable {failed})' if failed else ''}: all-reduce CCT in us, "
                   f"mean of {seeds} seeds [min-max] (ratio of means to spray)\n")
        out.append("| algo | size | " + " | ".join(schemes) + " |")
        out.append("|---|---|" + "---|" * len(schemes))
        for algo in order({k[2] for k in keys}, ALGOS):
            for size in sorted({k[3] for k in keys if k[2] == algo}):
                spray = mean_if_all_finished((fab, failed, algo, size, "spray"))
                cells = []
                for s in schemes:
                    rs = runs.get((fab, failed, algo, size, s))
                    if not rs:
                        cells.append("not run")
                        continue
                    dnf = [r for r in rs if r["finished"] != "1"]
                    gave_up = sum(int(r["failed_qps"]) for r in dnf)
                    if dnf:
                        part = f" in {len(dnf)} of {len(rs)} seeds" if len(dnf) < len(rs) else ""
                        cells.append(f"DNF{part} ({gave_up} QPs gave up)" if gave_up else f"DNF{part}")
                        continue
                    cct = [float(r["cct_us"]) for r in rs]
                    mean = statistics.fmean(cct)
                    ratio = f" ({mean / spray:.2f})" if spray else ""
                    cells.append(f"{mean:.0f} [{min(cct):.0f}-{max(cct):.0f}]{ratio}")
                out.append(f"| {algo} | {size >> 20} MiB | " + " | ".join(cells) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
