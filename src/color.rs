//! Picking the next chat color: a random hex for Prime/Turbo users, one of Twitch's 15
//! named colors for everyone else, never the color in use.

use nanorand::Rng;

/// The named colors any user may set, with the hex Twitch shows for them.
pub const NAMED: [(&str, &str); 15] = [
    ("blue", "#0000FF"),
    ("blue_violet", "#8A2BE2"),
    ("cadet_blue", "#5F9EA0"),
    ("chocolate", "#D2691E"),
    ("coral", "#FF7F50"),
    ("dodger_blue", "#1E90FF"),
    ("firebrick", "#B22222"),
    ("golden_rod", "#DAA520"),
    ("green", "#008000"),
    ("hot_pink", "#FF69B4"),
    ("orange_red", "#FF4500"),
    ("red", "#FF0000"),
    ("sea_green", "#2E8B57"),
    ("spring_green", "#00FF7F"),
    ("yellow_green", "#9ACD32"),
];

/// The hex Twitch shows for a named color (any case); anything else as it is.
fn hex_of(color: &str) -> &str {
    NAMED
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(color))
        .map_or(color, |(_, hex)| hex)
}

/// True when two colors are the same, comparing named colors by their hex.
pub fn same(a: &str, b: &str) -> bool {
    hex_of(a).eq_ignore_ascii_case(hex_of(b))
}

/// The red, green and blue of `#rrggbb` or a named color.
pub fn rgb(color: &str) -> Option<(u8, u8, u8)> {
    let hex = hex_of(color);
    if !is_hex(hex) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((byte(1)?, byte(3)?, byte(5)?))
}

/// True for `#RRGGBB`.
pub fn is_hex(color: &str) -> bool {
    color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A random named color other than `current`.
pub(crate) fn random_named(rng: &mut impl Rng<8>, current: Option<&str>) -> &'static str {
    let choices: Vec<&str> = NAMED
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| current.is_none_or(|c| !same(name, c)))
        .collect();
    choices[rng.generate_range(0..choices.len())]
}

/// A random `#RRGGBB` from hue 0-359, saturation 60-100 %, lightness 35-75 %, other than `current`.
pub(crate) fn random_hex(rng: &mut impl Rng<8>, current: Option<&str>) -> String {
    loop {
        let hue = rng.generate_range(0u32..360);
        let sat = rng.generate_range(60u32..=100);
        let light = rng.generate_range(35u32..=75);
        let color = hsl_to_hex(hue, sat, light);
        if current.is_none_or(|c| !same(&color, c)) {
            return color;
        }
    }
}

/// A color a person typed (`ccc Sea_Green`, `ccc #A1B2C3`, `ccc abc`), as Helix takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Typed {
    /// One of [`NAMED`], in lowercase.
    Named(&'static str),
    /// `#rrggbb`, lowercase; three digits are doubled (`abc` → `#aabbcc`).
    Hex(String),
}

/// What a color may be, for error messages: the 15 names, and hex.
pub fn accepted() -> String {
    let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
    format!(
        "one of the named colors {} (any case, with or without the underscores, so Twitch chat's BlueViolet works too), or hex such as #a1b2c3 (Turbo or Prime only)",
        names.join(", ")
    )
}

/// Reads a typed color: a named color in any case, with or without its underscores (Helix's
/// `hot_pink`, or `HotPink` as Twitch's chat spelled it), or hex with or without `#`, 3 or 6
/// digits.
pub(crate) fn parse_typed(text: &str) -> Option<Typed> {
    let bare = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = bare(text);
    if let Some((name, _)) = NAMED.iter().find(|(n, _)| bare(n) == wanted) {
        return Some(Typed::Named(name));
    }
    let digits = text.strip_prefix('#').unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digits = digits.to_ascii_lowercase();
    match digits.len() {
        6 => Some(Typed::Hex(format!("#{digits}"))),
        3 => Some(Typed::Hex(digits.chars().fold(
            String::from("#"),
            |mut s, c| {
                s.push(c);
                s.push(c);
                s
            },
        ))),
        _ => None,
    }
}

/// The next color for a user.
pub fn next(rng: &mut impl Rng<8>, prime_or_turbo: bool, current: Option<&str>) -> String {
    if prime_or_turbo {
        random_hex(rng, current)
    } else {
        random_named(rng, current).to_owned()
    }
}

/// HSL (degrees, percent, percent) to `#RRGGBB`.
pub(crate) fn hsl_to_hex(hue: u32, sat: u32, light: u32) -> String {
    let h = f64::from(hue % 360) / 60.0;
    let s = f64::from(sat.min(100)) / 100.0;
    let l = f64::from(light.min(100)) / 100.0;
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02X}{:02X}{:02X}", byte(r), byte(g), byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanorand::WyRand;

    #[test]
    fn hsl_matches_known_colors() {
        assert_eq!(hsl_to_hex(0, 100, 50), "#FF0000");
        assert_eq!(hsl_to_hex(120, 100, 25), "#008000");
        assert_eq!(hsl_to_hex(240, 100, 50), "#0000FF");
        assert_eq!(hsl_to_hex(210, 100, 56), "#1F8FFF");
    }

    #[test]
    fn never_repeats_the_current_color() {
        let mut rng = WyRand::new_seed(7);
        let mut current = "dodger_blue".to_owned();
        for _ in 0..500 {
            let next = random_named(&mut rng, Some(&current));
            assert!(!same(next, &current));
            current = next.to_owned();
        }
        // the current color may come back as hex from Helix
        for _ in 0..500 {
            assert_ne!(random_named(&mut rng, Some("#1e90ff")), "dodger_blue");
        }
        let mut hex = "#123456".to_owned();
        for _ in 0..500 {
            let next = random_hex(&mut rng, Some(&hex));
            assert!(is_hex(&next) && next != hex);
            hex = next;
        }
    }

    #[test]
    fn prime_users_get_hex_and_others_named() {
        let mut rng = WyRand::new_seed(1);
        assert!(is_hex(&next(&mut rng, true, None)));
        let named = next(&mut rng, false, None);
        assert!(NAMED.iter().any(|(n, _)| *n == named));
    }

    #[test]
    fn reads_typed_colors_like_the_python_bot() {
        assert_eq!(parse_typed("Sea_Green"), Some(Typed::Named("sea_green")));
        // Twitch chat's own spelling, as its old /color took it
        assert_eq!(parse_typed("HotPink"), Some(Typed::Named("hot_pink")));
        assert_eq!(parse_typed("bluEviolet"), Some(Typed::Named("blue_violet")));
        assert_eq!(parse_typed("#A1B2C3"), Some(Typed::Hex("#a1b2c3".into())));
        assert_eq!(parse_typed("a1b2c3"), Some(Typed::Hex("#a1b2c3".into())));
        assert_eq!(parse_typed("ABC"), Some(Typed::Hex("#aabbcc".into())));
        for bad in ["", "_", "#", "abcd", "#ggg", "purple", "#a1b2c3d", "é"] {
            assert_eq!(parse_typed(bad), None, "{bad}");
        }
    }

    #[test]
    fn same_compares_names_and_hex_case_insensitively() {
        assert!(same("Blue", "#0000ff"));
        assert!(same("#abcdef", "#ABCDEF"));
        assert!(!same("blue", "red"));
    }
}
