//! A machine whose clock is wrong: a router or Raspberry Pi without a real-time clock boots in
//! the past until NTP catches up, and every certificate is then "not valid yet" (a clock
//! ahead makes them "expired"). rustls's error says so with both times; this reads it for
//! what it means, so the bot can say once that the clock looks wrong (in UTC dates), retry
//! quietly, show it in `status` and on the page, and forget it once a handshake works.

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{CertificateError, Error};

use crate::time::format_rfc3339;

/// A certificate refused because of when this machine thinks it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skew {
    /// This machine's time when the certificate was checked.
    pub machine: SystemTime,
    /// What the certificate's validity says about that time.
    pub side: Side,
}

/// Which end of the certificate's validity the machine's time fell outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Before the certificate's start: the clock looks behind.
    NotYet {
        /// The certificate is valid from here.
        valid_from: SystemTime,
    },
    /// After the certificate's end: the clock looks ahead (or the certificate expired).
    Expired {
        /// The certificate was valid until here.
        valid_until: SystemTime,
    },
}

impl Skew {
    /// The skew a TLS handshake error stands for, if it is one: `e` holds rustls's error (as
    /// `tls.rs` keeps it) for a certificate not valid yet or expired at the machine's time.
    pub fn of(e: &io::Error) -> Option<Skew> {
        if let Some(skew) = e.get_ref().and_then(|inner| inner.downcast_ref::<Skew>()) {
            return Some(*skew);
        }
        let at = |t: rustls::pki_types::UnixTime| UNIX_EPOCH + Duration::from_secs(t.as_secs());
        match e.get_ref()?.downcast_ref::<Error>()? {
            Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time,
                not_before,
            }) => Some(Skew {
                machine: at(*time),
                side: Side::NotYet {
                    valid_from: at(*not_before),
                },
            }),
            Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => {
                Some(Skew {
                    machine: at(*time),
                    side: Side::Expired {
                        valid_until: at(*not_after),
                    },
                })
            }
            _ => None,
        }
    }

    /// The error a connection that failed for this reason returns: short, since the warning
    /// said the rest once; [`Skew::of`] reads it back.
    pub fn into_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = format_rfc3339(self.machine);
        match self.side {
            Side::NotYet { valid_from } => write!(
                f,
                "this machine's clock looks behind: it says {now}, and the server's certificate is valid only from {}",
                format_rfc3339(valid_from)
            ),
            Side::Expired { valid_until } => write!(
                f,
                "this machine's clock looks ahead, or the server's certificate expired: the clock says {now}, and the certificate was valid until {}",
                format_rfc3339(valid_until)
            ),
        }
    }
}

impl std::error::Error for Skew {}

/// What the process knows about its clock, shared by every connection: the last skew seen,
/// until a handshake checks out.
#[derive(Debug, Default)]
pub struct Watch {
    seen: Mutex<Option<Skew>>,
}

impl Watch {
    /// A handshake failed for `skew`: `true` the first time (say it then, once).
    pub fn failed(&self, skew: Skew) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.replace(skew).is_none()
    }

    /// A handshake checked out: `true` if the clock had looked wrong until now.
    pub fn checked_out(&self) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.take().is_some()
    }

    /// The skew in force, for `status` and the page.
    pub fn current(&self) -> Option<Skew> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;

    fn rustls_error(e: CertificateError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, Error::InvalidCertificate(e))
    }

    #[test]
    fn a_certificate_not_valid_yet_is_a_clock_behind_in_utc_dates() {
        let e = rustls_error(CertificateError::NotValidYetContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_796_648_071)),
            not_before: UnixTime::since_unix_epoch(Duration::from_secs(1_796_820_871)),
        });
        let skew = Skew::of(&e).expect("a clock problem");
        assert_eq!(
            skew.to_string(),
            "this machine's clock looks behind: it says 2026-12-07T12:54:31Z, and the server's certificate is valid only from 2026-12-09T12:54:31Z"
        );
        // the short error a connection returns reads back the same
        assert_eq!(Skew::of(&skew.into_error()), Some(skew));
    }

    #[test]
    fn an_expired_certificate_is_a_clock_ahead_or_an_old_certificate() {
        let e = rustls_error(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(2_000_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_900_000_000)),
        });
        let text = Skew::of(&e).unwrap().to_string();
        assert!(text.starts_with("this machine's clock looks ahead, or the server's certificate expired: the clock says 2033-05-18T03:33:20Z"), "{text}");
    }

    #[test]
    fn other_errors_are_not_the_clock() {
        assert_eq!(
            Skew::of(&rustls_error(CertificateError::UnknownIssuer)),
            None
        );
        assert_eq!(Skew::of(&io::Error::other("refused")), None);
    }

    #[test]
    fn the_watch_says_it_once_and_forgets_it_when_a_handshake_works() {
        let w = Watch::default();
        let skew = Skew {
            machine: UNIX_EPOCH,
            side: Side::NotYet {
                valid_from: UNIX_EPOCH + Duration::from_secs(60),
            },
        };
        assert!(w.failed(skew), "the first time");
        assert!(!w.failed(skew), "not again");
        assert_eq!(w.current(), Some(skew));
        assert!(w.checked_out());
        assert_eq!(w.current(), None);
        assert!(!w.checked_out());
    }
}
