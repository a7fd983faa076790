#!/usr/bin/env bash
# Sequential O_DIRECT read bandwidth of the disk holding .cache (the slow tier of the Read-ME
# serving system, docs/results/readme-serving.md "Slow tier"). Writes a GiB-sized test file under
# .cache/diskbw/ (random data, so compression or dedup cannot help), reads it with bench/diskbw.c
# at 1 MiB, 4 MiB and 64 MiB requests (64 MiB: the tier's pread size) with 1 and 2 threads, prints one JSON line per setting, deletes the file.
# Usage: bench/disk_read_bw.sh [GiB=4]
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-4}
DIR=.cache/diskbw
mkdir -p "$DIR"
cc -O2 -pthread bench/diskbw.c -o "$DIR/diskbw"
FILE=$DIR/test.bin
trap 'rm -f "$FILE"' EXIT
# oflag=direct: the written data does not stay in the page cache either.
head -c $((GIB << 30)) /dev/urandom | dd of="$FILE" bs=4M iflag=fullblock oflag=direct status=none
for block in 1048576 4194304 67108864; do
  for threads in 1 2; do
    "$DIR/diskbw" "$FILE" "$block" "$threads" 3
  done
done
