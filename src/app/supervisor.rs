//! The supervisor: one task and mailbox per user; starts, updates, restarts and
//! stops users as the config changes; stops them all on request; keeps the status file.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future;

use super::{warn_skipped, Request, StartError};
use crate::clock::timeout_at;
use crate::config::{ConfigError, UserConfig};
use crate::notify::Notify;
use crate::user::{Mailbox, Services};
use crate::usercore::Counters;
use crate::{config, log, status, user};

/// Why the config should be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reload {
    /// The watcher saw the file change: apply it if its text differs.
    Changed,
    /// SIGHUP: read it now, and re-apply even if the text is the same.
    Now,
}

/// A user task that ended.
#[derive(Debug)]
struct Ended {
    /// The user's key (lowercase login).
    key: String,
    /// Which start of the user it was.
    generation: u64,
    /// Why it gave up (`None`: it was stopped).
    gave_up: Option<String>,
}

/// A running user, as the supervisor holds it.
struct Running {
    /// The settings it runs with (as last applied).
    config: UserConfig,
    /// Its orders, and its newest report.
    mailbox: Arc<Mailbox>,
    /// Which start this is, to tell a restarted user's end from its predecessor's.
    generation: u64,
    /// Set when the user gave up (no authorisation); its task has ended.
    gave_up: Option<String>,
    _task: smol::Task<()>,
}

/// Holds one task per user; starts, updates, restarts and stops them as the config
/// changes; writes the status file.
pub(super) struct Supervisor<'a> {
    executor: &'a smol::LocalExecutor<'static>,
    services: Arc<Services>,
    users: Vec<(String, Running)>,
    generation: u64,
    ended: (async_channel::Sender<Ended>, async_channel::Receiver<Ended>),
    status_changed: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// The config text last applied (or found invalid).
    applied: String,
    missing: bool,
    status_warned: bool,
    /// The process is stopping: the status says `stopped` for every user.
    stopped: bool,
    /// Where the status file goes (`None`: nowhere could hold it, said at start).
    pub(super) status_path: Option<PathBuf>,
    /// Where the HTTP listener reads the status from, when it runs.
    pub(super) page: Option<Arc<crate::status::latest::Latest>>,
    /// Documents an interrupted save left behind, read at start-up (see [`read_at_start`]).
    pub(super) leftovers: Vec<serde_json::Value>,
    /// The open-files limits the process runs under.
    pub(super) nofile: crate::nofile::Limits,
    /// systemd's notification socket, and the status line it was last told.
    pub(super) notify: Rc<Notify>,
    told: String,
}

impl<'a> Supervisor<'a> {
    pub(super) fn new(
        executor: &'a smol::LocalExecutor<'static>,
        services: Arc<Services>,
        text: String,
    ) -> Self {
        Supervisor {
            executor,
            services,
            users: Vec::new(),
            generation: 0,
            ended: async_channel::unbounded(),
            status_changed: async_channel::bounded(1),
            applied: text,
            missing: false,
            status_warned: false,
            status_path: None,
            page: None,
            stopped: false,
            leftovers: Vec::new(),
            nofile: crate::nofile::current(),
            notify: Rc::default(),
            told: String::new(),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|(key, _)| *key == name.to_ascii_lowercase())
    }

    pub(super) fn start(&mut self, user: UserConfig, counters: Counters) {
        let spares =
            config::spare_refresh_tokens(&self.leftovers, &user.username, &user.refresh_token);
        let mailbox = Mailbox::new(self.status_changed.0.clone());
        self.generation += 1;
        let generation = self.generation;
        let key = user.username.to_ascii_lowercase();
        let ended = self.ended.0.clone();
        let name = key.clone();
        // boxed: a future moved into an async block is held twice, as the block's capture
        // and as what it awaits (2.5 KB per user)
        let run = Box::pin(user::run(
            self.services.clone(),
            user.clone(),
            spares,
            mailbox.clone(),
            counters,
        ));
        let task = self.executor.spawn(async move {
            let gave_up = run.await.err().map(|e| e.to_string());
            // unbounded: never full
            let _ = ended.try_send(Ended {
                key: name,
                generation,
                gave_up,
            });
        });
        let running = Running {
            config: user,
            mailbox,
            generation,
            gave_up: None,
            _task: task,
        };
        match self.find(&key) {
            Some(i) => self.users[i] = (key, running),
            None => self.users.push((key, running)),
        }
        let _ = self.status_changed.0.try_send(());
    }

    pub(super) async fn run(
        &mut self,
        requests: async_channel::Receiver<Request>,
        changed: async_channel::Receiver<()>,
    ) -> Result<(), StartError> {
        enum Wake {
            Stop,
            Reload(Reload),
            Ended(Ended),
            StatusChanged,
            WriteStatus,
        }
        // every user is started (each connects on its own): systemd may go on
        self.notify.send("READY=1");
        let clock = self.services.clock.clone();
        let mut next_write = clock.now();
        let mut dirty_since: Option<Instant> = None;
        // the timer of the next status write, made again only when that moment moves (a
        // new timer is an allocation; on async-io it also woke the reactor's thread)
        let mut timer: Option<(Instant, crate::clock::Sleep)> = None;
        loop {
            let ended = self.ended.1.clone();
            let status = self.status_changed.1.clone();
            // a burst of status changes settles into one write
            let write_at = dirty_since.map_or(next_write, |d| (d + STATUS_SETTLE).min(next_write));
            if timer.as_ref().is_none_or(|(at, _)| *at != write_at) {
                timer = Some((write_at, clock.sleep_until(write_at)));
            }
            let sleep = &mut timer.as_mut().expect("armed just above").1;
            let wake = future::or(
                future::or(
                    async {
                        match requests.recv().await {
                            Ok(Request::Reload) => Wake::Reload(Reload::Now),
                            Ok(Request::Stop) => Wake::Stop,
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        match changed.recv().await {
                            Ok(()) => Wake::Reload(Reload::Changed),
                            Err(_) => future::pending().await,
                        }
                    },
                ),
                future::or(
                    async {
                        match ended.recv().await {
                            Ok(ended) => Wake::Ended(ended),
                            Err(_) => future::pending().await,
                        }
                    },
                    future::or(
                        async {
                            // already due to be written: later changes need no wake (one
                            // per chat message before), the write reads the newest reports
                            if dirty_since.is_some() {
                                future::pending::<()>().await;
                            }
                            let _ = status.recv().await;
                            Wake::StatusChanged
                        },
                        async {
                            sleep.await;
                            Wake::WriteStatus
                        },
                    ),
                ),
            )
            .await;
            match wake {
                Wake::Stop => {
                    self.notify
                        .send("STOPPING=1\nSTATUS=stopping: saving tokens");
                    self.stop().await;
                    // the last word: every user stopped, not what it was doing
                    self.stopped = true;
                    self.write_status().await;
                    return Ok(());
                }
                Wake::Reload(why) => {
                    // systemctl reload (SIGHUP): systemd shows "reloading" until it is applied
                    let asked = why == Reload::Now;
                    if asked {
                        self.notify.send("RELOADING=1");
                    }
                    self.reload(why).await;
                    if asked {
                        self.notify.send("READY=1");
                    }
                }
                Wake::Ended(ended) => {
                    if let Some(i) = self.find(&ended.key) {
                        let running = &mut self.users[i].1;
                        if running.generation == ended.generation {
                            running.gave_up =
                                Some(ended.gave_up.unwrap_or_else(|| "stopped".into()));
                        }
                    }
                    if !self.users.is_empty() && self.users.iter().all(|(_, r)| r.gave_up.is_some())
                    {
                        self.write_status().await;
                        return Err(StartError::NoUserLeft);
                    }
                }
                Wake::StatusChanged => {
                    dirty_since.get_or_insert(clock.now());
                }
                Wake::WriteStatus => {
                    timer = None;
                    dirty_since = None;
                    // the nudges that came meanwhile are in this write
                    while self.status_changed.1.try_recv().is_ok() {}
                    self.write_status().await;
                    next_write = clock.now() + status::WRITE_EVERY;
                }
            }
        }
    }

    /// Asks every running user to stop and waits until they have (each ends at once unless
    /// a token pair Twitch may already have rotated is still being saved).
    async fn stop(&mut self) {
        let mut running = 0;
        for (_, user) in &self.users {
            if user.gave_up.is_none() {
                user.mailbox.stop();
                running += 1;
            }
        }
        let clock = self.services.clock.clone();
        let deadline = clock.now() + user::STOP_GRACE + Duration::from_millis(500);
        while running > 0 {
            match timeout_at(&*clock, deadline, self.ended.1.recv()).await {
                Some(Ok(ended)) => {
                    if self
                        .find(&ended.key)
                        .is_some_and(|i| self.users[i].1.generation == ended.generation)
                    {
                        running -= 1;
                    }
                }
                Some(Err(_)) | None => return,
            }
        }
    }

    /// Reads the config file again and applies what changed.
    async fn reload(&mut self, why: Reload) {
        let path = self.services.config.path().to_owned();
        let read = {
            let file = self.services.config.clone();
            // an editor's save made a new file: the lock goes with the file now there
            smol::unblock(move || {
                file.relock();
                config::read_text(file.path())
            })
            .await
        };
        let text = match read {
            Ok(text) => text,
            Err(ConfigError::Missing(_)) => {
                if !self.missing {
                    log!(Warn, None, None, "{}: the config file is gone; running on the last good config until it is back", path.display());
                    self.missing = true;
                }
                return;
            }
            Err(e) => {
                log!(Error, None, None, "{e}; keeping the last good config");
                return;
            }
        };
        if std::mem::take(&mut self.missing) {
            log!(
                Info,
                None,
                None,
                "{}: the config file is back",
                path.display()
            );
        }
        if why == Reload::Changed && text == self.applied {
            return;
        }
        // The bot's own write: a token save, ccd/cce, named colors. It is still applied (an edit
        // the person made just before is in it, since saves re-read the file), quietly: what
        // the bot wrote matches what its users already run with, so nothing else happens.
        let own = self.services.config.written_by_us(text.as_bytes());
        if own {
            log!(
                Debug,
                None,
                None,
                "{}: changed by the bot itself; nothing to reload",
                path.display()
            );
        }
        self.applied = text.clone();
        let cfg = match config::parse(&path, &text) {
            Ok(cfg) => cfg,
            Err(ConfigError::NoValidUsers(p, problems)) => {
                log!(Error, None, None, "config not reloaded: {}: no valid user; the bot keeps running on the last good config", p.display());
                for problem in problems {
                    log!(Error, None, None, "{}: {problem}", p.display());
                }
                return;
            }
            Err(e) => {
                log!(Error, None, None, "config not reloaded: {e}; the bot keeps running on the last good config (fix the file and save it again)");
                return;
            }
        };
        if !own {
            log!(Info, None, None, "{}: config reloaded", path.display());
            warn_skipped(&cfg);
        }
        self.apply(cfg.users, own);
    }

    /// Starts added users, stops removed ones, restarts those whose credentials the person
    /// changed, and hands every other change to the running user; untouched users see nothing.
    fn apply(&mut self, wanted: Vec<UserConfig>, own: bool) {
        let keys: Vec<String> = wanted
            .iter()
            .map(|u| u.username.to_ascii_lowercase())
            .collect();
        let before = self.users.len();
        self.users.retain(|(key, running)| {
            let keep = keys.contains(key);
            if !keep {
                log!(
                    Info,
                    Some(&running.config.username),
                    None,
                    "removed from the config: stopped"
                );
            }
            keep
        });
        if self.users.len() != before {
            let _ = self.status_changed.0.try_send(());
        }
        for user in wanted {
            let Some(i) = self.find(&user.username) else {
                log!(Info, Some(&user.username), None, "added to the config");
                self.start(user, Counters::default());
                continue;
            };
            let running = &mut self.users[i].1;
            let restart = if running.gave_up.is_some() && running.config != user {
                Some("config changed: starting this user again")
            } else if credentials_changed(running, &user, own) {
                Some("credentials changed in the config: restarting this user")
            } else {
                None
            };
            if let Some(why) = restart {
                log!(Info, Some(&user.username), None, "{why}");
                let counters = counters_of(running);
                self.start(user, counters);
            } else if running.config != user {
                running.config = user.clone();
                running.mailbox.update(user);
            }
        }
        // keep the config's order for the status file
        self.users
            .sort_by_key(|(key, _)| keys.iter().position(|k| k == key));
    }

    /// The open-files limit against what these users need (see [`crate::nofile`]).
    fn nofile_too_low(&self, users: &[status::UserStatus]) -> Option<crate::nofile::TooLow> {
        let eventsub = users.iter().filter(|u| u.transport == "eventsub").count();
        let need = crate::nofile::need(users.len() - eventsub, eventsub, self.page.is_some());
        crate::nofile::TooLow::check(self.nofile, need)
    }

    fn document(&self) -> status::Document {
        let clock = &*self.services.clock;
        let (now, wall) = (clock.now(), clock.wall());
        let wall_of = |at: Instant| wall.checked_sub(now.saturating_duration_since(at));
        let users: Vec<status::UserStatus> = self
            .users
            .iter()
            .map(|(_, r)| {
                let (tokens, core) = r
                    .mailbox
                    .read(|report| report.map(|r| (r.tokens.clone(), r.user.clone())))
                    .unzip();
                let transport = core.as_ref().map_or_else(
                    || {
                        r.config
                            .chat_transport
                            .unwrap_or(self.services.default_transport)
                    },
                    |s| s.transport,
                );
                let (state, enabled, channels, color, counters, down) = match core {
                    Some(s) => (
                        s.state.name(),
                        s.enabled,
                        s.joined,
                        s.color,
                        s.counters,
                        s.chat_down_since,
                    ),
                    None => (
                        "starting",
                        r.config.enabled,
                        Vec::new(),
                        None,
                        Counters::default(),
                        Some(now),
                    ),
                };
                let state = if r.gave_up.is_some() || self.stopped {
                    "stopped"
                } else if tokens.as_ref().is_some_and(|t| t.authorising) {
                    "awaiting_authorisation"
                } else {
                    state
                };
                status::UserStatus {
                    username: r.config.username.clone(),
                    state: state.into(),
                    enabled,
                    channels,
                    color,
                    changes: counters.changes,
                    messages: counters.messages,
                    last_change_at: status::stamp(counters.last_change_at.and_then(wall_of)),
                    last_error: r.gave_up.clone().or(counters.last_error),
                    token_expires_at: status::stamp(
                        tokens.and_then(|t| t.expires_at).or(r.config.token_expiry),
                    ),
                    chat_down_since: status::stamp(down.and_then(wall_of)),
                    transport: transport.name().into(),
                    errors: counters.errors,
                    reconnects: counters.reconnects,
                    recent_colors: counters
                        .recent
                        .iter()
                        .filter_map(|(color, at)| {
                            Some(status::RecentColor {
                                color: color.to_string(),
                                at: status::stamp(wall_of(*at))?,
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        status::Document {
            written_at: crate::time::format_rfc3339(wall),
            pid: std::process::id(),
            config: self.services.config.path().display().to_string(),
            clock: self.services.clock_watch.current().map(|s| s.to_string()),
            nofile: self.nofile_too_low(&users).map(|t| t.to_string()),
            users,
        }
    }

    async fn write_status(&mut self) {
        let doc = Arc::new(self.document());
        let line = status::in_chat(&doc.users);
        if line != self.told && !self.stopped {
            self.notify.send(&format!("STATUS={line}"));
            self.told = line;
        }
        if let Some(page) = &self.page {
            page.publish(doc.clone());
        }
        let Some(path) = self.status_path.clone() else {
            return;
        };
        let shown = path.display().to_string();
        let result =
            smol::unblock(move || status::place::write(&path, |out| doc.write_pretty(out))).await;
        match result {
            Ok(()) => self.status_warned = false,
            Err(e) if !self.status_warned => {
                self.status_warned = true;
                log!(Warn, None, None, "cannot write the status file {shown} ({e}); --health-check and status will not see this bot until it can");
            }
            Err(_) => {}
        }
    }
}

/// Let a burst of status changes settle this long into one write: the status file and page
/// lag at most this much, and a user chatting fast costs one write a second, not one a
/// message.
const STATUS_SETTLE: Duration = Duration::from_secs(1);

fn counters_of(running: &Running) -> Counters {
    running
        .mailbox
        .read(|r| r.map(|r| r.user.counters.clone()))
        .unwrap_or_default()
}

/// The person changed what the user logs in with: the app, or a token that is neither the
/// one the user started with nor the one it holds now (its own refreshes are saved to the
/// file, so they look the same as what it holds). In a file the bot wrote itself, tokens
/// are the bot's (possibly one rotation behind what it holds), never a person's.
fn credentials_changed(running: &Running, user: &UserConfig, own: bool) -> bool {
    let old = &running.config;
    let tokens = (user.access_token.clone(), user.refresh_token.clone());
    let held = running
        .mailbox
        .read(|r| r.map(|r| (r.tokens.access.clone(), r.tokens.refresh.clone())));
    user.client_id != old.client_id
        || user.client_secret != old.client_secret
        || (!own
            && Some(&tokens) != held.as_ref()
            && tokens != (old.access_token.clone(), old.refresh_token.clone()))
}
