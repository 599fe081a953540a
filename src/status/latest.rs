//! The newest status document and the device codes waiting for a person, for readers inside
//! the process (the HTTP listener's page and probes); the status file is for those outside.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::device::Prompter;
use crate::oauth::DeviceCode;

use super::Document;

/// A device code waiting for a person, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Where to go (holds the code already).
    pub verification_uri: String,
    /// The code to enter.
    pub user_code: String,
    /// When the code expires.
    pub expires_at: SystemTime,
}

/// What the listener shows: the status document the supervisor published last and the
/// device codes waiting for a person.
#[derive(Debug, Default)]
pub struct Latest {
    doc: Mutex<Option<Arc<Document>>>,
    prompts: Mutex<BTreeMap<String, Prompt>>,
}

impl Latest {
    /// The supervisor's newest document (shared with the status file's writer: a
    /// thousand users' document is a megabyte).
    pub fn publish(&self, doc: Arc<Document>) {
        *self.doc.lock().unwrap_or_else(|p| p.into_inner()) = Some(doc);
    }

    /// The newest document (`None` before the first).
    pub fn doc(&self) -> Option<Arc<Document>> {
        self.doc.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The newest device code of each user that was shown one.
    pub fn prompts(&self) -> Vec<(String, Prompt)> {
        let prompts = self.prompts.lock().unwrap_or_else(|p| p.into_inner());
        prompts
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A [`Prompter`] that shows codes as `inner` does and keeps the newest per user for the
/// page.
pub struct Recording {
    /// Where the codes also go (the terminal or the log).
    pub inner: Box<dyn Prompter>,
    /// Where they are kept.
    pub latest: Arc<Latest>,
    /// Wall time, for the expiry.
    pub clock: Arc<dyn Clock>,
}

impl Recording {
    fn keep(&self, username: &str, code: &DeviceCode, left: Duration) {
        let prompt = Prompt {
            verification_uri: code.verification_uri.clone(),
            user_code: code.user_code.clone(),
            expires_at: self.clock.wall() + left,
        };
        let mut prompts = self
            .latest
            .prompts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        prompts.insert(username.to_ascii_lowercase(), prompt);
    }
}

impl Prompter for Recording {
    fn show(&self, username: &str, code: &DeviceCode, left: Duration) {
        self.keep(username, code, left);
        self.inner.show(username, code, left);
    }

    fn remind(&self, username: &str, code: &DeviceCode, left: Duration) {
        self.keep(username, code, left);
        self.inner.remind(username, code, left);
    }
}
