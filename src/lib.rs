//! twitch-colorchanger: changes a Twitch user's chat name color after every message they send.
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

mod account;
pub mod answer;
pub mod app;
mod backoff;
mod bot;
pub mod chat;
pub mod chat_session;
pub mod clock;
pub mod color;
mod command;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod device;
pub mod directory;
pub mod endpoint;
pub mod eventsub;
#[cfg(feature = "demo")]
pub mod fake;
pub mod gate;
pub mod helix;
pub mod http;
pub mod irc;
pub mod log;
pub mod metrics;
pub mod mode;
pub mod nofile;
mod notify;
pub mod oauth;
mod queue;
pub mod reactor;
mod readbuf;
pub mod secret;
pub mod skew;
pub mod status;
pub mod time;
mod timer;
mod tls;
pub mod tokens;
pub mod transport;
pub mod user;
pub mod usercore;
mod watch;
#[cfg(feature = "web")]
pub mod web;
pub mod ws;
