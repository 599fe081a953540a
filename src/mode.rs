//! Color modes, free of I/O: `random` (the default: a random hex for Prime/Turbo users, a
//! random named color otherwise), `rainbow` (the hue moves on by a step after each message;
//! the 15 named colors in hue order for users without Turbo/Prime), and `palette` (the
//! person's own colors, in order or shuffled without repeats). No mode ever picks the color
//! in use.

use std::fmt;

use nanorand::Rng;

use crate::color::{self, hsl_to_hex, same, NAMED};

/// Saturation and lightness of rainbow colors (percent): vivid, and readable on Twitch's
/// dark and light themes.
const RAINBOW_SAT: u32 = 90;
const RAINBOW_LIGHT: u32 = 55;

/// Which way colors are picked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    /// A random color each time.
    #[default]
    Random,
    /// Around the color wheel, a step per message.
    Rainbow,
    /// The person's palette.
    Palette,
}

impl Kind {
    /// The name in the config, the environment and `ccm`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Rainbow => "rainbow",
            Kind::Palette => "palette",
        }
    }

    /// Reads a name in any case.
    pub fn parse(name: &str) -> Option<Kind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "random" => Some(Kind::Random),
            "rainbow" => Some(Kind::Rainbow),
            "palette" => Some(Kind::Palette),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user's color settings: `color_mode`, `rainbow_step`, `palette`, `palette_order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The mode in use.
    pub kind: Kind,
    /// Hue degrees per message in rainbow mode, 1-359.
    pub(crate) rainbow_step: u32,
    /// Colors as Helix takes them (named in lowercase, or `#rrggbb`); at least two distinct
    /// ones when given.
    pub palette: Vec<String>,
    /// Palette order: shuffled without repeats instead of in order.
    pub(crate) shuffle: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kind: Kind::Random,
            rainbow_step: 30,
            palette: Vec::new(),
            shuffle: false,
        }
    }
}

impl Settings {
    /// True when the palette holds at least two different colors (palette mode needs that
    /// to never repeat a color).
    pub(crate) fn has_palette(&self) -> bool {
        let p = &self.palette;
        (1..p.len()).any(|i| p[..i].iter().any(|b| !same(&p[i], b)))
    }

    /// A few words for logs and `check`.
    pub(crate) fn describe(&self, prime_or_turbo: bool) -> String {
        match (self.kind, prime_or_turbo) {
            (Kind::Random, true) => "random hex colors".into(),
            (Kind::Random, false) => "random named colors".into(),
            (Kind::Rainbow, true) => format!("rainbow, {}° a message", self.rainbow_step),
            (Kind::Rainbow, false) => "rainbow through the named colors".into(),
            (Kind::Palette, _) => format!(
                "palette of {} colors{}",
                self.palette.len(),
                if self.shuffle { ", shuffled" } else { "" }
            ),
        }
    }
}

/// Picks the next color by the settings, remembering where the rainbow or the palette is.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    settings: Settings,
    /// Rainbow: the hue (degrees) of the last color picked, hex or named.
    hue: Option<u32>,
    /// Palette in order: the next index.
    index: usize,
    /// Palette shuffled: the indices still to come in this round.
    bag: Vec<usize>,
}

impl Picker {
    /// A picker starting fresh with `settings`.
    pub fn new(settings: Settings) -> Picker {
        Picker {
            settings,
            hue: None,
            index: 0,
            bag: Vec::new(),
        }
    }

    /// The settings in use.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// New settings; the rainbow and the palette start over when they changed.
    pub fn set(&mut self, settings: Settings) {
        if settings != self.settings {
            *self = Picker::new(settings);
        }
    }

    /// The next color, never `current`.
    pub fn next(
        &mut self,
        rng: &mut impl Rng<8>,
        prime_or_turbo: bool,
        current: Option<&str>,
    ) -> String {
        match self.settings.kind {
            Kind::Random => color::next(rng, prime_or_turbo, current),
            Kind::Rainbow if prime_or_turbo => self.rainbow_hex(rng, current),
            Kind::Rainbow => self.rainbow_named(rng, current),
            Kind::Palette => self.palette_pick(rng, prime_or_turbo, current),
        }
    }

    fn rainbow_hex(&mut self, rng: &mut impl Rng<8>, current: Option<&str>) -> String {
        let start = self
            .hue
            .or_else(|| current.and_then(hue_of))
            .unwrap_or_else(|| rng.generate_range(0u32..360));
        let mut hue = start;
        loop {
            hue = (hue + self.settings.rainbow_step.clamp(1, 359)) % 360;
            let color = hsl_to_hex(hue, RAINBOW_SAT, RAINBOW_LIGHT);
            if current.is_none_or(|c| !same(&color, c)) || hue == start {
                self.hue = Some(hue);
                return color;
            }
        }
    }

    fn rainbow_named(&mut self, rng: &mut impl Rng<8>, current: Option<&str>) -> String {
        let order = named_by_hue();
        let at_current = current.and_then(|c| order.iter().position(|n| same(n, c)));
        // from the named color in use, else from the hue the rainbow reached (a hex one
        // before Turbo ran out, say), else from the color in use, else anywhere
        let place = at_current.unwrap_or_else(|| {
            let hue = self
                .hue
                .or_else(|| current.and_then(hue_of))
                .unwrap_or_else(|| rng.generate_range(0u32..360));
            let distance = |n: &&str| {
                let d = hue_of(n).unwrap_or(0).abs_diff(hue) % 360;
                d.min(360 - d)
            };
            (0..order.len())
                .min_by_key(|&i| distance(&order[i]))
                .unwrap_or(0)
        });
        // a step of 24° is one named color; never less than one
        let steps = ((self.settings.rainbow_step as usize + 12) / 24).clamp(1, order.len() - 1);
        let mut next = (place + steps) % order.len();
        if at_current == Some(next) {
            next = (next + 1) % order.len();
        }
        self.hue = hue_of(order[next]);
        order[next].to_owned()
    }

    fn palette_pick(
        &mut self,
        rng: &mut impl Rng<8>,
        prime_or_turbo: bool,
        current: Option<&str>,
    ) -> String {
        // hex entries are no use without Turbo/Prime: Twitch refuses them
        let usable: Vec<usize> = (0..self.settings.palette.len())
            .filter(|&i| prime_or_turbo || !color::is_hex(&self.settings.palette[i]))
            .collect();
        let distinct = usable
            .iter()
            .any(|&i| current.is_none_or(|c| !same(&self.settings.palette[i], c)));
        if !distinct {
            return color::next(rng, prime_or_turbo, current);
        }
        loop {
            let i = if self.settings.shuffle {
                // a bag filled with Turbo/Prime may hold hex entries no longer usable
                self.bag.retain(|i| usable.contains(i));
                if self.bag.is_empty() {
                    self.bag = usable.clone();
                    // Fisher-Yates; the bag is drawn from its end
                    for k in (1..self.bag.len()).rev() {
                        let j = rng.generate_range(0..=k);
                        self.bag.swap(k, j);
                    }
                }
                self.bag.pop().unwrap_or(usable[0])
            } else {
                let i = usable[self.index % usable.len()];
                self.index = (self.index + 1) % usable.len();
                i
            };
            let color = &self.settings.palette[i];
            if current.is_none_or(|c| !same(color, c)) {
                return color.clone();
            }
        }
    }
}

/// The hue (degrees) of `#rrggbb` or a named color.
pub fn hue_of(color: &str) -> Option<u32> {
    let (r, g, b) = color::rgb(color)?;
    let [r, g, b] = [r, g, b].map(|v| f64::from(v) / 255.0);
    let max = r.max(g).max(b);
    let d = max - r.min(g).min(b);
    if d == 0.0 {
        return Some(0);
    }
    let h = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    Some((h * 60.0).round() as u32 % 360)
}

/// The 15 named colors ordered by hue.
pub fn named_by_hue() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = NAMED.iter().map(|(n, _)| *n).collect();
    names.sort_by_key(|n| hue_of(n).unwrap_or(0));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanorand::WyRand;

    fn settings(kind: Kind) -> Settings {
        Settings {
            kind,
            ..Settings::default()
        }
    }

    #[test]
    fn rainbow_moves_the_hue_by_the_step_from_the_color_in_use() {
        let mut rng = WyRand::new_seed(1);
        let mut p = Picker::new(settings(Kind::Rainbow));
        let first = p.next(&mut rng, true, Some("#FF0000"));
        assert_eq!(hue_of(&first), Some(30));
        let second = p.next(&mut rng, true, Some(&first));
        assert_eq!(hue_of(&second), Some(60));
        // all the way round, never the same twice in a row
        let mut last = second;
        for _ in 0..30 {
            let next = p.next(&mut rng, true, Some(&last));
            assert!(!same(&next, &last));
            last = next;
        }
        let mut p = Picker::new(Settings {
            rainbow_step: 5,
            ..settings(Kind::Rainbow)
        });
        assert_eq!(hue_of(&p.next(&mut rng, true, Some("#00FF00"))), Some(125));
    }

    #[test]
    fn rainbow_without_turbo_walks_the_named_colors_in_hue_order() {
        let order = named_by_hue();
        assert_eq!(order.len(), 15);
        // reds first (hue 0), greens in the middle, violets last
        assert_eq!(&order[..2], ["firebrick", "red"]);
        assert_eq!(order[14], "hot_pink");
        let mut rng = WyRand::new_seed(2);
        let mut p = Picker::new(settings(Kind::Rainbow));
        let mut current = order[0].to_owned();
        let mut seen = Vec::new();
        for _ in 0..15 {
            let next = p.next(&mut rng, false, Some(&current));
            assert!(NAMED.iter().any(|(n, _)| *n == next));
            assert!(!same(&next, &current));
            seen.push(next.clone());
            current = next;
        }
        // a 30° step is one named color: the whole wheel in 15 messages
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 15, "{seen:?}");
        assert_eq!(seen[0], order[1]);
    }

    #[test]
    fn rainbow_losing_turbo_goes_on_from_the_hue_it_reached() {
        let mut rng = WyRand::new_seed(4);
        let mut p = Picker::new(settings(Kind::Rainbow));
        let hex = p.next(&mut rng, true, Some("#FF0000"));
        assert_eq!(hue_of(&hex), Some(30));
        // the named color nearest 30° is chocolate (25°); one step on
        let named = p.next(&mut rng, false, Some(&hex));
        assert_eq!(named, "golden_rod");
        assert_eq!(p.next(&mut rng, false, Some(&named)), "yellow_green");
        // and back to hex from there when Turbo returns
        let back = p.next(&mut rng, true, Some("yellow_green"));
        assert_eq!(hue_of(&back), hue_of("yellow_green").map(|h| h + 30));
    }

    #[test]
    fn a_shuffled_palette_losing_turbo_draws_only_named_entries() {
        let mut rng = WyRand::new_seed(5);
        let mut p = Picker::new(Settings {
            palette: vec![
                "#111111".into(),
                "#222222".into(),
                "red".into(),
                "blue".into(),
            ],
            shuffle: true,
            ..settings(Kind::Palette)
        });
        let first = p.next(&mut rng, true, None);
        let mut current = first;
        for _ in 0..6 {
            let next = p.next(&mut rng, false, Some(&current));
            assert!(!color::is_hex(&next), "{next}");
            current = next;
        }
    }

    #[test]
    fn palette_in_order_skips_the_color_in_use() {
        let mut rng = WyRand::new_seed(3);
        let mut p = Picker::new(Settings {
            palette: vec!["red".into(), "#00ff00".into(), "blue".into()],
            ..settings(Kind::Palette)
        });
        let picks: Vec<String> = (0..4)
            .scan(Some("red".to_owned()), |cur, _| {
                let next = p.next(&mut rng, true, cur.as_deref());
                *cur = Some(next.clone());
                Some(next)
            })
            .collect();
        assert_eq!(picks, ["#00ff00", "blue", "red", "#00ff00"]);
        // without Turbo/Prime the hex entry is left out
        let mut p = Picker::new(Settings {
            palette: vec!["red".into(), "#00ff00".into(), "blue".into()],
            ..settings(Kind::Palette)
        });
        assert_eq!(p.next(&mut rng, false, None), "red");
        assert_eq!(p.next(&mut rng, false, Some("red")), "blue");
        assert_eq!(p.next(&mut rng, false, Some("blue")), "red");
    }

    #[test]
    fn shuffled_palette_uses_each_color_once_per_round_and_never_repeats() {
        let mut rng = WyRand::new_seed(4);
        let colors: Vec<String> = ["red", "blue", "green", "coral", "chocolate"]
            .map(String::from)
            .to_vec();
        let mut p = Picker::new(Settings {
            palette: colors.clone(),
            shuffle: true,
            ..settings(Kind::Palette)
        });
        let mut current: Option<String> = None;
        let mut picks = Vec::new();
        for _ in 0..50 {
            let next = p.next(&mut rng, true, current.as_deref());
            assert_ne!(Some(&next), current.as_ref());
            picks.push(next.clone());
            current = Some(next);
        }
        let mut first_round = picks[..5].to_vec();
        first_round.sort();
        let mut all = colors.clone();
        all.sort();
        assert_eq!(first_round, all);
    }

    #[test]
    fn reads_hues_and_mode_names() {
        assert_eq!(hue_of("#FF0000"), Some(0));
        assert_eq!(hue_of("#00FF00"), Some(120));
        assert_eq!(hue_of("blue"), Some(240));
        assert_eq!(hue_of("#808080"), Some(0));
        assert_eq!(hue_of("nope"), None);
        assert_eq!(Kind::parse(" Rainbow "), Some(Kind::Rainbow));
        assert_eq!(Kind::parse("gradient"), None);
    }
}
