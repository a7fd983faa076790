#!/usr/bin/env bash
# Deterministic text corpora built from Debian packages (the only text source reachable here).
#   data/corpus.sh NAME        -> .cache/data/NAME.txt   (prints the path; idempotent)
#   data/corpus.sh --list
# Each recipe pins the package version and checks the sha256 of the text it produces, so two
# machines measure on the same bytes. Provenance and licences: data/README.md. The texts are not
# committed (size; they are reproducible from the recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.cache/data
DEBS=$ROOT/.cache/deb

# name | package=version | file inside the package | normalisation | sha256 of the result
RECIPES=(
  "heldout-en|debian-reference-en=2.100|usr/share/debian-reference/debian-reference.en.txt.gz|dedent4|3db053786723aa2bf4ec92e3caf604216accdd1089571e84811abd01cd29d8df"
)

list() { for r in "${RECIPES[@]}"; do echo "${r%%|*}"; done; }
if [ "${1:-}" = "--list" ] || [ $# -ne 1 ]; then
  [ $# -eq 1 ] || echo "usage: data/corpus.sh NAME   (names below)" >&2
  list; [ $# -eq 1 ]; exit $?
fi

name=$1
recipe=""
for r in "${RECIPES[@]}"; do [ "${r%%|*}" = "$name" ] && recipe=$r; done
[ -n "$recipe" ] || { echo "data/corpus.sh: unknown corpus '$name' (known: $(list | tr '\n' ' '))" >&2; exit 2; }
IFS='|' read -r _ pkgver member norm want <<<"$recipe"
pkg=${pkgver%%=*}; ver=${pkgver#*=}
dest=$OUT/$name.txt
if [ -f "$dest" ]; then echo "$dest"; exit 0; fi

mkdir -p "$OUT" "$DEBS"
deb=$(ls "$DEBS/${pkg}_${ver}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  (cd "$DEBS" && apt-get download "$pkgver" >/dev/null 2>&1) ||
    (apt-get update >/dev/null 2>&1 && cd "$DEBS" && apt-get download "$pkgver" >/dev/null) ||
    { echo "data/corpus.sh: cannot download Debian package $pkgver" >&2; exit 1; }
  deb=$(ls "$DEBS/${pkg}_${ver}_"*.deb | head -1)
fi
tmp=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/x"
src=$tmp/x/$member
case $src in *.gz) zcat "$src" ;; *) cat "$src" ;; esac > "$tmp/raw.txt"
case $norm in
  # The plain-text rendering indents every body line by 4 spaces; drop that and trailing blanks.
  dedent4) sed -e 's/^    //' -e 's/[[:space:]]*$//' "$tmp/raw.txt" > "$tmp/text.txt" ;;
  none) cp "$tmp/raw.txt" "$tmp/text.txt" ;;
  *) echo "data/corpus.sh: unknown normalisation $norm" >&2; exit 1 ;;
esac
got=$(sha256sum "$tmp/text.txt" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "data/corpus.sh: warning: $name sha256 $got differs from the recorded $want" >&2
fi
mv "$tmp/text.txt" "$dest"
echo "$dest"
