//! The book-v2 Worker: `POST /api/patient-booking/book-v2` on Cloudflare Workers.
//!
//! One booking travels through the folders in this order:
//!   `http`      the request: routes, CORS, limits; the booking route (`http::booking_route`) drives the rest
//!   `booking`   the core: the form parsed into a `BookingRequest`, the typed booking, the contract's errors,
//!               and the `BookingStore` trait
//!   `postgrest` the database, over PostgREST RPC: ONE call to `book_appointment`
//!               (`supabase/migrations/`), answers decoded into `booking::model` types
//!   `sync`      the IntakeQ outbox protocol: the first attempt (by the request) and the cron's, recorded alike
//!   `intakeq`   IntakeQ's API: wire shapes, answers, the trait, the fetch client
//!   back in `http`: the answer, in the contract's shape (`docs/http-contract.md`).
//! `inbound` keeps IntakeQ's appointment webhooks as nudges (what staff did in IntakeQ, to re-read).
//! `abuse` keeps floods and bots off the booking route before anything is written (per-address and per-email
//! limits, Turnstile). `alerts` delivers what must reach staff (a dead job, a paused queue, a possible duplicate).
//! `runtime` is the thin layer of `#[event]`s workerd calls; `config` reads the settings; `support` holds the
//! clock, request ids, log lines and masking. Everything but `runtime` and the two clients
//! (`postgrest::client`, `intakeq::fetch`) is plain Rust, unit tested natively with fakes.

pub mod abuse;
pub mod alerts;
pub mod booking;
pub mod config;
pub mod http;
pub mod inbound;
pub mod intakeq;
pub mod postgrest;
pub mod support;
pub mod sync;
#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod runtime;
