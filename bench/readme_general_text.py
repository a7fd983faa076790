#!/usr/bin/env python3
"""General English text for Read-ME stage 2 (docs/results/readme-quality.md, session 7).

Upstream READMEs, NEWS files and changelogs from /usr/share/doc (never a copyright file), the first
PARAGRAPHS paragraphs of each file in a seeded shuffled file order, with every paragraph that
mentions licences, copyright, warranty or redistribution dropped, so the licence texts that
bench/readme_quality.sh uses as the unseen domain stay unseen.

    bench/readme_general_text.py OUT_CORPUS_DIR [PARAGRAPHS]   # writes OUT_CORPUS_DIR/general/train.txt
"""
import glob
import gzip
import os
import random
import re
import sys

if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
out_dir = os.path.join(sys.argv[1], "general")
per_file = int(sys.argv[2]) if len(sys.argv) == 3 else 12
bad = re.compile(r"licen[cs]|copyright|warrant|permission is hereby|redistribut|\(c\)", re.I)
files = sorted(set(glob.glob("/usr/share/doc/*/README*") + glob.glob("/usr/share/doc/*/NEWS*") +
                   glob.glob("/usr/share/doc/*/changelog.gz") + glob.glob("/usr/share/doc/*/changelog")))
random.Random(0).shuffle(files)
docs = []
for f in files:
    if "copyright" in f.lower() or "licen" in f.lower():
        continue
    try:
        raw = gzip.open(f).read() if f.endswith(".gz") else open(f, "rb").read()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        continue
    paras = [p.strip("\n") for p in re.split(r"\n\s*\n", text)]
    keep = [p for p in paras if p.strip() and not bad.search(p) and len(p) < 4000]
    if keep:
        docs.append("\n\n".join(keep[:per_file]))
os.makedirs(out_dir, exist_ok=True)
tmp = os.path.join(out_dir, f"train.txt.tmp.{os.getpid()}")
with open(tmp, "w") as fh:
    fh.write("\n\n".join(docs))
os.replace(tmp, os.path.join(out_dir, "train.txt"))
print(f"{out_dir}/train.txt: {len(docs)} files, {sum(map(len, docs))} characters")
