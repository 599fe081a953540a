//! Noticing edits of the config file: inotify on its directory (so that saves by rename,
//! truncate-and-write, delete-and-recreate and Kubernetes-style `..data` symlink swaps are
//! all seen), debounced to half a second of quiet. Where inotify is not available, the
//! file is polled. The watcher only says "look again"; the supervisor reads the file and
//! decides whether anything changed.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use smol::{Async, Timer};

use crate::log;

/// How long the directory must stay quiet before the file is read again.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(500);
/// How often the file is read when inotify is not available.
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(2);

/// Sends `()` on `changed` whenever the config file at `path` may have changed. Runs until
/// the receiver is gone.
pub async fn run(path: PathBuf, changed: async_channel::Sender<()>) {
    if let Err(e) = watch(&path, &changed).await {
        if changed.is_closed() {
            return;
        }
        log!(
            Warn,
            None,
            None,
            "cannot watch {} for changes ({e}); checking it every {}s instead",
            path.display(),
            POLL_EVERY.as_secs()
        );
        while changed.send(()).await.is_ok() {
            Timer::after(POLL_EVERY).await;
        }
    }
}

/// The directories to watch: the file's own, and its target's when it is a symlink.
fn directories(path: &Path) -> Vec<PathBuf> {
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![parent(path)];
    if let Ok(target) = std::fs::canonicalize(path) {
        let dir = parent(&target);
        if std::fs::canonicalize(&dirs[0]).ok().as_ref() != Some(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Whether an event about `name` (in a watched directory) may concern the config file.
fn relevant(name: Option<&OsStr>, names: &[OsString]) -> bool {
    match name {
        // the directory itself was moved or deleted
        None => true,
        Some(n) => names.iter().any(|m| m == n) || n.as_encoded_bytes().starts_with(b".."),
    }
}

async fn watch(path: &Path, changed: &async_channel::Sender<()>) -> io::Result<()> {
    let mut inotify = Inotify::init()?;
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF;
    for dir in directories(path) {
        inotify.watches().add(&dir, mask)?;
    }
    let target = std::fs::canonicalize(path).ok();
    let mut names: Vec<OsString> = [
        path.file_name(),
        target.as_deref().and_then(Path::file_name),
    ]
    .into_iter()
    .flatten()
    .map(OsStr::to_owned)
    .collect();
    // Readiness through a duplicate of the descriptor; the events are read from `inotify`.
    let ready = Async::new(inotify.as_fd().try_clone_to_owned()?)?;
    let mut buf = [0u8; 4096];
    loop {
        ready.readable().await?;
        if !drain(&mut inotify, &mut buf, &names)? {
            continue;
        }
        // Debounce: wait for half a second without events.
        loop {
            let quiet = smol::future::or(
                async {
                    Timer::after(DEBOUNCE).await;
                    true
                },
                async {
                    let _ = ready.readable().await;
                    false
                },
            )
            .await;
            if quiet {
                break;
            }
            drain(&mut inotify, &mut buf, &names)?;
        }
        // A symlink swap may have moved the target: watch where it points now too.
        if let Ok(target) = std::fs::canonicalize(path) {
            for dir in directories(path) {
                let _ = inotify.watches().add(&dir, mask);
            }
            if let Some(name) = target.file_name() {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        if changed.send(()).await.is_err() {
            return Ok(());
        }
    }
}

/// Reads every pending event; true if one may concern the file.
fn drain(inotify: &mut Inotify, buf: &mut [u8], names: &[OsString]) -> io::Result<bool> {
    let mut any = false;
    loop {
        match inotify.read_events(buf) {
            Ok(events) => {
                let mut n = 0;
                for event in events {
                    n += 1;
                    any |= relevant(event.name, names);
                }
                if n == 0 {
                    return Ok(any);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_file_and_kubernetes_links_matter() {
        let names = ["twitch_colorchanger.conf".into()];
        assert!(relevant(
            Some(OsStr::new("twitch_colorchanger.conf")),
            &names
        ));
        assert!(relevant(Some(OsStr::new("..data")), &names));
        assert!(relevant(None, &names));
        for other in [
            ".twitch_colorchanger.conf.tmp12",
            "twitch_colorchanger.conf.status.json",
            "notes.txt",
        ] {
            assert!(!relevant(Some(OsStr::new(other)), &names), "{other}");
        }
    }
}
