//! Where the status file lives: in a RAM-backed runtime directory, never beside the config.
//! The file is rewritten every 30 s and after every color change, and the config often sits
//! on a router's flash or a Pi's SD card; the status is a disposable snapshot, so it goes
//! where writes cost nothing and vanish at reboot.
//!
//! The writer takes the first directory of [`dirs`] that can hold the file; `status` and
//! `--health-check` look in the same directories (they may run in another environment, a
//! shell beside a systemd service, say) and take the newest file for the config. The file's
//! name comes from the config's absolute path, so several bots never share one.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the status file's path (as `--status-file` does).
pub const STATUS_FILE_ENV: &str = "STATUS_FILE";

/// `<config file name>-<16 hex digits>.status.json`, the digits a hash (64-bit FNV-1a, the
/// same in every version) of the config's absolute path. The directory is resolved without
/// following a link in the file name itself, so a Kubernetes `..data` swap keeps the name.
pub fn file_name(config: &Path) -> String {
    let name = config
        .file_name()
        .map_or("twitch_colorchanger.conf".into(), |n| n.to_string_lossy());
    let dir = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_owned());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dir.join(&*name).as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{name}-{hash:016x}.status.json")
}

/// The directories the status file may live in, best first:
/// - `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`, made for this service);
/// - `$XDG_RUNTIME_DIR/twitch-colorchanger` (a desktop session's tmpfs);
/// - `/run/twitch-colorchanger` (root, or a directory made for the bot);
/// - `<temp dir>/twitch-colorchanger-<uid>` (tmpfs on OpenWrt and in the container image).
pub fn dirs(var: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(runtime) = set("RUNTIME_DIRECTORY") {
        // systemd lists several, separated by ':', when the unit names several
        dirs.push(PathBuf::from(runtime.split(':').next().unwrap_or_default()));
    }
    if let Some(xdg) = set("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&xdg).join("twitch-colorchanger"));
    }
    dirs.push(PathBuf::from("/run/twitch-colorchanger"));
    let temp = set("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    dirs.push(temp.join(match own_uid() {
        Some(uid) => format!("twitch-colorchanger-{uid}"),
        None => "twitch-colorchanger".into(),
    }));
    dirs
}

/// Where the running bot writes the status for `config`: `wanted` (`--status-file` or
/// [`STATUS_FILE_ENV`]) if given, else in the first of [`dirs`] that exists or can be made
/// (mode 0700) in a parent that exists, is a real directory of this user's and takes a
/// file. The error lists what was tried.
pub fn choose(
    config: &Path,
    wanted: Option<PathBuf>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, NoPlace> {
    if let Some(path) = wanted {
        return Ok(path);
    }
    let name = file_name(config);
    let mut tried = Vec::new();
    for dir in dirs(var) {
        match usable(&dir) {
            Ok(()) => return Ok(dir.join(&name)),
            Err(e) => tried.push((dir, e.to_string())),
        }
    }
    Err(NoPlace { tried })
}

/// No directory could hold the status file: each one tried, with why not.
#[derive(Debug, Clone, PartialEq)]
pub struct NoPlace {
    /// The directories in the order tried, each with the reason it was not usable.
    pub tried: Vec<(PathBuf, String)>,
}

impl fmt::Display for NoPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (dir, why)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{}: {why}", dir.display())?;
        }
        Ok(())
    }
}

/// Where `status` and `--health-check` find the status for `config`: `wanted` if given,
/// else of the files in [`dirs`] that exist the newest. `Err` lists the places looked in.
pub fn find(
    config: &Path,
    wanted: Option<PathBuf>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(path) = wanted {
        return Ok(path);
    }
    let name = file_name(config);
    let places: Vec<PathBuf> = dirs(var).into_iter().map(|d| d.join(&name)).collect();
    places
        .iter()
        .filter_map(|p| Some((fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone())
        .ok_or(places)
}

/// Replaces the file at `path` with what `fill` writes (a temporary file renamed over it, so
/// a reader never sees half a file), without fsync: the file is a snapshot in RAM, and
/// losing it in a power cut loses nothing. `fill` writes through a 32 KiB buffer, so a large
/// document is never whole in memory.
pub fn write(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = io::BufWriter::with_capacity(32 * 1024, options.open(&tmp)?);
        fill(&mut file)?;
        file.into_inner().map_err(io::IntoInnerError::into_error)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The directory exists or is made (0700, in a parent that exists: never `/run` itself,
/// which on a router without one would land on the flash), is not a link, is this user's,
/// and takes a file.
fn usable(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    builder.mode(0o700);
    match builder.create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    // a name of this call's own: two threads probing the same directory at once must not
    // find each other's probe and call the directory unusable
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".probe-{}-{n}", std::process::id()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    #[cfg(unix)]
    let theirs = file.metadata()?.uid() != meta.uid();
    #[cfg(not(unix))]
    let theirs = false;
    drop(file);
    fs::remove_file(&probe)?;
    if theirs {
        return Err(io::Error::other("owned by another user"));
    }
    Ok(())
}

/// This process's user id, from the owner of `/proc/self`.
fn own_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_name_is_the_config_and_a_hash_of_its_absolute_path() {
        let dir = std::env::temp_dir();
        let a = file_name(&dir.join("twitch_colorchanger.conf"));
        let b = file_name(&dir.join("sub/twitch_colorchanger.conf"));
        assert!(a.starts_with("twitch_colorchanger.conf-") && a.ends_with(".status.json"));
        assert_eq!(
            a.len(),
            "twitch_colorchanger.conf-".len() + 16 + ".status.json".len()
        );
        assert_ne!(a, b, "two configs, two files");
        // a relative path names the same file as the absolute one
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            file_name(Path::new("x.conf")),
            file_name(&cwd.join("x.conf"))
        );
        // and the name is stable: FNV-1a of "/x.conf"
        assert_eq!(
            file_name(Path::new("/x.conf")),
            "x.conf-474b7531d21aead2.status.json"
        );
    }

    #[test]
    fn threads_probing_one_directory_at_once_all_find_it_usable() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/tcc-place-probes");
        let _ = fs::remove_dir_all(&dir);
        let probes: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || (0..200).all(|_| usable(&dir).is_ok()))
            })
            .collect();
        assert!(probes.into_iter().all(|t| t.join().unwrap()));
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "no probe left behind"
        );
    }

    #[test]
    fn no_place_names_each_directory_tried_and_why() {
        let none = NoPlace {
            tried: vec![
                (PathBuf::from("/run/user/1000"), "not a directory".into()),
                (
                    PathBuf::from("/tmp/twitch-colorchanger-1000"),
                    "owned by another user".into(),
                ),
            ],
        };
        assert_eq!(
            none.to_string(),
            "/run/user/1000: not a directory; /tmp/twitch-colorchanger-1000: owned by another user"
        );
    }

    #[test]
    fn runtime_directories_come_first_and_temp_space_last() {
        let dirs = dirs(&env(&[
            ("RUNTIME_DIRECTORY", "/run/tcc:/run/other"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("TMPDIR", "/var/tmp"),
        ]));
        assert_eq!(dirs[0], Path::new("/run/tcc"));
        assert_eq!(dirs[1], Path::new("/run/user/1000/twitch-colorchanger"));
        assert_eq!(dirs[2], Path::new("/run/twitch-colorchanger"));
        assert!(dirs[3].starts_with("/var/tmp"), "{dirs:?}");
        assert_eq!(dirs.len(), 4);
        let plain = super::dirs(&env(&[("TMPDIR", "/var/tmp")]));
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn the_writer_takes_the_first_usable_directory_and_readers_find_it() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/tcc-place");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let config = base.join("twitch_colorchanger.conf");
        // a runtime directory that is a file cannot hold it: the next one is taken
        let blocked = base.join("blocked");
        fs::write(&blocked, "").unwrap();
        let xdg = base.join("xdg");
        fs::create_dir(&xdg).unwrap();
        let vars = [
            ("RUNTIME_DIRECTORY", blocked.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", xdg.to_str().unwrap()),
        ];
        let path = choose(&config, None, &env(&vars)).unwrap();
        assert_eq!(path.parent().unwrap(), xdg.join("twitch-colorchanger"));
        assert!(
            find(&config, None, &env(&vars)).is_err(),
            "nothing written yet"
        );
        write(&path, |out| out.write_all(b"{}")).unwrap();
        write(&path, |out| out.write_all(b"{\"a\":1}")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        // a document that fails midway replaces nothing and leaves no temporary file
        let failed = write(&path, |out| {
            out.write_all(&[b' '; 10_000])?;
            Err(io::Error::other("serialising failed"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(find(&config, None, &env(&vars)).unwrap(), path);
        // nothing but the file is left in the directory
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [path.file_name().unwrap()]);
        // an explicit path wins on both sides
        let wanted = base.join("mine.json");
        assert_eq!(
            choose(&config, Some(wanted.clone()), &env(&vars)).unwrap(),
            wanted
        );
        assert_eq!(
            find(&config, Some(wanted.clone()), &env(&vars)).unwrap(),
            wanted
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
