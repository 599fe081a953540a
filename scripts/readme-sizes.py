#!/usr/bin/env python3
"""Copies the binary sizes from dist/SIZES.md (written by scripts/build-release.sh) into
README.md's Install table, so that the README never lags the code.

    scripts/build-release.sh && python3 scripts/readme-sizes.py

Only targets present in dist/SIZES.md are updated; the others keep their figure.
"""
import os
import re
import subprocess
import sys

if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__.strip())
    sys.exit(0)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sizes_md = os.path.join(root, "dist", "SIZES.md")
if not os.path.exists(sizes_md):
    print("no dist/SIZES.md: run scripts/build-release.sh first", file=sys.stderr)
    sys.exit(1)
sizes = dict(re.findall(r"^\| (\S+) \| (\d+) \|", open(sizes_md).read(), re.M))
readme_path = os.path.join(root, "README.md")
readme = open(readme_path).read()
updated = 0
for target, size in sizes.items():
    pattern = re.compile(r"(\| `" + re.escape(target) + r"` \| )[\d,]+( bytes \|)")
    readme, n = pattern.subn(lambda m: f"{m.group(1)}{int(size):,}{m.group(2)}", readme)
    updated += n
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                        capture_output=True, text=True).stdout.strip()
readme = re.sub(r"(from `scripts/build-release\.sh`) on \d{4}-\d\d-\d\d \(commit \w+\)",
                lambda m: f"{m.group(1)} on {__import__('datetime').date.today()} (commit {commit})", readme)
open(readme_path, "w").write(readme)
print(f"README.md: {updated} size(s) from dist/SIZES.md")
