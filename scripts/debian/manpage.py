#!/usr/bin/env python3
"""Writes twitch-colorchanger(1) in roff from the program's own --help and --version, so the
man page says what the binary says (scripts/build-deb.sh runs it; lintian checks the page).

    scripts/debian/manpage.py BINARY > twitch-colorchanger.1
"""
import re
import subprocess
import sys

if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) == 2 else 2)
binary = sys.argv[1]
help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.split()[1]


def roff(text):
    """Escapes text for a roff line (backslashes, hyphens of options, a leading dot)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


# --help is "Usage: …", a description, then sections "Name:" with indented entries; an entry
# is "  term    text" and continues on lines indented to the text's column.
lines = help_text.rstrip("\n").split("\n")
# the usage line is broken to fit 80 columns: its continuation lines are indented
head = 1
while head < len(lines) and lines[head].startswith(" "):
    head += 1
usage = " ".join(l.strip() for l in lines[:head]).removeprefix("Usage: ")
sections, current = [], None
for line in lines[head:]:
    if re.fullmatch(r"[A-Z][a-z ]+:", line):
        current = (line[:-1], [])
        sections.append(current)
    elif current is None:
        if line.strip():
            description = line.strip()
    elif line.startswith("  ") and line.strip():
        entry = re.fullmatch(r"  (\S.*?)(?:\s{2,}(\S.*))?", line)
        if current[1] and line.startswith("   "):
            current[1][-1][1].append(line.strip())
        elif current[0] == "Error codes":
            code, text = line.strip().split(" ", 1)
            current[1].append((code, [text]))
        elif current[0] == "Notes":
            # a note runs on until a line ends with a full stop
            if current[1] and not current[1][-1][1][-1].endswith("."):
                current[1][-1][1].append(line.strip())
            else:
                current[1].append(("", [line.strip()]))
        else:
            current[1].append((entry.group(1), [entry.group(2) or ""]))

titles = {"Options": "OPTIONS", "Commands": "COMMANDS", "Notes": "FILES", "Error codes": "EXIT STATUS"}
out = [
    '.TH TWITCH\\-COLORCHANGER 1 "" "twitch-colorchanger %s" "User Commands"' % version,
    ".SH NAME",
    "twitch\\-colorchanger \\- change your Twitch chat name color after every message you send",
    ".SH SYNOPSIS",
    ".B twitch\\-colorchanger",
    roff(usage.split(" ", 1)[1]),
    ".SH DESCRIPTION",
    roff(description),
    "A long\\-running bot for one or more Twitch accounts: it reads their chat (IRC or EventSub),",
    "renews their tokens and stores them in the config file, reloads the config when it",
    "changes, and takes commands from chat (ccc, ccd, cce, ccm).",
]
for name, entries in sections:
    out.append(".SH " + titles.get(name, name.upper()))
    for term, text in entries:
        if term:
            out += [".TP", ".B " + roff(term)]
        else:
            out.append(".PP")
        out.append(roff(" ".join(text)))
out += [
    ".SH ENVIRONMENT",
    ".TP",
    ".B TWITCH_CONF_FILE",
    "The config file, when \\-\\-config is not given.",
    ".TP",
    "\\fBTWITCH_USERNAME_\\fIn\\fR, \\fBTWITCH_CLIENT_ID_\\fIn\\fR, ...",
    "Users from the environment, as the Python bot read them; written into the config file at start.",
    ".TP",
    ".B TWITCH_HTTP_LISTEN",
    "Address of the optional status page, /metrics, /livez and /readyz (no authentication: keep it on loopback).",
    ".TP",
    ".B LOG_FILE",
    "Also append every log line there, as JSON.",
    ".SH SIGNALS",
    "SIGHUP applies config edits at once and reopens the log file; SIGINT and SIGTERM stop the bot.",
    ".SH SEE ALSO",
    "/usr/share/doc/twitch\\-colorchanger/README.Debian: the first run.",
    ".br",
    "https://github.com/twitch\\-colorchanger/twitch\\-colorchanger: the full README.",
]
print("\n".join(out))
