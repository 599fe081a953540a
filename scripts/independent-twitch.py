#!/usr/bin/env python3
"""An independent Twitch look-alike for a manual acceptance run (Python stdlib only).

It shares no code with the bot or its Rust fake: TLS IRC on one port, HTTPS Helix on another,
a CA and server certificate made with the `openssl` command. It writes a config and runs the
bot against it, then plays a script and exits 0 only if the bot behaved:

    python3 scripts/independent-twitch.py BINARY             # chat: messages, drops, RECONNECT, PING, hex refused
    python3 scripts/independent-twitch.py BINARY --first-run # a config with only a client id: device flow first
    python3 scripts/independent-twitch.py BINARY --serve     # just serve, to try by hand (below)

--serve prints the config it wrote, the login and client id a config of your own must use,
and the environment that points a bot at it; it approves device codes after 10 s, and each
line typed on its standard input is sent to chat as the user's own message in #mychannel
(so a color change can be seen). Its CA file is readable by every user (a service user's
bot can trust it); the rest of its directory is not.
"""
import atexit
import ctypes
import shutil
import signal
import json, os, socket, ssl, subprocess, sys, tempfile, threading, time, urllib.parse

USAGE = __doc__.strip() + """

Options: --chat (the default), --first-run, --serve, -h/--help. BINARY defaults to
target/release/twitch-colorchanger. The bot it starts never outlives this script: it is
killed on every exit path, and the kernel kills it if this script is killed outright.
"""
children = []


def die_with_parent():
    """In the child, before exec: SIGKILL when the parent dies, however it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=die_with_parent, **kw)
    children.append(p)
    return p


def kill_children():
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()

LOGIN, USER_ID, CLIENT = "newuser_42", "4242", "indepclient"
TOKEN = "indeptoken0123456789abcdefghij"  # the current access token; rotated by the OAuth side
tokens = {"access": TOKEN, "refresh": "indeprefresh0", "n": 0, "device": None, "approved": False, "polls": 0}
NAMED = {"blue", "blue_violet", "cadet_blue", "chocolate", "coral", "dodger_blue", "firebrick",
         "golden_rod", "green", "hot_pink", "orange_red", "red", "sea_green", "spring_green",
         "yellow_green"}
lock = threading.Condition()
seen = {"irc": [], "puts": [], "logins": 0, "conns": []}
prime = {"value": True}


def make_certs(d):
    def run(*a):
        subprocess.run(a, check=True, cwd=d, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "1", "-subj", "/CN=independent test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out",
        "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext.cnf")


def note(key, value):
    with lock:
        seen[key].append(value)
        lock.notify_all()


def wait(pred, timeout=15):
    end = time.time() + timeout
    with lock:
        while not pred():
            left = end - time.time()
            if left <= 0:
                return False
            lock.wait(min(left, 0.05))  # some conditions (the config file) notify nobody
    return True


def irc_client(conn):
    with lock:
        seen["conns"].append(conn)
    buf, nick, ok = b"", None, False
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            buf += data
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                line = line.decode()
                note("irc", line)
                cmd = line.split(" ")
                if cmd[0] == "PASS":
                    ok = line == "PASS oauth:" + tokens["access"]
                elif cmd[0] == "NICK":
                    nick = cmd[1]
                    if ok and nick == LOGIN:
                        with lock:
                            seen["logins"] += 1
                            lock.notify_all()
                        conn.sendall(f":tmi.twitch.tv 001 {nick} :Welcome, GLHF!\r\n".encode())
                    else:
                        conn.sendall(b":tmi.twitch.tv NOTICE * :Login authentication failed\r\n")
                        return
                elif cmd[0] == "JOIN":
                    for ch in cmd[1].split(","):
                        conn.sendall(f":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN {ch}\r\n".encode())
    except OSError:
        pass
    finally:
        with lock:
            if conn in seen["conns"]:
                seen["conns"].remove(conn)
            lock.notify_all()


def serve(sock, ctx, handler):
    while True:
        try:
            raw, _ = sock.accept()
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            continue
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def http_client(conn):
    f = conn.makefile("rb")
    try:
        while True:
            reqline = f.readline().decode()
            if not reqline:
                return
            method, target, _ = reqline.split(" ", 2)
            headers = {}
            while True:
                h = f.readline().decode().strip()
                if not h:
                    break
                k, v = h.split(":", 1)
                headers[k.strip().lower()] = v.strip()
            form = {}
            if int(headers.get("content-length", "0")):
                form = dict(urllib.parse.parse_qsl(f.read(int(headers["content-length"])).decode()))
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            status, body = 200, b""
            if url.path.startswith("/oauth2/"):
                status, body = oauth(url.path, headers, form)
            elif headers.get("authorization") != "Bearer " + tokens["access"] or headers.get("client-id") != CLIENT:
                status, body = 401, b'{"error":"Unauthorized","status":401,"message":"Invalid OAuth token"}'
                if url.path == "/helix/chat/color" and method == "PUT":
                    note("puts", (q.get("color", ""), 401))
            elif url.path == "/helix/users":
                body = json.dumps({"data": [{"id": USER_ID, "login": LOGIN}]}).encode()
            elif url.path == "/helix/chat/color" and method == "GET":
                body = json.dumps({"data": [{"user_id": USER_ID, "color": "#FF0000"}]}).encode()
            elif url.path == "/helix/chat/color" and method == "PUT":
                color = q.get("color", "")
                hexcol = len(color) == 7 and color.startswith("#")
                if hexcol and not prime["value"]:
                    status, body = 400, b'{"error":"Bad Request","status":400,"message":"some wording"}'
                elif hexcol or color in NAMED:
                    status = 204
                else:
                    status, body = 400, b'{"error":"Bad Request","status":400,"message":"invalid color"}'
                note("puts", (color, status))
            else:
                status, body = 404, b"{}"
            conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    except (OSError, ValueError):
        return


def oauth(path, headers, form):
    """Device code, token (device grant and refresh, rotating), validate: Twitch's shapes."""
    def js(status, obj):
        return status, json.dumps(obj).encode()
    with lock:
        if path == "/oauth2/validate":
            if headers.get("authorization") == "OAuth " + tokens["access"]:
                return js(200, {"client_id": CLIENT, "login": LOGIN, "user_id": USER_ID, "expires_in": 14000,
                                "scopes": ["chat:read", "user:manage:chat_color", "user:read:chat"]})
            return js(401, {"status": 401, "message": "invalid access token"})
        if form.get("client_id") != CLIENT:
            return js(400, {"status": 400, "message": "invalid client"})
        if path == "/oauth2/device":
            note_scopes = form.get("scopes", "")
            tokens["device"], tokens["approved"], tokens["polls"] = "dev" + str(time.time()), False, 0
            seen.setdefault("scopes", []).append(note_scopes)
            return js(200, {"device_code": tokens["device"], "expires_in": 1800, "interval": 1, "user_code": "WXYZ2345",
                            "verification_uri": "https://www.twitch.tv/activate?public=true&device-code=WXYZ2345"})
        grant = form.get("grant_type")
        if path == "/oauth2/token" and grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != tokens["device"]:
                return js(400, {"status": 400, "message": "invalid device code"})
            tokens["polls"] += 1
            if not tokens["approved"]:
                return js(400, {"status": 400, "message": "authorization_pending"})
            tokens["device"] = None
        elif path == "/oauth2/token" and grant == "refresh_token":
            if form.get("refresh_token") != tokens["refresh"]:
                return js(400, {"error": "Bad Request", "status": 400, "message": "Invalid refresh token"})
        else:
            return js(400, {"status": 400, "message": "unsupported"})
        tokens["n"] += 1
        tokens["access"] = "indepaccess%024d" % tokens["n"]
        tokens["refresh"] = "indeprefresh%043d" % tokens["n"]
        lock.notify_all()
        return js(200, {"access_token": tokens["access"], "refresh_token": tokens["refresh"], "expires_in": 14000,
                        "scope": ["chat:read", "user:manage:chat_color", "user:read:chat"], "token_type": "bearer"})


def broadcast(line):
    with lock:
        conns = list(seen["conns"])
    for c in conns:
        try:
            c.sendall((line + "\r\n").encode())
        except OSError:
            pass


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(USAGE)
        return
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    modes = [a for a in sys.argv[1:] if a.startswith("-")]
    if len(args) > 1 or len(modes) > 1 or any(m not in ("--chat", "--first-run", "--serve") for m in modes):
        print(f"usage: {sys.argv[0]} [BINARY] [--chat|--first-run|--serve]  (--help says more)", file=sys.stderr)
        sys.exit(2)
    mode = modes[0] if modes else "--chat"
    binary = args[0] if args else "target/release/twitch-colorchanger"
    if not os.access(binary, os.X_OK):
        print(f"{binary}: no such executable (build it: cargo build --release)", file=sys.stderr)
        sys.exit(2)
    atexit.register(kill_children)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    d = tempfile.mkdtemp(prefix="indep-twitch-")
    # the directory holds a CA key and tokens: never leave it behind
    atexit.register(shutil.rmtree, d, True)
    make_certs(d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "srv.pem"), os.path.join(d, "srv.key"))
    socks = []
    for handler in (irc_client, http_client):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
        threading.Thread(target=serve, args=(s, ctx, handler), daemon=True).start()
    irc_port, api_port = socks[0].getsockname()[1], socks[1].getsockname()[1]
    conf = os.path.join(d, "twitch_colorchanger.conf")
    entry = {"username": LOGIN, "client_id": CLIENT, "channels": ["#MyChannel"], "note": "keep me"}
    if mode == "--chat":
        entry.update({"access_token": TOKEN, "refresh_token": tokens["refresh"], "client_secret": "",
                      "is_prime_or_turbo": True})
    with open(conf, "w") as f:
        json.dump({"users": [entry]}, f, indent=2)
    env = dict(os.environ, TWITCH_IRC_URL=f"tls://127.0.0.1:{irc_port}",
               TWITCH_API_URL=f"https://127.0.0.1:{api_port}/helix",
               TWITCH_AUTH_URL=f"https://127.0.0.1:{api_port}/oauth2",
               TWITCH_CA_FILE=os.path.join(d, "ca.pem"), NO_COLOR="1")
    exports = " ".join(f"{k}={env[k]}" for k in ("TWITCH_IRC_URL", "TWITCH_API_URL", "TWITCH_AUTH_URL", "TWITCH_CA_FILE"))
    print(f"config {conf}\n{exports}", flush=True)
    if mode == "--serve":
        # a bot running as another user (a service's) must read the CA, not the keys or tokens
        os.chmod(d, 0o711)
        os.chmod(os.path.join(d, "ca.pem"), 0o644)
        print(f'a config of your own: "username": "{LOGIN}", "client_id": "{CLIENT}", channel "mychannel"\n'
              f"type a line and press Enter: it is sent as {LOGIN}'s message in #mychannel", flush=True)

        def approve():
            while True:
                if wait(lambda: tokens["device"] is not None and not tokens["approved"], 3600):
                    time.sleep(10)  # a person would need a moment too
                    with lock:
                        tokens["approved"] = True
                    print("approved the device code", flush=True)
        threading.Thread(target=approve, daemon=True).start()

        def colors():
            shown = 0
            while True:
                wait(lambda: len(seen["puts"]) > shown, 3600)
                with lock:
                    new = seen["puts"][shown:]
                shown += len(new)
                for color, status in new:
                    print(f"color set to {color} (HTTP {status})", flush=True)
        threading.Thread(target=colors, daemon=True).start()
        for line in sys.stdin:
            text = line.strip().replace("\r", "").replace("\n", "")
            if text:
                broadcast(f"@user-id={USER_ID} :{LOGIN}!{LOGIN}@{LOGIN}.tmi.twitch.tv PRIVMSG #mychannel :{text}")
                print(f"sent: {text}", flush=True)
        while True:  # standard input closed: keep serving until stopped
            time.sleep(3600)
    if mode == "--first-run":
        return first_run(binary, conf, env)
    bot = spawn([binary, "--config", conf], env=env, stderr=subprocess.PIPE, text=True)
    out = []
    threading.Thread(target=lambda: out.extend(bot.stderr), daemon=True).start()
    failures = []

    def check(name, ok):
        print(("ok   " if ok else "FAIL ") + name)
        if not ok:
            failures.append(name)

    own = f"@user-id={USER_ID} :{LOGIN}!{LOGIN}@{LOGIN}.tmi.twitch.tv PRIVMSG #mychannel :hello"
    check("joins #mychannel", wait(lambda: "JOIN #mychannel" in seen["irc"]))
    broadcast(own)
    check("own message -> one hex color", wait(lambda: len(seen["puts"]) == 1)
          and seen["puts"][0][0].startswith("#") and seen["puts"][0][0] != "#FF0000")
    broadcast("@user-id=1 :other!other@other.tmi.twitch.tv PRIVMSG #mychannel :hi")
    broadcast("PING :sync1")
    check("PING answered", wait(lambda: "PONG :sync1" in seen["irc"]))
    check("other's message -> nothing", not wait(lambda: len(seen["puts"]) > 1, 0.5))
    with lock:
        for c in seen["conns"]:
            c.shutdown(socket.SHUT_RDWR)
    check("reconnects after a drop", wait(lambda: seen["logins"] == 2))
    broadcast(":tmi.twitch.tv RECONNECT")
    check("reconnects after RECONNECT", wait(lambda: seen["logins"] == 3, 20))
    def joined_after_last_login():
        nicks = [i for i, l in enumerate(seen["irc"]) if l.startswith("NICK ")]
        return bool(nicks) and "JOIN #mychannel" in seen["irc"][nicks[-1]:]
    check("rejoins on the new connection", wait(lambda: seen["logins"] == 3 and joined_after_last_login()))
    prime["value"] = False
    broadcast(own)
    check("hex refused -> named color", wait(lambda: len(seen["puts"]) == 3)
          and seen["puts"][1][1] == 400 and seen["puts"][2][0] in NAMED)
    saved = wait(lambda: json.load(open(conf))["users"][0]["is_prime_or_turbo"] is False, 5)
    kept = json.load(open(conf))["users"][0].get("note") == "keep me"
    check("config says is_prime_or_turbo false, other fields kept", saved and kept)
    bot.send_signal(15)
    try:
        code = bot.wait(2)
    except subprocess.TimeoutExpired:
        code = None
    time.sleep(0.1)
    check("SIGTERM -> exit 0 within 2 s", code == 0)
    check("token never printed", not any(TOKEN in line for line in out))
    print("".join(out))
    sys.exit(1 if failures else 0)


def first_run(binary, conf, env):
    bot = spawn([binary, "--config", conf], env=env, stderr=subprocess.PIPE, text=True)
    out = []
    def reader():
        for line in bot.stderr:
            with lock:
                out.append(line)
                lock.notify_all()
    threading.Thread(target=reader, daemon=True).start()
    failures = []

    def check(name, ok):
        print(("ok   " if ok else "FAIL ") + name)
        if not ok:
            failures.append(name)

    check("asks Twitch for a device code with the bot's scopes",
          wait(lambda: tokens["device"] is not None)
          and seen.get("scopes", [""])[0] == "chat:read user:manage:chat_color user:read:chat")
    check("tells the person where to go and which code",
          wait(lambda: any("ACTION REQUIRED" in l and "https://www.twitch.tv/activate" in l and "WXYZ2345" in l for l in out)))
    check("polls while pending", wait(lambda: tokens["polls"] >= 2))
    with lock:
        tokens["approved"] = True
    check("joins after approval", wait(lambda: "JOIN #mychannel" in seen["irc"]))
    saved = json.load(open(conf))["users"][0]
    check("saves the tokens, their expiry and keeps other fields",
          saved.get("access_token") == tokens["access"] and saved.get("refresh_token") == tokens["refresh"]
          and saved.get("token_expiry", "").endswith("Z") and saved.get("note") == "keep me")
    broadcast(f"@user-id={USER_ID} :{LOGIN}!{LOGIN}@{LOGIN}.tmi.twitch.tv PRIVMSG #mychannel :first!")
    check("changes the color", wait(lambda: len(seen["puts"]) == 1 and seen["puts"][0][1] == 204))
    # the access token expires: the next change refreshes, saves the rotated pair and retries
    with lock:
        old = tokens["access"]
        tokens["access"] = "revoked-by-test"
    broadcast(f"@user-id={USER_ID} :{LOGIN}!{LOGIN}@{LOGIN}.tmi.twitch.tv PRIVMSG #mychannel :again")
    check("refreshes after a 401 and retries the change",
          wait(lambda: len(seen["puts"]) == 3 and seen["puts"][1][1] == 401 and seen["puts"][2][1] == 204))
    saved = json.load(open(conf))["users"][0]
    check("saves the rotated pair", saved.get("refresh_token") == tokens["refresh"] and saved.get("access_token") != old)
    bot.send_signal(15)
    try:
        code = bot.wait(2)
    except subprocess.TimeoutExpired:
        code = None
    time.sleep(0.1)
    check("SIGTERM -> exit 0", code == 0)
    check("no token printed", not any(t in l for l in out for t in (tokens["access"], tokens["refresh"], old)))
    print("".join(out))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
