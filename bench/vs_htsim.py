#!/usr/bin/env python3
"""Helpers for bench/vs_htsim.sh: one scenario described to both simulators, and their FCTs read back.

  vs_htsim.py topo HOSTS LATENCY_NS > ft.topo          htsim's fat-tree topology file
  vs_htsim.py spec HOSTS LATENCY_NS MTU CWND_BYTES QUEUE_BYTES LB MATRIX > spec.json
                                                        the same fabric as a `lookahead net run` spec
  vs_htsim.py convert HTSIM.cm > lookahead.cm           htsim connection matrix -> ours (spec.h format)
  vs_htsim.py fct-htsim STDOUT HTSIM.cm                 htsim_ndp's "Flow ... finished at T" lines
  vs_htsim.py fct-lookahead FLOWS.csv                   `net run --csv`'s PREFIX_flows.csv
  vs_htsim.py summarize TABLE.md                        per (hosts, lb): CPU ratio and mean-FCT difference

The fct-* commands print "finished flows, mean FCT, p99 FCT, last FCT (us)" on one line; both FCTs are
first byte sent to last ACK received at the sender (htsim's NdpSrc prints the time its last packet is
acknowledged; lookahead's fct_us ends at the sender's last ACK too).

Fat-tree shapes (1:1, 100 Gbit/s everywhere, every tier the same latency): the k = 16 fat-tree at
1024 hosts and radix-32 switches above it, written so that both simulators build the same graph:
ToRs with HPT hosts and HPT uplinks, aggregation switches with one link per ToR of their pod and as
many up, core switches with one link per pod; aggregation switch j of every pod links to core group
j (htsim's FatTreeTopology wiring, and lookahead's FatTreeSpec contract).
"""
import csv
import json
import math
import statistics
import sys

# hosts -> (pods, ToRs per pod, hosts per ToR, aggs per pod, cores)
SHAPES = {
    1024: (16, 8, 8, 8, 64),
    4096: (16, 16, 16, 16, 256),
    16384: (64, 16, 16, 16, 256),
}


def shape(hosts):
    if hosts not in SHAPES:
        sys.exit(f"vs_htsim.py: no fat-tree shape for {hosts} hosts (have {sorted(SHAPES)})")
    return SHAPES[hosts]


def topo(hosts, latency_ns):
    pods, tors, hpt, aggs, cores = shape(hosts)
    tier = (
        "Tier {t}\nOversubscribed 1\nDownlink_speed_Gbps 100\nRadix_Down {down}\nRadix_Up {up}\n"
        "Downlink_Latency_ns {lat}\nSwitch_Latency_ns 0\n{bundle}"
    )
    lat = int(latency_ns)
    out = [f"Nodes {hosts}\nTiers 3\nPodsize {hosts // pods}\n"]
    out.append(tier.format(t=0, down=hpt, up=aggs, lat=lat, bundle=""))
    out.append(tier.format(t=1, down=tors, up=cores // aggs, lat=lat, bundle="Bundle 1\n"))
    out.append(f"Tier 2\nDownlink_speed_Gbps 100\nRadix_Down {pods}\nDownlink_Latency_ns {lat}\n"
               "Switch_Latency_ns 0\nBundle 1\n")
    print("\n".join(out))


def spec(hosts, latency_ns, mtu, cwnd, queue, lb, matrix):
    pods, tors, hpt, aggs, cores = shape(hosts)
    print(json.dumps({
        "about": "bench/vs_htsim.sh: the fabric of the htsim topology file, htsim's packet accounting",
        "topology": {"kind": "fat_tree", "pods": pods, "tors_per_pod": tors, "hosts_per_tor": hpt,
                     "aggs_per_pod": aggs, "cores": cores, "host_gbps": 100,
                     "host_latency_ns": float(latency_ns), "fabric_latency_ns": float(latency_ns)},
        # htsim's NDP packet is MTU bytes on the wire and carries MTU bytes of the flow: no header.
        "network": {"mtu": int(mtu), "header_bytes": 0, "lb": lb, "init_cwnd_bytes": int(cwnd),
                    "max_cwnd_bytes": int(cwnd), "port_buffer_bytes": int(queue)},
        "matrix": matrix,
    }, indent=1))


def read_htsim_matrix(path):
    """Yields (id, src, dst, start_us, size) for every connection line of an htsim .cm file."""
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok or tok[0].startswith("#") or "->" not in tok[0]:
                continue
            src, dst = tok[0].split("->")
            fields = {tok[i]: tok[i + 1] for i in range(1, len(tok) - 1, 2)}
            unknown = set(fields) - {"id", "start", "size"}
            if unknown or "size" not in fields:
                sys.exit(f"{path}:{lineno}: only 'id', 'start' and 'size' are converted (got {sorted(fields)})")
            yield fields.get("id", str(lineno)), int(src), int(dst), float(fields.get("start", 0)), int(fields["size"])


def convert(path):
    for fid, src, dst, start, size in read_htsim_matrix(path):
        print(f"id c{fid} {src}->{dst} size {size} start_us {start:g}")


def summary(fcts, total):
    fcts.sort()
    if not fcts:
        print(f"0/{total} - - -")
        return
    p99 = fcts[min(len(fcts) - 1, math.ceil(0.99 * len(fcts)) - 1)]
    print(f"{len(fcts)}/{total} {sum(fcts) / len(fcts):.1f} {p99:.1f} {fcts[-1]:.1f}")


def fct_htsim(stdout, matrix):
    conns = list(read_htsim_matrix(matrix))
    if any(start != 0 for _, _, _, start, _ in conns):
        sys.exit("vs_htsim.py: fct-htsim needs every flow to start at 0 (htsim prints finish times only)")
    fcts = []
    with open(stdout) as f:
        for line in f:
            if line.startswith("Flow ") and " finished at " in line:
                fcts.append(float(line.split(" finished at ")[1].split()[0]))
    summary(fcts, len(conns))


def fct_lookahead(flows_csv):
    fcts, total = [], 0
    with open(flows_csv) as f:
        for row in csv.DictReader(f):
            total += 1
            if row["state"] == "finished":
                fcts.append(float(row["fct_us"]))
    summary(fcts, total)


def summarize(table):
    """Reads vs_htsim.sh's table rows; prints one line per (hosts, lb): medians of user CPU and RSS
    over rounds and seeds, and the mean FCT averaged over them, for each simulator."""
    runs = {}
    with open(table) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 14 or not cells[0].isdigit():
                continue
            hosts, lb, _seed, sim, _round, _wall, user, rss, _ev, _fin, mean, _p99, last, _load = cells
            r = runs.setdefault((int(hosts), lb), {}).setdefault(sim, {"user": [], "rss": [], "mean": [], "last": []})
            r["user"].append(float(user))
            r["rss"].append(float(rss))
            if mean != "-":
                r["mean"].append(float(mean))
                r["last"].append(float(last))
    print("| hosts | lb | user s lookahead / htsim (median) | CPU ratio | peak RSS MiB lookahead / htsim | "
          "mean FCT us lookahead / htsim | difference | last FCT us lookahead / htsim |")
    print("|---|---|---|---|---|---|---|---|")
    med = statistics.median
    avg = statistics.fmean
    for (hosts, lb), sims in sorted(runs.items()):
        lh, ht = sims.get("lookahead"), sims.get("htsim")
        if not lh or not lh["mean"]:
            continue
        if not ht or not ht["mean"]:
            print(f"| {hosts} | {lb} | {med(lh['user']):.2f} / - | - | {med(lh['rss']):.0f} / - | "
                  f"{avg(lh['mean']):.1f} / - | - | {avg(lh['last']):.1f} / - |")
            continue
        print(f"| {hosts} | {lb} | {med(lh['user']):.2f} / {med(ht['user']):.2f} | "
              f"{med(ht['user']) / med(lh['user']):.1f}x less | {med(lh['rss']):.0f} / {med(ht['rss']):.0f} | "
              f"{avg(lh['mean']):.1f} / {avg(ht['mean']):.1f} | {100 * (avg(lh['mean']) / avg(ht['mean']) - 1):+.1f}% | "
              f"{avg(lh['last']):.1f} / {avg(ht['last']):.1f} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    commands = {"topo": (topo, 2), "spec": (spec, 7), "convert": (convert, 1),
                "fct-htsim": (fct_htsim, 2), "fct-lookahead": (fct_lookahead, 1), "summarize": (summarize, 1)}
    if cmd not in commands or len(args) != commands[cmd][1]:
        sys.exit(__doc__)
    fn, _ = commands[cmd]
    fn(*[int(a) if a.isdigit() else a for a in args])


if __name__ == "__main__":
    main()
