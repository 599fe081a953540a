//! Soak on the virtual clock: three users for 30 simulated days through the sans-IO cores that
//! decide everything the bot does over time (the user core and the token schedule): a message
//! every 10 s, a server RECONNECT every 3 h, access tokens living 4 h. The counts of color
//! changes, reconnects, refreshes and validations must match the schedule exactly, every timer
//! must fire once when due (none lost, none doubled), and nothing may pile up.

use std::time::{Duration, Instant};

use twitch_colorchanger::chat::{CloseReason, Event};
use twitch_colorchanger::config::UserConfig;
use twitch_colorchanger::log::{self, Level, Settings};
use twitch_colorchanger::secret::Secret;
use twitch_colorchanger::tokens::{Due, Schedule, REFRESH_AHEAD, VALIDATE_EVERY};
use twitch_colorchanger::usercore::{Action, Counters, Identity, State, UserCore};

const DAY: u64 = 86_400;
const DAYS: u64 = 30;
const MESSAGE_EVERY: u64 = 10;
const RECONNECT_EVERY: u64 = 3 * 3600;
const LIFETIME: Duration = Duration::from_secs(4 * 3600);

struct Sim {
    core: UserCore,
    schedule: Schedule,
    expires_at: Instant,
    connected: bool,
    changes: u64,
    delivered: u64,
    skipped: u64,
    connects: u64,
    reconnects: u64,
    refreshes: u64,
    validations: u64,
}

fn user(name: &str, prime: bool) -> UserConfig {
    UserConfig {
        username: name.into(),
        access_token: Secret::new("tok"),
        refresh_token: Secret::new("ref"),
        client_id: "cid".into(),
        client_secret: Secret::default(),
        channels: vec![format!("{name}_home"), "shared".into()],
        is_prime_or_turbo: prime,
        enabled: true,
        token_expiry: None,
        chat_transport: None,
        colors: Default::default(),
    }
}

impl Sim {
    fn new(t0: Instant, name: &str, prime: bool, seed: u64) -> Sim {
        let config = user(name, prime);
        let mut core = UserCore::new(t0, &config, Counters::default(), seed);
        assert_eq!(core.poll_action(), Some(Action::LookUpUser));
        core.handle_lookup(
            t0,
            Ok(Identity {
                id: seed.to_string(),
                login: name.into(),
                color: Ok(None),
            }),
        );
        let mut schedule = Schedule::default();
        schedule.validated(t0, LIFETIME);
        let mut sim = Sim {
            core,
            schedule,
            expires_at: t0 + LIFETIME,
            connected: false,
            changes: 0,
            delivered: 0,
            skipped: 0,
            connects: 0,
            reconnects: 0,
            refreshes: 0,
            validations: 0,
        };
        sim.settle(t0);
        sim
    }

    /// Performs what the core asks, as a healthy Twitch would answer, until it asks nothing.
    fn settle(&mut self, now: Instant) {
        let mut steps = 0;
        while let Some(action) = self.core.poll_action() {
            steps += 1;
            assert!(steps < 10, "the core keeps asking: {action:?}");
            match action {
                Action::Connect => {
                    self.connects += 1;
                    self.core.handle_chat(now, Event::Ready);
                    for channel in self.core.channels().to_vec() {
                        self.core.handle_chat(now, Event::Joined(channel));
                    }
                    self.connected = true;
                }
                Action::SetColor(_) => {
                    self.core
                        .handle_put(now, std::time::SystemTime::UNIX_EPOCH, Ok(()));
                    self.changes += 1;
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [self.core.poll_timeout(), self.schedule.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timers(&mut self, now: Instant) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            self.settle(now);
            assert!(
                self.core.poll_timeout().is_none_or(|t| t > now),
                "a core timer fired but stayed due"
            );
        }
        match self.schedule.due(now) {
            Some(Due::Refresh) => {
                self.refreshes += 1;
                self.schedule.renewed(now, Some(LIFETIME));
                self.expires_at = now + LIFETIME;
            }
            Some(Due::Validate) => {
                self.validations += 1;
                self.schedule
                    .validated(now, self.expires_at.saturating_duration_since(now));
            }
            None => {}
        }
        assert!(
            self.schedule.poll_timeout().is_some_and(|t| t > now),
            "the token schedule lost its next deadline or left one due"
        );
    }

    fn message(&mut self, now: Instant) {
        if !self.connected {
            self.skipped += 1; // chat is down for the second a reconnect takes
            return;
        }
        self.delivered += 1;
        self.core.handle_chat(
            now,
            Event::OwnMessage {
                channel: "shared".into(),
                text: "hello".into(),
                id: Some(format!("m{}", self.delivered)),
                copy: false,
            },
        );
        self.settle(now);
    }

    fn reconnect(&mut self, now: Instant) {
        self.reconnects += 1;
        self.connected = false;
        self.core
            .handle_chat(now, Event::Closed(CloseReason::Reconnect));
        assert_eq!(self.core.status().state, State::Reconnecting);
        let wait = self.core.poll_timeout().expect("a reconnect timer") - now;
        // a connection that lived 3 h resets the backoff: the first step, 0.5-1 s
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }

    fn check_nothing_piles_up(&self) {
        let status = self.core.status();
        assert!(status.joined.len() <= 2, "{:?}", status.joined);
        if self.connected {
            assert_eq!(status.state, State::Connected);
            assert_eq!(
                self.core.poll_timeout(),
                None,
                "an idle connected core has no timer"
            );
        }
    }
}

/// How many multiples of `period` lie in (0, end).
fn multiples_below(end: u64, period: u64) -> u64 {
    (end - 1) / period
}

#[test]
fn three_users_for_thirty_days_keep_every_schedule() {
    log::init(Settings {
        quiet_below: Level::Error,
        ..Settings::from_env()
    });
    let t0 = Instant::now();
    let end = DAYS * DAY;
    let mut sims = [
        Sim::new(t0, "alpha_user", true, 1),
        Sim::new(t0, "beta_user", false, 2),
        Sim::new(t0, "gamma_user", true, 3),
    ];
    // the users' messages and reconnects are offset from each other
    let mut next_message = [3, 5, 7];
    let mut next_reconnect = [
        RECONNECT_EVERY,
        RECONNECT_EVERY + 600,
        RECONNECT_EVERY + 1200,
    ];
    let mut now_s: u64 = 0;
    loop {
        // the next event of any kind, in whole seconds or at a core's exact deadline
        let mut next = end;
        for (i, sim) in sims.iter().enumerate() {
            next = next.min(next_message[i]).min(next_reconnect[i]);
            if let Some(at) = sim.next_deadline() {
                next = next.min(at.duration_since(t0).as_secs().max(now_s));
            }
        }
        if next >= end {
            break;
        }
        now_s = next;
        for (i, sim) in sims.iter_mut().enumerate() {
            // a core deadline may fall inside this second: handle it at its exact instant
            while let Some(at) = sim.next_deadline() {
                if at.duration_since(t0).as_secs() > now_s {
                    break;
                }
                sim.on_timers(at);
            }
            let now = t0 + Duration::from_secs(now_s);
            if next_reconnect[i] == now_s {
                sim.reconnect(now);
                next_reconnect[i] += RECONNECT_EVERY;
            }
            if next_message[i] == now_s {
                sim.message(now);
                next_message[i] += MESSAGE_EVERY;
            }
            sim.check_nothing_piles_up();
        }
    }

    let refresh_every = (LIFETIME - REFRESH_AHEAD).as_secs();
    let expected_refreshes = multiples_below(end, refresh_every);
    // three hourly validations fit in each refresh period, including the last, partial one
    let mut expected_validations = 0;
    for cycle in 0..=expected_refreshes {
        let start = cycle * refresh_every;
        let stop = (start + refresh_every).min(end);
        expected_validations += multiples_below(stop - start, VALIDATE_EVERY.as_secs())
            + u64::from((stop - start).is_multiple_of(VALIDATE_EVERY.as_secs()) && stop < end);
    }
    for (i, sim) in sims.iter().enumerate() {
        let first_reconnect = RECONNECT_EVERY + 600 * i as u64;
        let reconnects = (end - 1 - first_reconnect) / RECONNECT_EVERY + 1;
        let first_message = [3, 5, 7][i];
        let messages = (end - 1 - first_message) / MESSAGE_EVERY + 1;
        assert_eq!(sim.reconnects, reconnects, "user {i}: reconnects");
        assert_eq!(
            sim.connects,
            reconnects + 1,
            "user {i}: one connect per reconnect, none lost or doubled"
        );
        assert_eq!(sim.delivered + sim.skipped, messages, "user {i}: messages");
        assert!(
            sim.skipped <= sim.reconnects,
            "user {i}: at most one message lost per reconnect"
        );
        assert_eq!(
            sim.changes, sim.delivered,
            "user {i}: one change per message"
        );
        assert_eq!(sim.core.status().counters.changes, sim.changes);
        assert_eq!(sim.core.status().counters.messages, sim.delivered);
        assert_eq!(sim.refreshes, expected_refreshes, "user {i}: refreshes");
        assert_eq!(
            sim.validations, expected_validations,
            "user {i}: validations"
        );
    }
    println!(
        "soak: {} simulated days, 3 users, {} color changes, {} reconnects, {} refreshes, {} validations each",
        DAYS,
        sims.iter().map(|s| s.changes).sum::<u64>(),
        sims[0].reconnects,
        sims[0].refreshes,
        sims[0].validations
    );
}
