//! Channel logins → user ids, shared by every user of the process (EventSub subscribes by
//! id): a channel many users read is looked up once, and again once its entry is a day old,
//! so that a login that changed hands is found anew. No I/O: the caller gives `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an id found for a login is used without asking Helix again.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// The ids found so far, with when.
#[derive(Debug, Default)]
pub struct Directory {
    ids: HashMap<String, (String, Instant)>,
}

impl Directory {
    /// Splits `logins` into those known at `now` (with their ids) and those to look up.
    /// Entries older than [`KEEP`] are dropped on the way.
    pub fn known(
        &mut self,
        now: Instant,
        logins: Vec<String>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        self.ids
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < KEEP);
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for login in logins {
            match self.ids.get(&login) {
                Some((id, _)) => found.push((login, id.clone())),
                None => missing.push(login),
            }
        }
        (found, missing)
    }

    /// Helix said `login` is `id` at `now`.
    pub fn learn(&mut self, now: Instant, login: &str, id: &str) {
        self.ids.insert(login.to_owned(), (id.to_owned(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_login_is_looked_up_once_then_known_for_a_day() {
        let t = Instant::now();
        let mut dir = Directory::default();
        let (found, missing) = dir.known(t, logins(&["lumenwave", "other"]));
        assert!(found.is_empty());
        assert_eq!(missing, ["lumenwave", "other"]);
        dir.learn(t, "lumenwave", "41");
        let later = t + KEEP - Duration::from_secs(1);
        let (found, missing) = dir.known(later, logins(&["lumenwave", "other"]));
        assert_eq!(found, [("lumenwave".to_owned(), "41".to_owned())]);
        assert_eq!(
            missing,
            ["other"],
            "a login Helix did not know is asked again"
        );
    }

    #[test]
    fn an_entry_a_day_old_is_looked_up_again() {
        let t = Instant::now();
        let mut dir = Directory::default();
        dir.learn(t, "lumenwave", "41");
        let (found, missing) = dir.known(t + KEEP, logins(&["lumenwave"]));
        assert!(found.is_empty());
        assert_eq!(missing, ["lumenwave"]);
        assert!(dir.ids.is_empty(), "the old entry is gone, not kept beside");
    }
}
