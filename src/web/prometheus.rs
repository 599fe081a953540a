//! `/metrics` in the Prometheus text exposition format 0.0.4: names prefixed
//! `twitch_colorchanger_`, base units (seconds, bytes), `_total` on counters.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use super::Counted;
use crate::metrics::Histogram;
use crate::status::Document;
use crate::time::parse_rfc3339;

/// The exact `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything the exposition shows, read at one moment.
pub struct Sample<'a> {
    /// The status document (`None` while the bot starts).
    pub doc: Option<&'a Document>,
    /// Helix request durations.
    pub helix: Histogram,
    /// Reaction times (message read to color request written).
    pub reaction: Histogram,
    /// The process's resident memory, when known.
    pub resident_bytes: Option<u64>,
    /// The time of the scrape.
    pub now: SystemTime,
}

/// The exposition text, in a buffer of its exact size: a thousand users' text is a
/// megabyte, and a buffer that grows by doubling holds half as much again while it moves.
pub fn render(s: &Sample<'_>) -> String {
    let mut counted = Counted(0);
    write_to(&mut counted, s);
    let mut out = String::with_capacity(counted.0);
    write_to(&mut out, s);
    out
}

fn write_to(out: &mut dyn fmt::Write, s: &Sample<'_>) {
    let family = |out: &mut dyn fmt::Write, name: &str, kind: &str, help: &str| {
        let _ = write!(
            out,
            "# HELP twitch_colorchanger_{name} {help}\n# TYPE twitch_colorchanger_{name} {kind}\n"
        );
    };
    family(
        out,
        "build_info",
        "gauge",
        "Always 1; the labels say which build runs.",
    );
    let _ = writeln!(
        out,
        "twitch_colorchanger_build_info{{version=\"{}\",commit=\"{}\",target=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        Label(env!("TCC_GIT_COMMIT")),
        Label(env!("TCC_TARGET"))
    );
    let users = s.doc.map_or(&[][..], |d| &d.users[..]);
    let per_user = |out: &mut dyn fmt::Write,
                    name: &str,
                    kind: &str,
                    help: &str,
                    value: &dyn Fn(&crate::status::UserStatus) -> Option<i64>| {
        family(out, name, kind, help);
        for u in users {
            if let Some(v) = value(u) {
                let _ = writeln!(
                    out,
                    "twitch_colorchanger_{name}{{user=\"{}\"}} {v}",
                    Label(&u.username)
                );
            }
        }
    };
    let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
    per_user(
        out,
        "color_changes_total",
        "counter",
        "Color changes Twitch accepted since the bot started.",
        &|u| count(u.changes),
    );
    per_user(
        out,
        "own_messages_total",
        "counter",
        "The user's own chat messages seen since the bot started (one per message in shared chat).",
        &|u| count(u.messages),
    );
    per_user(
        out,
        "chat_reconnects_total",
        "counter",
        "Chat connections lost after they were up.",
        &|u| count(u.reconnects),
    );
    per_user(
        out,
        "token_expiry_seconds",
        "gauge",
        "Seconds until the access token expires (negative: expired; renewed when next needed).",
        &|u| {
            let at = parse_rfc3339(u.token_expires_at.as_deref()?)?;
            let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            Some(match at.duration_since(s.now) {
                Ok(left) => secs(left),
                Err(past) => -secs(past.duration()),
            })
        },
    );
    per_user(
        out,
        "awaiting_authorisation",
        "gauge",
        "1 while the user waits for someone to approve a device code.",
        &|u| Some(i64::from(u.state == "awaiting_authorisation")),
    );
    family(
        out,
        "errors_total",
        "counter",
        "Errors since the bot started, by what failed.",
    );
    for u in users {
        let e = &u.errors;
        for (kind, n) in [
            ("lookup", e.lookup),
            ("chat", e.chat),
            ("color", e.color),
            ("token", e.token),
        ] {
            let _ = writeln!(
                out,
                "twitch_colorchanger_errors_total{{user=\"{}\",kind=\"{kind}\"}} {n}",
                Label(&u.username)
            );
        }
    }
    family(
        out,
        "chat_connected",
        "gauge",
        "1 while the user is in chat over this transport.",
    );
    for u in users {
        let up = matches!(u.state.as_str(), "connected" | "disabled");
        let _ = writeln!(
            out,
            "twitch_colorchanger_chat_connected{{user=\"{}\",transport=\"{}\"}} {}",
            Label(&u.username),
            Label(&u.transport),
            u8::from(up)
        );
    }
    histogram(
        out,
        "helix_request_duration_seconds",
        "Helix API requests, answered or failed.",
        &s.helix,
    );
    histogram(
        out,
        "reaction_seconds",
        "From a user's chat message read to their color request written.",
        &s.reaction,
    );
    if let Some(bytes) = s.resident_bytes {
        family(
            out,
            "resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
        );
        let _ = writeln!(out, "twitch_colorchanger_resident_memory_bytes {bytes}");
    }
}

fn histogram(out: &mut dyn fmt::Write, name: &str, help: &str, h: &Histogram) {
    let _ = write!(
        out,
        "# HELP twitch_colorchanger_{name} {help}\n# TYPE twitch_colorchanger_{name} histogram\n"
    );
    for (bound, n) in h.bounds.iter().zip(&h.cumulative) {
        let _ = writeln!(
            out,
            "twitch_colorchanger_{name}_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = write!(
        out,
        "twitch_colorchanger_{name}_bucket{{le=\"+Inf\"}} {0}\ntwitch_colorchanger_{name}_sum {1}\ntwitch_colorchanger_{name}_count {0}\n",
        h.count, h.sum
    );
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
struct Label<'a>(&'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// This process's resident memory, from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::status::{Errors, UserStatus};
    use std::time::Duration;

    /// A strict reading of the text format: every sample line belongs to a family declared
    /// by `# TYPE` before it, names and label names are valid, values are numbers, no family
    /// is declared twice, and histograms have ordered buckets ending in `+Inf` = `_count`.
    pub(crate) fn check(text: &str) -> Result<usize, String> {
        let mut types: Vec<(String, String)> = Vec::new();
        let mut samples = 0;
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
                })
        };
        let mut last_le = f64::NEG_INFINITY;
        let mut inf = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or("TYPE without a kind")?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("bad type {kind}"));
                }
                if types.iter().any(|(n, _)| n == name) {
                    return Err(format!("{name} declared twice"));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter {name} without _total"));
                }
                types.push((name.into(), kind.into()));
                last_le = f64::NEG_INFINITY;
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(format!("stray line {line:?}"));
            }
            let (series, value) = line.rsplit_once(' ').ok_or("sample without a value")?;
            if value.parse::<f64>().is_err() && !["+Inf", "-Inf", "NaN"].contains(&value) {
                return Err(format!("bad value in {line:?}"));
            }
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').ok_or("unclosed labels")?),
                None => (series, ""),
            };
            if !valid_name(name) {
                return Err(format!("bad name {name}"));
            }
            let (family, kind) = types.last().ok_or("sample before any TYPE")?;
            let ok = match kind.as_str() {
                "histogram" => [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name.to_owned()),
                _ => name == family,
            };
            if !ok {
                return Err(format!("{name} outside its family {family}"));
            }
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").ok_or(format!("bad label {pair}"))?;
                if !valid_name(k) || k.contains(':') {
                    return Err(format!("bad label name {k}"));
                }
                if k == "le" {
                    let le = v.trim_end_matches('"');
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().map_err(|_| format!("bad le {le}"))?
                    };
                    if bound <= last_le {
                        return Err("buckets out of order".into());
                    }
                    last_le = bound;
                    if le == "+Inf" {
                        inf = Some(value.to_owned());
                    }
                }
            }
            if name.ends_with("_count") && inf.as_deref() != Some(value) {
                return Err("+Inf bucket differs from _count".into());
            }
            samples += 1;
        }
        Ok(samples)
    }

    #[test]
    fn the_exposition_is_valid_and_names_every_user() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let user = |name: &str| UserStatus {
            username: name.into(),
            state: "connected".into(),
            enabled: true,
            channels: vec![],
            color: None,
            changes: 5,
            messages: 6,
            last_change_at: None,
            last_error: None,
            token_expires_at: Some(crate::time::format_rfc3339(now + Duration::from_secs(3600))),
            chat_down_since: None,
            transport: "eventsub".into(),
            errors: Errors {
                chat: 2,
                ..Errors::default()
            },
            reconnects: 2,
            recent_colors: vec![],
        };
        let doc = Document {
            clock: None,
            nofile: None,
            written_at: String::new(),
            pid: 1,
            config: String::new(),
            users: vec![user("a"), user("we\"ird\\")],
        };
        let metrics = Metrics::default();
        metrics.observe_helix(Duration::from_millis(30));
        let text = render(&Sample {
            doc: Some(&doc),
            helix: metrics.helix(),
            reaction: metrics.reaction(),
            resident_bytes: Some(4096),
            now,
        });
        assert_eq!(check(&text), Ok(1 + 2 * 5 + 8 + 2 + 13 + 13 + 1), "{text}");
        assert_eq!(
            text.capacity(),
            text.len(),
            "rendered into a buffer of its exact size"
        );
        for line in [
            "twitch_colorchanger_color_changes_total{user=\"a\"} 5",
            "twitch_colorchanger_token_expiry_seconds{user=\"a\"} 3600",
            "twitch_colorchanger_errors_total{user=\"a\",kind=\"chat\"} 2",
            "twitch_colorchanger_chat_connected{user=\"we\\\"ird\\\\\",transport=\"eventsub\"} 1",
            "twitch_colorchanger_helix_request_duration_seconds_bucket{le=\"0.05\"} 1",
            "twitch_colorchanger_helix_request_duration_seconds_count 1",
            "twitch_colorchanger_resident_memory_bytes 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // and the checker is strict
        assert!(check("x 1").is_err());
        assert!(check("# TYPE a_total counter\nb_total 1").is_err());
        assert!(check("# TYPE a counter\na 1").is_err());
    }
}
