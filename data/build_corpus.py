#!/usr/bin/env python3
"""Assemble the multi-domain calibration corpus for Read-ME from Debian packages.

Read-ME extracts experts from activation sparsity per *domain* (the paper uses the 7 RedPajama
domains). Nothing may be downloaded from a data hub here, so the domains come from text that Debian
ships in packages (see data/README.md for provenance and licences):

  code        Python 3.11 standard library sources          libpython3.11-stdlib
  docs        Debian Reference (HTML -> text) + Linux man-pages section 2/3 (roff -> text)
                                                             debian-reference-en, manpages-dev
  dictionary  GNU Collaborative International Dictionary of English (1913 Webster)   dict-gcide
  quotes      English fortune cookies                       fortunes
  german      German fortune cookies                        fortunes-de
  russian     Russian fortune cookies                       fortunes-ru

Each domain is cut into documents (a source file, a man page, a dictionary entry, a fortune), and
every document goes to exactly one split by a hash of its text, so splits are deterministic and
independent of file order: heldout (10%), calibration (10%), train (80%). A domain is capped at
--max-bytes (default 4 MB) by taking documents in hash order.

Output (OUT, default .cache/corpus): OUT/<domain>/{calibration,train,heldout}.txt, documents
separated by a blank line, and OUT/manifest.json with package versions, byte counts and sha256 of
every split. Idempotent: if the manifest exists and matches this script's version, nothing is done.
"""
import argparse
import glob
import gzip
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

RECIPE_VERSION = 1
DOMAINS = {
    "code": ["libpython3.11-stdlib"],
    "docs": ["debian-reference-en", "manpages-dev"],
    "dictionary": ["dict-gcide"],
    "quotes": ["fortunes"],
    "german": ["fortunes-de"],
    "russian": ["fortunes-ru"],
}
SPLITS = (("heldout", 10), ("calibration", 10), ("train", 80))  # percent, in hash order


def log(msg):
    print(f"corpus: {msg}", file=sys.stderr)


def fetch_package(name, workdir):
    """apt-get download + dpkg-deb -x; returns (version, extracted root)."""
    subprocess.run(["apt-get", "download", "-q", name], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    debs = sorted(glob.glob(os.path.join(workdir, f"{name}_*.deb")))
    if not debs:
        raise SystemExit(f"corpus: error: apt-get download {name} produced no .deb")
    deb = debs[-1]
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    root = os.path.join(workdir, name)
    os.makedirs(root, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return version, root


def read_text(path):
    data = open(path, "rb").read()
    if path.endswith(".gz") or path.endswith(".dz"):
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _HtmlText(html.parser.HTMLParser):
    SKIP = {"script", "style", "head"}

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in ("p", "div", "br", "li", "pre", "h1", "h2", "h3", "h4", "tr", "dt", "dd"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_documents(root):
    for path in sorted(glob.glob(os.path.join(root, "usr/share/debian-reference/*.en.html"))):
        parser = _HtmlText()
        parser.feed(read_text(path))
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts))
        # One document per paragraph group of ~2 KB, so the hash split spreads a chapter out.
        chunk = []
        for para in text.split("\n\n"):
            para = re.sub(r"[ \t]+", " ", para).strip()
            if para:
                chunk.append(para)
            if sum(map(len, chunk)) > 2000:
                yield "\n\n".join(chunk)
                chunk = []
        if chunk:
            yield "\n\n".join(chunk)


def roff_to_text(src):
    out = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            macro = parts[0]
            arg = parts[1] if len(parts) > 1 else ""
            if macro in (".SH", ".SS"):
                out.append("\n" + arg.strip('"'))
            elif macro in (".B", ".I", ".BR", ".IR", ".RB", ".RI", ".BI", ".IB"):
                out.append(re.sub(r'"', "", arg))
            elif macro in (".PP", ".P", ".LP", ".TP", ".IP"):
                out.append("")
            continue
        out.append(line)
    text = "\n".join(out)
    text = text.replace("\\[aq]", "'").replace("\\[dq]", '"').replace("\\[rs]", "\\")
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\\[[a-z]{1,4}\]|\\&|\\e", "", text).replace("\\-", "-")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def manpage_documents(root):
    for path in sorted(glob.glob(os.path.join(root, "usr/share/man/man*/*.gz"))):
        text = roff_to_text(read_text(path))
        if len(text) > 200:
            yield text


def python_documents(root):
    for path in sorted(glob.glob(os.path.join(root, "usr/lib/python3*/**/*.py"), recursive=True)):
        if "/test/" in path or "/tests/" in path or os.path.islink(path):
            continue
        text = read_text(path).strip()
        if len(text) > 200:
            yield text[:20000]  # long modules are cut so no single file dominates


def gcide_documents(root):
    text = read_text(os.path.join(root, "usr/share/dictd/gcide.dict.dz"))
    # Entries start at column 0 with a headword followed by a backslash pronunciation.
    for entry in re.split(r"\n(?=[A-Z][^\n\\]*\\[^\n]*\\)", text):
        entry = entry.strip()
        if 40 < len(entry) < 20000 and not entry.startswith("00-database"):
            yield entry


def fortune_documents(root):
    # Each cookie file may have a ".u8" twin (a symlink or a UTF-8 copy): read each real file once,
    # preferring the UTF-8 twin, and skip the ".dat" indexes.
    seen = set()
    for path in sorted(glob.glob(os.path.join(root, "usr/share/games/fortunes/**/*"), recursive=True)):
        if path.endswith(".dat") or path.endswith(".u8") or not os.path.isfile(path):
            continue
        twin = path + ".u8"
        real = os.path.realpath(twin if os.path.isfile(twin) else path)
        if real in seen:
            continue
        seen.add(real)
        for cookie in re.split(r"\n%\n", read_text(real)):
            cookie = cookie.strip()
            if len(cookie) > 20:
                yield cookie


EXTRACTORS = {
    "libpython3.11-stdlib": python_documents,
    "debian-reference-en": html_documents,
    "manpages-dev": manpage_documents,
    "dict-gcide": gcide_documents,
    "fortunes": fortune_documents,
    "fortunes-de": fortune_documents,
    "fortunes-ru": fortune_documents,
}


def doc_hash(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build(out, max_bytes, min_bytes):
    tmp_out = out + ".tmp"
    shutil.rmtree(tmp_out, ignore_errors=True)
    os.makedirs(tmp_out)
    manifest = {"recipe_version": RECIPE_VERSION, "max_bytes_per_domain": max_bytes, "domains": {}}
    with tempfile.TemporaryDirectory() as work:
        for domain, packages in DOMAINS.items():
            docs, versions = {}, {}
            for pkg in packages:
                version, root = fetch_package(pkg, work)
                versions[pkg] = version
                for text in EXTRACTORS[pkg](root):
                    docs.setdefault(doc_hash(text), text)  # identical documents count once
            ordered = sorted(docs.items())  # hash order: deterministic, unrelated to file order
            kept, total = [], 0
            for h, text in ordered:
                if total >= max_bytes:
                    break
                kept.append((h, text))
                total += len(text.encode("utf-8"))
            if total < min_bytes:
                raise SystemExit(f"corpus: error: domain '{domain}' has only {total} bytes (< {min_bytes})")
            # Split by the hash value itself, so adding documents never moves existing ones.
            splits = {name: [] for name, _ in SPLITS}
            for h, text in kept:
                bucket = int(h[:8], 16) % 100
                edge = 0
                for name, pct in SPLITS:
                    edge += pct
                    if bucket < edge:
                        splits[name].append(text)
                        break
            ddir = os.path.join(tmp_out, domain)
            os.makedirs(ddir)
            info = {"packages": versions, "documents": len(kept), "splits": {}}
            for name, texts in splits.items():
                body = "\n\n".join(texts) + "\n"
                with open(os.path.join(ddir, f"{name}.txt"), "w", encoding="utf-8") as f:
                    f.write(body)
                raw = body.encode("utf-8")
                info["splits"][name] = {"documents": len(texts), "bytes": len(raw),
                                        "sha256": hashlib.sha256(raw).hexdigest()}
            manifest["domains"][domain] = info
            log(f"{domain}: {len(kept)} documents, {total / 1e6:.2f} MB ({', '.join(versions.values())})")
    with open(os.path.join(tmp_out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp_out, out)  # the corpus appears whole or not at all


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".cache", "corpus"))
    ap.add_argument("--max-bytes", type=int, default=4_000_000, help="cap per domain (bytes)")
    ap.add_argument("--min-bytes", type=int, default=1_000_000, help="minimum per domain (bytes)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the manifest is current")
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    manifest_path = os.path.join(out, "manifest.json")
    if not args.force and os.path.exists(manifest_path):
        m = json.load(open(manifest_path))
        if m.get("recipe_version") == RECIPE_VERSION and m.get("max_bytes_per_domain") == args.max_bytes:
            return
    build(out, args.max_bytes, args.min_bytes)


if __name__ == "__main__":
    main()
