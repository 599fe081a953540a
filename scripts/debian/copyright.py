#!/usr/bin/env python3
"""Writes the Debian copyright file (machine-readable format 1.0) of a release binary: the
program's own licence, then every crate linked into it for that target (cargo tree, normal
dependencies without proc-macros and build scripts, default features), the Rust standard
library and musl, each with its licence expression and the licence texts the crate ships.
Apache-2.0 points at /usr/share/common-licenses, as Debian asks.

    scripts/debian/copyright.py TARGET > copyright
"""
import json
import pathlib
import re
import subprocess
import sys

if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) == 2 else 2)
target = sys.argv[1]
root = pathlib.Path(__file__).resolve().parents[2]


def cargo(*args):
    return subprocess.run(["cargo", *args], cwd=root, capture_output=True, text=True, check=True).stdout


tree = cargo("tree", "--locked", "-e", "normal,no-proc-macro", "--target", target, "--prefix", "none", "-f", "{p}")
linked = set()
for line in tree.splitlines():
    name, version = line.split()[:2]
    linked.add((name, version.lstrip("v")))
metadata = json.loads(cargo("metadata", "--locked", "--format-version", "1", "--filter-platform", target))
crates = sorted(
    (p for p in metadata["packages"] if (p["name"], p["version"]) in linked),
    key=lambda p: (p["name"], p["version"]),
)
me = next(p for p in crates if p["source"] is None)
crates.remove(me)


def short_names(expression):
    """The licence names of an SPDX expression, in Debian's spelling ("or", "and")."""
    expression = expression.replace("/", " OR ")  # the old "MIT/Apache-2.0" form
    expression = re.sub(r"\s+WITH\s+LLVM-exception", "", expression)
    names = []
    for token in re.split(r"[\s()]+", expression):
        if token and token not in ("OR", "AND") and token not in names:
            names.append(token)
    if "AND" in expression or "(" in expression:
        debian = re.sub(r"\bOR\b", "or", re.sub(r"\bAND\b", "and", expression))
    else:  # a plain choice, each licence once ("Apache-2.0 WITH LLVM-exception OR Apache-2.0 …")
        debian = " or ".join(names)
    return debian, names


def texts(package):
    """The licence texts a crate ships, but Apache's (common-licenses has it)."""
    folder = pathlib.Path(package["manifest_path"]).parent
    found = []
    for f in sorted(folder.iterdir()):
        if re.match(r"(LICEN[CS]E|COPYING|COPYRIGHT)", f.name, re.I) and f.is_file():
            text = f.read_text(errors="replace").strip()
            if "apache" in f.name.lower() or text.lstrip().startswith("Apache License"):
                continue
            found.append(text)
    return found


def indent(text):
    return "\n".join(" " + line if line.strip() else " ." for line in text.splitlines())


def holders(package):
    authors = [re.sub(r"\s*<[^>]*>", "", a) for a in package["authors"]]
    return ", ".join(authors) if authors else "the %s authors" % package["name"]


out = [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: twitch-colorchanger",
    "Source: https://github.com/twitch-colorchanger/twitch-colorchanger",
    "Comment: /usr/bin/twitch-colorchanger is a static binary. Besides the program's own code it",
    " holds the Rust crates below (the Files paragraphs named rust-crates/<name>-<version>;",
    " their source is at https://crates.io/crates/<name>/<version>), the Rust standard library",
    " and the musl C library, each under its own licence. Where a crate offers a choice",
    " (\"or\"), any of its licences applies.",
    "",
    "Files: *",
    "Copyright: 2026 twitch-colorchanger contributors",
    "License: " + me["license"],
    "",
]
used = {"MIT", "Apache-2.0"}
for package in crates:
    expression, names = short_names(package["license"] or "unknown")
    used.update(names)
    out += [
        "Files: rust-crates/%s-%s" % (package["name"], package["version"]),
        "Copyright: " + holders(package),
        "License: " + expression,
    ]
    shipped = texts(package)
    if shipped:
        out.append("Comment: the licence text%s the crate ships:" % ("s" if len(shipped) > 1 else ""))
        out.append(indent("\n\n".join(shipped)))
    out.append("")

out += [
    "Files: rust-std/*",
    "Copyright: The Rust Project contributors",
    "License: MIT or Apache-2.0",
    "Comment: the Rust standard library (core, alloc, std and their dependencies), rebuilt for",
    " the release with -Zbuild-std.",
    "",
]
musl = subprocess.run(
    [sys.executable, "-c", "import ziglang, os; print(os.path.dirname(ziglang.__file__))"],
    capture_output=True, text=True,
).stdout.strip()
musl_copyright = pathlib.Path(musl, "lib/libc/musl/COPYRIGHT") if musl else None
out += ["Files: musl/*", "Copyright: Rich Felker, et al.", "License: MIT"]
if musl_copyright and musl_copyright.is_file():
    out += ["Comment: musl's COPYRIGHT file:", indent(musl_copyright.read_text().strip())]
out.append("")

# one stand-alone paragraph per licence named above (the format asks for each)
mit = (root / "LICENSE").read_text().strip().split("\n", 3)[3]  # without title and holder
generic = {
    "MIT": mit,
    "Apache-2.0": "On Debian systems, the full text of the Apache License, Version 2.0, is in\n"
    "/usr/share/common-licenses/Apache-2.0.",
}
for name in sorted(used):
    out.append("License: " + name)
    if name in generic:
        out.append(indent(generic[name]))
    else:
        out.append(indent("The text is in the Comment of each paragraph that names this licence."))
    out.append("")
print("\n".join(out).rstrip())
