//! The local stack's stand-ins for what the worker meets in production, for development and tests only:
//! a PostgREST-compatible RPC API over the local Postgres ([`rpc_api`]), an IntakeQ sandbox
//! ([`intakeq_sandbox`]), a Slack-style incoming webhook for staff alerts ([`alert_receiver`]) and Cloudflare
//! Turnstile's siteverify endpoint ([`turnstile`]). Started by `make dev` and by the end-to-end tests; never compiled
//! into the worker.

pub mod alert_receiver;
pub mod intakeq_sandbox;
pub mod rpc_api;
pub mod turnstile;
