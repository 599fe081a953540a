#!/usr/bin/env python3
"""Checks that the sans-IO cores reach no module that does I/O, at any depth.

Each file under src/ (up to its first #[cfg(test)], comments left out) is a module; an arrow goes from it to every
module it names (`crate::a::b::…` anywhere, `super::…`, `self::…` and a child's name in `use` lines; the
longest module prefix of the path), so a type imported through a re-export counts for the
module that re-exports it. A module does I/O when its text uses the reactor, the network, the
file system, processes or the clock's `now()` (IO_MARKS below); `log` is the one exception (a
line on stderr, which every layer may write). Prints every path from a core (CORES) to a
module that does I/O and exits 1 if there is one:

    python3 scripts/layers.py            # the check (.ci/run)
    python3 scripts/layers.py --graph    # every module, what it names, and whether it does I/O
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# the protocol cores, the user core and the token core: bytes and `now` in, bytes, events and
# deadlines out
CORES = [
    "account", "bot", "chat", "chat_session", "directory", "color", "command", "eventsub", "eventsub::messages",
    "eventsub::subscriptions", "http::head", "http::wire", "irc", "irc::commands", "irc::message",
    "irc::session", "mode", "tokens", "tokens::authorise", "tokens::renew", "tokens::saving",
    "tokens::schedule", "usercore", "usercore::chat_side", "usercore::colors",
    "usercore::edits", "usercore::seen", "web::request", "ws",
]
IO_MARKS = re.compile(
    r"\bsmol::|\basync_net\b|\basync_io\b|\bstd::fs\b|\bfs::|\bstd::net::Tcp|\binotify\b|"
    r"\bstd::process::Command\b|\bInstant::now\(\)|\bSystemTime::now\(\)|\bstd::io::std(out|err|in)\(\)"
)
EXEMPT = {"log"}


def modules():
    found = {}
    for root, _, files in os.walk(ROOT):
        for f in files:
            path = os.path.join(root, f)
            rel = os.path.relpath(path, ROOT)
            if not f.endswith(".rs") or "tests" in rel[:-3].split(os.sep) or rel in ("lib.rs", "main.rs"):
                continue
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            text = open(path, encoding="utf-8").read()
            cut = text.find("#[cfg(test)]")
            text = text if cut < 0 else text[:cut]
            # comments name modules without using them (a rough cut: no `//` inside strings here)
            found["::".join(parts)] = re.sub(r"//.*", "", text)
    return found


def arrows(name, text, known):
    def resolve(path):
        parts = path.split("::")
        for n in range(len(parts), 0, -1):
            if "::".join(parts[:n]) in known:
                return "::".join(parts[:n])
        return None

    out = set()
    for m in re.finditer(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)", text):
        out.add(resolve(m.group(1)))
    # `use` lines that start from super or self, with their brace groups
    for m in re.finditer(r"\buse\s+(super|self)((?:::\w+)*)::(?:\{([^;]*)\}|(\w+))", text):
        base = name.split("::") if m.group(1) == "self" else name.split("::")[:-1]
        prefix = base + [p for p in m.group(2).split("::") if p]
        items = m.group(3).split(",") if m.group(3) else [m.group(4)]
        for item in items:
            head = item.strip().split("::")[0].split(" ")[0]
            if head and head != "self":
                out.add(resolve("::".join(prefix + [head])))
            elif head == "self":
                out.add(resolve("::".join(prefix)))
    # a glob of the parent or of the module itself
    for m in re.finditer(r"\buse\s+(super|self)((?:::\w+)*)::\*", text):
        base = name.split("::") if m.group(1) == "self" else name.split("::")[:-1]
        out.add(resolve("::".join(base + [p for p in m.group(2).split("::") if p])))
    # `use child::…` of a module's own child (the 2018 paths)
    for m in re.finditer(r"\buse\s+(\w+)::", text):
        child = f"{name}::{m.group(1)}"
        if child in known:
            out.add(child)
    out.discard(None)
    out.discard(name)
    return out


def main():
    found = modules()
    graph = {n: arrows(n, t, found) for n, t in found.items()}
    io = {n for n, t in found.items() if IO_MARKS.search(t) and n not in EXEMPT}
    if "--graph" in sys.argv:
        for n in sorted(graph):
            print(f"{n}{' (I/O)' if n in io else ''} -> {', '.join(sorted(graph[n]))}")
        return 0
    bad = []
    for core in CORES:
        if core not in found:
            print(f"layers.py: no module {core} (update CORES)", file=sys.stderr)
            return 2
        # breadth first: the shortest path to each module the core reaches
        seen, queue = {core: [core]}, [core]
        while queue:
            here = queue.pop(0)
            for there in sorted(graph[here]):
                if there in seen or there in EXEMPT:
                    continue
                seen[there] = seen[here] + [there]
                queue.append(there)
        for there, path in sorted(seen.items()):
            if there in io:
                bad.append(" -> ".join(path))
    for line in bad:
        print(f"a core reaches I/O: {line}")
    if bad:
        return 1
    print(f"layers: {len(CORES)} cores reach no module that does I/O ({len(io)} of {len(found)} modules do)")
    return 0


if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    sys.exit(main())
