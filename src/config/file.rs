//! Writing the config file: one writer at a time, field-preserving updates, atomic
//! replacement (exclusive temp file, fsync, rename, fsync of the directory) that keeps the
//! owner and mode, and the temp files an interrupted save left behind.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::{fs, io};

use serde_json::{Map, Value};

use super::env::merge_env;
use super::read_json;
use super::user::ConfigError;
use crate::secret::Secret;

/// The config file the bot writes to, shared by everything that writes it: its writes run
/// one at a time, and it remembers its last few texts so that a reload can tell the bot's
/// own writes from a person's edits.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// What this process last wrote, newest first; its lock keeps writes one at a time.
    written: Mutex<VecDeque<Vec<u8>>>,
    /// Called between a write's complete, fsynced temp file and its rename (see
    /// [`ConfigFile::before_rename`]): a test hook, not in the release build.
    #[cfg(feature = "fake-twitch")]
    before_rename: Option<fn(&Path)>,
    /// The file, open and locked (see [`ConfigFile::lock`]), once locked.
    held: Mutex<Option<fs::File>>,
}

/// How many of its recent writes the file remembers.
pub(super) const WRITES_KEPT: usize = 4;

impl ConfigFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile {
            path: path.into(),
            written: Mutex::new(VecDeque::new()),
            #[cfg(feature = "fake-twitch")]
            before_rename: None,
            held: Mutex::new(None),
        }
    }

    /// Takes the advisory lock (`flock`) that tells another bot this config is in use, so
    /// that two bots never rotate the same single-use refresh tokens. Nothing is written:
    /// the file is opened for reading and locked, and the lock ends with the process.
    /// `Ok(false)`: another process holds it. A missing file is not locked (`Ok(true)`).
    /// Every rename over the file (the bot's own saves, an editor's) makes a new file, so
    /// the lock is taken again after each.
    pub fn lock(&self) -> io::Result<bool> {
        // only a regular file: opening a FIFO would wait for a writer (reading it says why)
        match fs::metadata(&self.path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        }
        let file = match fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        let mut held = lock(&self.held);
        // locks belong to open files: a second one on the same file would fail against ours
        if held.as_ref().is_some_and(|h| same_file(h, &file)) {
            return Ok(true);
        }
        match file.try_lock() {
            Ok(()) => {
                *held = Some(file);
                Ok(true)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes the lock on the file now at the path, after it was replaced; says so if another
    /// process got there first.
    pub(crate) fn relock(&self) {
        if matches!(self.lock(), Ok(false)) {
            crate::log!(Error, None, None, "{}: another process locked the config (a second bot?); two bots on one config use up each other's refresh tokens", self.path.display());
        }
    }

    /// Calls `hook` with the temp file's path once a write's temp file is complete and
    /// fsynced, right before it is renamed over the file: the window a crash-safety test
    /// kills the process in. Only with the `fake-twitch` feature (the tests').
    #[cfg(feature = "fake-twitch")]
    pub fn before_rename(self, hook: fn(&Path)) -> ConfigFile {
        ConfigFile {
            before_rename: Some(hook),
            ..self
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves a user's new tokens: `access_token`, `refresh_token` and `token_expiry` (RFC
    /// 3339 UTC, as the Python bot writes it), changing nothing else in the file.
    pub fn save_tokens(
        &self,
        username: &str,
        access_token: &Secret,
        refresh_token: &Secret,
        expiry: Option<std::time::SystemTime>,
    ) -> Result<(), ConfigError> {
        self.update_user(username, |entry| {
            entry.insert("access_token".into(), access_token.expose().into());
            entry.insert("refresh_token".into(), refresh_token.expose().into());
            match expiry {
                Some(at) => entry.insert(
                    "token_expiry".into(),
                    crate::time::format_rfc3339(at).into(),
                ),
                None => entry.remove("token_expiry"),
            };
        })
    }

    /// Re-reads the file, lets `edit` change the entry of `username` (matched
    /// case-insensitively), and writes the result atomically. Other users and unknown fields
    /// are kept as they are.
    pub(crate) fn update_user(
        &self,
        username: &str,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<(), ConfigError> {
        // One read-modify-write at a time: users save from the blocking pool's threads.
        let written = lock(&self.written);
        let path = &self.path;
        let mut root = read_json(path).map_err(|e| match e {
            ConfigError::Missing(p) => ConfigError::Io(
                p,
                io::Error::new(io::ErrorKind::NotFound, "the config file is gone"),
            ),
            e => e,
        })?;
        let entry = root
            .get_mut("users")
            .and_then(Value::as_array_mut)
            .and_then(|users| {
                users.iter_mut().find(|u| {
                    u.get("username")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(username))
                })
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ConfigError::UnknownUser(path.to_owned(), username.to_owned()))?;
        edit(entry);
        self.write(&root, written)
    }

    /// Writes the environment's users into the file (see [`merge_env`]), creating it (mode
    /// 0600) when there is none, so that rotated tokens survive a restart. Returns whether
    /// the file was written.
    pub(crate) fn apply_env(&self, env: &[Map<String, Value>]) -> Result<bool, ConfigError> {
        if env.is_empty() {
            return Ok(false);
        }
        let written = lock(&self.written);
        let path = &self.path;
        let (mut root, created) = match read_json(path) {
            Ok(root) => (root, false),
            Err(ConfigError::Missing(_)) => (serde_json::json!({ "users": [] }), true),
            Err(e) => return Err(e),
        };
        if !root.is_object() || !matches!(root.get("users"), None | Some(Value::Array(_))) {
            return Err(ConfigError::Shape(
                path.to_owned(),
                "expected an object with a \"users\" array".into(),
            ));
        }
        if !merge_env(&mut root, env) && !created {
            return Ok(false);
        }
        self.write(&root, written)?;
        Ok(true)
    }

    fn write(
        &self,
        root: &Value,
        mut written: MutexGuard<'_, VecDeque<Vec<u8>>>,
    ) -> Result<(), ConfigError> {
        let path = &self.path;
        let mut text = serde_json::to_string_pretty(root)
            .map_err(|e| ConfigError::Shape(path.to_owned(), e.to_string()))?;
        text.push('\n');
        #[cfg(feature = "fake-twitch")]
        let hook = self.before_rename;
        #[cfg(not(feature = "fake-twitch"))]
        let hook = None;
        write_atomic_with(path, text.as_bytes(), hook)
            .map_err(|e| ConfigError::Io(path.to_owned(), e))?;
        self.relock();
        // a few recent writes, so a reload that reads one write while the next lands still knows it
        written.truncate(WRITES_KEPT - 1);
        written.push_front(text.into_bytes());
        Ok(())
    }

    /// True when `bytes` are exactly what this process recently wrote to the file.
    pub(crate) fn written_by_us(&self, bytes: &[u8]) -> bool {
        lock(&self.written).iter().any(|w| w == bytes)
    }
}

fn same_file(a: &fs::File, b: &fs::File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (a.metadata(), b.metadata()) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    false
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old or the new
/// file: a fresh temp file beside it, fsync, rename over it, fsync the directory.
/// - A symlink is written through: its target is replaced and the link kept.
/// - The temp file is created exclusively (`O_CREAT|O_EXCL`, so a planted file or symlink
///   makes it pick another random name) with mode 0600, then given the original file's
///   owner, group and mode (less any bits for others) before it takes its place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, None)
}

pub(super) fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    before_rename: Option<fn(&Path)>,
) -> io::Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let dir = parent_dir(&target);
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "config path has no file name")
    })?;
    let original = fs::metadata(&target).ok();
    let (tmp, mut file) = create_temp(&dir, &name.to_string_lossy())?;
    let result = (|| {
        file.write_all(bytes)?;
        #[cfg(unix)]
        if let Some(meta) = &original {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            if meta.uid() != file.metadata()?.uid() || meta.gid() != file.metadata()?.gid() {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            }
            // tokens are never for everyone: others lose their bits
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7770))?;
        }
        file.sync_all()?;
        drop(file);
        if let Some(hook) = before_rename {
            hook(&tmp);
        }
        fs::rename(&tmp, &target)?;
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The temp-file prefix for a file `name`: `.NAME.tmp.`.
pub(super) fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp.")
}

/// Creates `.NAME.tmp.<pid>.<random>` in `dir`, exclusively, mode 0600.
pub(super) fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    use nanorand::Rng;
    let mut rng = nanorand::WyRand::new();
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(
            "{}{}.{:016x}",
            temp_prefix(name),
            std::process::id(),
            rng.generate::<u64>()
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

/// The refresh tokens for `username` in `docs` (leftover temp files, newest first) that
/// differ from `current`, without repeats.
pub fn spare_refresh_tokens(docs: &[Value], username: &str, current: &Secret) -> Vec<Secret> {
    let mut spares: Vec<Secret> = Vec::new();
    for doc in docs {
        let Some(users) = doc.get("users").and_then(Value::as_array) else {
            continue;
        };
        for user in users {
            let name = user.get("username").and_then(Value::as_str).unwrap_or("");
            let refresh = user
                .get("refresh_token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let refresh = Secret::new(refresh.trim());
            if name.trim().eq_ignore_ascii_case(username)
                && !refresh.is_empty()
                && refresh != *current
                && !spares.contains(&refresh)
            {
                spares.push(refresh);
            }
        }
    }
    spares
}

/// Removes the temp files an interrupted write of the config at `path` left behind
/// (`.NAME.tmp.*` beside its target), returning the complete JSON documents among them,
/// newest first: a process killed between writing one and renaming it may have left the
/// only copy of a rotated token pair there.
pub fn sweep_temp_files(path: &Path) -> Vec<Value> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = temp_prefix(&name);
    let Ok(entries) = fs::read_dir(parent_dir(&target)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_file() {
            if let Some(doc) = fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .filter(Value::is_object)
            {
                found.push((meta.modified().ok(), doc));
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    found.into_iter().map(|(_, doc)| doc).collect()
}
