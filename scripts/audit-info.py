#!/usr/bin/env python3
"""Prints the dependency list a release binary carries (cargo auditable's `.dep-v0` ELF
section: zlib-compressed JSON), for any of the release targets, without running it:
one "name version (kind)" line per crate, or the JSON itself with --json.
`cargo audit bin`, syft and trivy read the same section.

    scripts/audit-info.py [--json] BINARY
"""
import json
import signal
import struct
import sys
import zlib


def dep_section(data):
    """The raw bytes of the .dep-v0 section of an ELF file (32 or 64 bit, either endian)."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        layout = order + "IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
        layout = order + "IIIIIIIIII"
    sections = [struct.unpack_from(layout, data, shoff + i * shentsize) for i in range(shnum)]
    names = sections[shstrndx]
    names_at = names[4]  # sh_offset
    for s in sections:
        name_end = data.index(b"\0", names_at + s[0])
        if data[names_at + s[0]:name_end] == b".dep-v0":
            return data[s[4]:s[4] + s[5]]  # sh_offset, sh_size
    raise ValueError("no .dep-v0 section: not built with cargo auditable")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    as_json = args[0] == "--json"
    path = args[-1]
    try:
        info = json.loads(zlib.decompress(dep_section(open(path, "rb").read())))
    except (OSError, ValueError, zlib.error) as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(info, indent=1))
    else:
        for p in info["packages"]:
            print("%s %s (%s)" % (p["name"], p["version"], p.get("kind", "runtime")))
    return 0


sys.exit(main())
