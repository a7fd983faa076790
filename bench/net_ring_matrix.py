#!/usr/bin/env python3
"""Writes a connection matrix (net/scenario/spec.h format) for a ring all-reduce of BYTES over
HOSTS hosts: 2*(HOSTS-1) steps (reduce-scatter then all-gather); in every step host i sends one
chunk of BYTES/HOSTS to host i+1, after it has received the previous step's chunk from i-1.

usage: net_ring_matrix.py HOSTS BYTES > ring.cm
"""
import sys


def main():
    hosts, total = int(sys.argv[1]), int(sys.argv[2])
    chunk = max(1, total // hosts)
    steps = 2 * (hosts - 1)
    out = sys.stdout
    out.write(f"# ring all-reduce: {hosts} hosts, {total} bytes, {steps} steps of {chunk} bytes\n")
    for s in range(steps):
        for i in range(hosts):
            dst = (i + 1) % hosts
            fid = f"s{s}h{i}"
            after = f" after s{s - 1}h{(i - 1) % hosts}" if s > 0 else ""
            out.write(f"id {fid} {i}->{dst} size {chunk} group step{s}{after}\n")


if __name__ == "__main__":
    main()
