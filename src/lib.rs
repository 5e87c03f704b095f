//! The book-v2 Worker: `POST /api/patient-booking/book-v2` on Cloudflare Workers.
//!
//! A booking travels: HTTP request (`http`) -> parsed `BookingRequest` (`booking_request`) -> ONE RPC call to
//! `book_appointment` (`booking_flow`, through a `BookingStore`) -> IntakeQ sync (`sync`, through `Intakeq` and
//! a `SyncStore`) -> the contract's answer (`booking_error`). The cron drains what is left (`sync_runner`).
//! The database half lives in `supabase/migrations/20261124000700_book_appointment.sql`. Everything here but
//! `entry`, `postgrest_store`, `intakeq_fetch` and `runtime` is plain Rust, unit tested natively.

pub mod booking_error;
pub mod booking_flow;
pub mod booking_request;
pub mod clock;
pub mod config;
pub mod http;
pub mod intakeq;
pub mod logging;
pub mod masking;
pub mod request_id;
pub mod store;
pub mod sync;
pub mod sync_runner;
pub mod sync_store;
#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod intakeq_fetch;
#[cfg(target_arch = "wasm32")]
mod postgrest_store;
#[cfg(target_arch = "wasm32")]
mod runtime;
