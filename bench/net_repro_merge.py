#!/usr/bin/env python3
"""Merge `lookahead net repro` CSVs (runs of different slices of the grid) into one.

Usage: net_repro_merge.py OUT.csv IN.csv [IN.csv ...] [--markdown OUT.md]

Rows are keyed by (fabric, failed, algo, size_bytes, scheme); a later file's row replaces an
earlier one's. ratio_to_spray is recomputed against the spray row of the same fabric, algorithm and
size (0 where spray did not finish or was not run). Columns: the first file's header (a column a
later file lacks is left empty). Rows are sorted by fabric, algorithm, size and scheme order.
net-repro-seeds.csv files (a `seed` column) merge the same way with the seed in the key, and
ratio_to_spray_same_seed recomputed against spray of the same seed. With
--markdown, also writes one table per fabric: rows algorithm x size, columns schemes, cells
"CCT (ratio)", DNF, or "not run". Then redraw the plots with
`lookahead net repro --plot-only --out DIR` (DIR holding OUT.csv as net-repro.csv).
"""
import csv
import os
import sys

SCHEMES = ["ecmp", "mprdma-2", "mprdma-4", "mprdma-8", "spray", "reps", "ethereal", "ethereal-known"]
ALGOS = ["direct", "hd", "ring", "dbt"]
FABRICS = ["leaf_spine", "leaf_spine_fail", "fat_tree"]


def order(values, known):
    return sorted(values, key=lambda v: (known.index(v) if v in known else len(known), v))


def main(argv):
    md_path = None
    if "--markdown" in argv:
        i = argv.index("--markdown")
        md_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 3:
        sys.exit(__doc__)
    out, inputs = argv[1], argv[2:]
    header, rows = None, {}
    for path in inputs:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if header is None:
                header = reader.fieldnames
                seeded = "seed" in header
            elif ("seed" in reader.fieldnames) != seeded:
                sys.exit(f"{path}: cannot merge a net-repro-seeds.csv with a net-repro.csv")
            for r in reader:
                key = (r["fabric"], r["failed"], r["algo"], r["size_bytes"], r["scheme"])
                r["_file"] = path
                rows[key + ((r["seed"],) if seeded else ())] = r
    ratio = "ratio_to_spray_same_seed" if seeded else "ratio_to_spray"
    spray = {(k[0], k[2], k[3]) + k[5:]: r for k, r in rows.items() if k[4] == "spray"}
    for k, r in rows.items():
        s = spray.get((k[0], k[2], k[3]) + k[5:])
        if s is not None and s["_file"] == r["_file"]:
            continue  # the run's own ratio (computed from unrounded times)
        ok = s is not None and s["finished"] == "1" and r["finished"] == "1"
        r[ratio] = f"{float(r['cct_us']) / float(s['cct_us']):.4f}" if ok else "0.0000"

    def sort_key(k):
        return (FABRICS.index(k[0]) if k[0] in FABRICS else 99,
                ALGOS.index(k[2]) if k[2] in ALGOS else 99, int(k[3]), SCHEMES.index(k[4]) if k[4] in SCHEMES else 99,
                int(k[5]) if seeded else 0)

    tmp = out + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for k in sorted(rows, key=sort_key):
            w.writerow([rows[k].get(c) or "" for c in header])
    os.replace(tmp, out)
    if not md_path:
        return
    if seeded:
        sys.exit("--markdown: for a net-repro-seeds.csv use bench/net_repro_seeds_md.py")
    md = []
    for fab in order({k[0] for k in rows}, FABRICS):
        keys = [k for k in rows if k[0] == fab]
        schemes = order({k[4] for k in keys}, SCHEMES)
        failed = next((k[1] for k in keys if k[1]), "")
        md.append(f"\n#### {fab}{f' (failed cable {failed})' if failed else ''}: all-reduce CCT in us (ratio to spray)\n")
        md.append("| algo | size | " + " | ".join(schemes) + " |")
        md.append("|---|---|" + "---|" * len(schemes))
        for algo in order({k[2] for k in keys}, ALGOS):
            for size in sorted({int(k[3]) for k in keys if k[2] == algo}):
                cells = []
                for s in schemes:
                    r = rows.get((fab, failed, algo, str(size), s))
                    if r is None:
                        cells.append("not run")
                    elif r["finished"] != "1":
                        cells.append("DNF")
                    else:
                        ratio = float(r["ratio_to_spray"])
                        cells.append(f"{float(r['cct_us']):.0f} ({ratio:.2f})" if ratio > 0 else f"{float(r['cct_us']):.0f}")
                md.append(f"| {algo} | {size >> 20} MiB | " + " | ".join(cells) + " |")
        qps = {}
        for k in keys:
            qps[k[4]] = max(qps.get(k[4], 0), int(rows[k]["max_qps_per_host"]))
        md.append("\nQPs per host (max over steps, algorithms and sizes): " + "; ".join(f"{s} {qps[s]}" for s in schemes))
    tmp = md_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(tmp, md_path)


if __name__ == "__main__":
    main(sys.argv)
