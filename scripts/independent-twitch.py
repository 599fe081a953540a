#!/usr/bin/env python3
"""An independent Twitch look-alike for a manual acceptance run (Python stdlib only).

It shares no code with the bot or its Rust fake: TLS IRC on one port, HTTPS Helix on another,
a CA and server certificate made with the `openssl` command. It writes a config and prints the
environment to run the bot with, then plays a short script: own message, someone else's
message, a dropped connection, RECONNECT, a PING, a refused hex color. It prints what it saw
and exits 0 only if the bot behaved.

    python3 scripts/independent-twitch.py target/release/twitch-colorchanger
"""
import json, os, socket, ssl, subprocess, sys, tempfile, threading, time, urllib.parse

LOGIN, USER_ID, TOKEN, CLIENT = "newuser_42", "4242", "indeptoken0123456789abcdefghij", "indepclient"
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
                    ok = line == "PASS oauth:" + TOKEN
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
            if int(headers.get("content-length", "0")):
                f.read(int(headers["content-length"]))
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            status, body = 200, b""
            if headers.get("authorization") != "Bearer " + TOKEN or headers.get("client-id") != CLIENT:
                status, body = 401, b'{"error":"Unauthorized","status":401,"message":"Invalid OAuth token"}'
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


def broadcast(line):
    with lock:
        conns = list(seen["conns"])
    for c in conns:
        try:
            c.sendall((line + "\r\n").encode())
        except OSError:
            pass


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/twitch-colorchanger"
    d = tempfile.mkdtemp(prefix="indep-twitch-")
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
    with open(conf, "w") as f:
        json.dump({"users": [{"username": LOGIN, "access_token": TOKEN, "refresh_token": "",
                              "client_id": CLIENT, "client_secret": "", "channels": ["#MyChannel"],
                              "is_prime_or_turbo": True, "note": "keep me"}]}, f, indent=2)
    env = dict(os.environ, TWITCH_IRC_URL=f"tls://127.0.0.1:{irc_port}",
               TWITCH_API_URL=f"https://127.0.0.1:{api_port}/helix",
               TWITCH_CA_FILE=os.path.join(d, "ca.pem"), NO_COLOR="1")
    print(f"config {conf}; TWITCH_IRC_URL={env['TWITCH_IRC_URL']} TWITCH_API_URL={env['TWITCH_API_URL']}")
    bot = subprocess.Popen([binary, "--config", conf], env=env, stderr=subprocess.PIPE, text=True)
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
    check("rejoins", wait(lambda: seen["irc"].count("JOIN #mychannel") == 3))
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


if __name__ == "__main__":
    main()
