//! A small HTTP/1.1 client: the sans-IO wire format and the pooled async client on top.

mod client;
pub(crate) mod head;
pub(crate) mod wire;

pub use client::{HttpClient, Sent};
pub use wire::{
    encode_component, encode_request, names, HttpError, Parsed, ResponseParser, MAX_RESPONSE,
};
