//! The status page: one self-contained HTML document (inline CSS, no framework), readable
//! with JavaScript off and reloading itself every few seconds when it is on. Light or dark
//! as the browser prefers; a text label beside every color swatch.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::color;
use crate::status::{self, Document, UserStatus};
use crate::time::parse_rfc3339;

use crate::status::latest::Prompt;

/// Seconds between two reloads of the page (with JavaScript on).
pub const RELOAD_EVERY: u64 = 5;

const STYLE: &str = "
:root{color-scheme:light dark;--bg:#f6f6f8;--card:#fff;--fg:#18181b;--dim:#52525b;--line:#d4d4d8;--ok:#166534;--warn:#92400e;--bad:#991b1b}
@media (prefers-color-scheme:dark){:root{--bg:#0e0e10;--card:#1f1f23;--fg:#efeff1;--dim:#adadb8;--line:#3f3f46;--ok:#86efac;--warn:#fcd34d;--bad:#fca5a5}}
body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,sans-serif}
h1{font-size:1.3rem;margin:0 0 .2rem}header p,.dim{color:var(--dim);margin:0 0 1rem}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;margin:0 0 1rem;max-width:60rem}
h2{font-size:1.1rem;margin:0 0 .3rem}.state{font-size:.85rem;font-weight:600;margin-left:.5rem}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.sw{display:inline-block;width:1.1em;height:1.1em;border-radius:3px;border:1px solid var(--line);vertical-align:-.2em;margin-right:.35em}
.now .sw{width:2.2em;height:2.2em;vertical-align:middle}.now{font-size:1.1rem;margin:.5rem 0}
ol{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.3rem .9rem}
li{font-size:.85rem;white-space:nowrap}time{color:var(--dim);margin-left:.3em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.6rem 0 0}dt{color:var(--dim)}dd{margin:0}
.auth{border:2px solid var(--warn);border-radius:6px;padding:.8rem;margin:.6rem 0}.auth code{font-size:1.4rem;font-weight:700;letter-spacing:.1em}
.auth svg{width:12rem;height:12rem;display:block;margin-top:.6rem;background:#fff}
";

/// The page for `doc` (`None` while the bot starts) at `now`, with the device codes the
/// users awaiting authorisation should enter.
pub fn render(doc: Option<&Document>, prompts: &[(String, Prompt)], now: SystemTime) -> String {
    let mut out = String::with_capacity(8 * 1024);
    out.push_str("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>twitch-colorchanger</title><style>");
    out.push_str(STYLE);
    let _ = write!(
        out,
        "</style><noscript><meta http-equiv=refresh content={RELOAD_EVERY}></noscript></head><body><header><h1>twitch-colorchanger</h1>"
    );
    let Some(doc) = doc else {
        out.push_str("<p>starting…</p></header></body></html>");
        return out;
    };
    let verdict = match status::health(doc, now, true) {
        Ok(summary) => format!("<span class=ok>{}</span>", escape(&summary)),
        Err(why) => format!("<span class=bad>unhealthy: {}</span>", escape(&why.0)),
    };
    let _ = write!(
        out,
        "<p>{verdict} · {} · version {}</p>",
        escape(&doc.config),
        env!("CARGO_PKG_VERSION")
    );
    for warning in [&doc.clock, &doc.nofile].into_iter().flatten() {
        let _ = write!(out, "<p class=bad>{}</p>", escape(warning));
    }
    out.push_str("</header>");
    for user in &doc.users {
        let prompt = prompts
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&user.username))
            .map(|(_, p)| p);
        user_card(&mut out, user, prompt, now);
    }
    let _ = write!(
        out,
        "<script>setTimeout(function(){{location.reload()}},{})</script></body></html>",
        RELOAD_EVERY * 1000
    );
    out
}

fn user_card(out: &mut String, user: &UserStatus, prompt: Option<&Prompt>, now: SystemTime) {
    let class = match user.state.as_str() {
        "connected" | "disabled" | "idle" => "ok",
        "starting" | "connecting" | "awaiting_authorisation" => "warn",
        _ => "bad",
    };
    let _ = write!(
        out,
        "<section><h2>{}<span class=\"state {class}\">{}</span></h2>",
        escape(&user.username),
        escape(&user.state.replace('_', " "))
    );
    let channels = if user.channels.is_empty() {
        "no channel joined".to_owned()
    } else {
        user.channels
            .iter()
            .map(|c| format!("#{}", escape(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let transport = if user.transport == "eventsub" {
        "EventSub"
    } else {
        "IRC"
    };
    let changes = if user.enabled {
        "automatic changes on"
    } else {
        "automatic changes off (ccd)"
    };
    let _ = write!(out, "<p class=dim>{transport} · {channels} · {changes}</p>");
    if user.state == "awaiting_authorisation" {
        if let Some(p) = prompt {
            authorisation(out, p, now);
        }
    }
    match user.color.as_deref() {
        Some(c) => {
            let _ = write!(
                out,
                "<div class=now>{}<b>{}</b> <span class=dim>color in use</span></div>",
                swatch(c),
                escape(c)
            );
        }
        None => out.push_str("<div class=\"now dim\">color not known yet</div>"),
    }
    if !user.recent_colors.is_empty() {
        out.push_str("<p class=dim>Last colors, newest first:</p><ol>");
        for recent in user.recent_colors.iter().rev() {
            let _ = write!(
                out,
                "<li>{}{}{}</li>",
                swatch(&recent.color),
                escape(&recent.color),
                time_ago(&recent.at, now)
            );
        }
        out.push_str("</ol>");
    }
    let e = &user.errors;
    let errors = e.lookup + e.chat + e.color + e.token;
    let _ = write!(
        out,
        "<dl><dt>Messages</dt><dd>{}</dd><dt>Color changes</dt><dd>{}</dd><dt>Errors</dt><dd>{errors} (lookup {}, chat {}, color {}, token {})</dd><dt>Reconnects</dt><dd>{}</dd><dt>Token</dt><dd>{}</dd>",
        user.messages,
        user.changes,
        e.lookup,
        e.chat,
        e.color,
        e.token,
        user.reconnects,
        token_expiry(user.token_expires_at.as_deref(), now)
    );
    if let Some(last) = &user.last_error {
        let _ = write!(out, "<dt>Last error</dt><dd>{}</dd>", escape(last));
    }
    out.push_str("</dl></section>");
}

/// A time as "2m ago", its date and time in UTC on hover (the reader's zone is unknown here).
fn time_ago(at: &str, now: SystemTime) -> String {
    let shown = match parse_rfc3339(at).map(|t| now.duration_since(t)) {
        Some(Ok(age)) if age >= std::time::Duration::from_secs(10) => status::ago(age),
        Some(_) => "just now".into(), // or this clock went back a little
        None => escape(at),
    };
    let utc = at
        .get(..19)
        .map_or(escape(at), |t| format!("{} UTC", t.replace('T', " ")));
    format!(
        "<time datetime=\"{}\" title=\"{}\">{shown}</time>",
        escape(at),
        escape(&utc)
    )
}

fn authorisation(out: &mut String, p: &Prompt, now: SystemTime) {
    let left = p
        .expires_at
        .duration_since(now)
        .map_or("expired".into(), |d| {
            format!("expires in {} min", d.as_secs() / 60)
        });
    let _ = write!(
        out,
        "<div class=auth><b>Authorisation needed.</b> Open <a href=\"{uri}\">{uri}</a> and enter <code>{code}</code> ({left}), or scan:{qr}</div>",
        uri = escape(&p.verification_uri),
        code = escape(&p.user_code),
        qr = qr_svg(&p.verification_uri)
    );
}

fn token_expiry(at: Option<&str>, now: SystemTime) -> String {
    match at.and_then(parse_rfc3339) {
        Some(t) => match t.duration_since(now) {
            Ok(left) => format!("expires in {}", status::ago(left).trim_end_matches(" ago")),
            Err(_) => "expired (renewed when next needed)".into(),
        },
        None => "expiry not known".into(),
    }
}

fn swatch(color: &str) -> String {
    match color::rgb(color) {
        Some((r, g, b)) => {
            format!("<span class=sw style=\"background:#{r:02x}{g:02x}{b:02x}\"></span>")
        }
        None => String::new(),
    }
}

/// A QR code of `text` as inline SVG (black on white, a quiet zone of two modules).
fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Low) else {
        return String::new();
    };
    let size = code.size();
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if code.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + 2, y + 2);
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {0}\" role=img aria-label=\"QR code of the link\"><path fill=\"#000\" d=\"{path}\"/></svg>",
        size + 4
    )
}

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RecentColor;
    use crate::time::format_rfc3339;
    use std::time::Duration;

    fn user(state: &str) -> UserStatus {
        UserStatus {
            username: "hue<shift>".into(),
            state: state.into(),
            enabled: true,
            channels: vec!["lumenwave".into()],
            color: Some("dodger_blue".into()),
            changes: 3,
            messages: 4,
            last_change_at: None,
            last_error: Some("chat: <b>lost</b>".into()),
            token_expires_at: None,
            chat_down_since: None,
            transport: "irc".into(),
            errors: Default::default(),
            reconnects: 1,
            recent_colors: vec![RecentColor {
                color: "#9146FF".into(),
                at: "2026-12-04T10:00:01Z".into(),
            }],
        }
    }

    /// A document of one connected user, written at `now`.
    fn doc(now: SystemTime) -> Document {
        Document {
            clock: None,
            nofile: None,
            written_at: format_rfc3339(now),
            pid: 7,
            config: "/etc/x.conf".into(),
            users: vec![user("connected")],
        }
    }

    #[test]
    fn every_swatch_has_its_text_and_network_text_is_escaped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let doc = doc(now);
        let page = render(Some(&doc), &[], now);
        assert!(page.contains("hue&lt;shift&gt;") && !page.contains("hue<shift>"));
        assert!(page.contains("chat: &lt;b&gt;lost&lt;/b&gt;"));
        assert!(page.contains("background:#1e90ff\"></span><b>dodger_blue</b>"));
        assert!(page.contains("background:#9146ff\"></span>#9146FF<time"));
        // a time the reader can place: its age, and the date and time in UTC on hover
        let later = parse_rfc3339("2026-12-04T10:02:31Z").unwrap();
        let page = render(Some(&doc), &[], later);
        assert!(
            page.contains("<time datetime=\"2026-12-04T10:00:01Z\" title=\"2026-12-04 10:00:01 UTC\">2m ago</time>"),
            "{page}"
        );
        assert!(page.contains("<noscript><meta http-equiv=refresh"));
    }

    #[test]
    fn a_clock_that_looks_wrong_is_shown_above_the_users() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut doc = doc(now);
        assert!(!render(Some(&doc), &[], now).contains("clock"));
        doc.clock = Some("this machine's clock looks behind: it says 2026-12-08T14:14:31Z".into());
        let page = render(Some(&doc), &[], now);
        assert!(
            page.contains("<p class=bad>this machine&#39;s clock looks behind: it says 2026-12-08T14:14:31Z</p></header>"),
            "{page}"
        );
    }

    #[test]
    fn a_user_awaiting_authorisation_shows_the_link_the_code_and_a_qr_code() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let doc = Document {
            clock: None,
            nofile: None,
            written_at: format_rfc3339(now),
            pid: 7,
            config: "/etc/x.conf".into(),
            users: vec![user("awaiting_authorisation")],
        };
        let prompt = Prompt {
            verification_uri: "https://www.twitch.tv/activate?device-code=ABCD".into(),
            user_code: "ABCD".into(),
            expires_at: now + Duration::from_secs(1800),
        };
        let page = render(Some(&doc), &[("HUE<SHIFT>".into(), prompt)], now);
        assert!(
            page.contains("<code>ABCD</code> (expires in 30 min)"),
            "{page}"
        );
        assert!(page.contains("href=\"https://www.twitch.tv/activate?device-code=ABCD\""));
        assert!(page.contains("<svg") && page.contains("h1v1h-1z"));
    }
}
