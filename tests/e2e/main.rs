//! The end-to-end suite, one test binary: the BUILT worker in workerd against the local stack (the RPC API over
//! the real Postgres, the IntakeQ sandbox), driven over HTTP as the booking form, a browser, staff and a fuzzer
//! would. `support` is the harness; each module is one story and gets a database of its own. Run it with
//! `make test-e2e` (which builds the worker and the template database first).

mod support;

mod abuse_limits;
mod answer_budget;
mod booking;
mod browser;
mod call_budget;
mod concurrency;
mod cors_and_logs;
mod database_unavailable;
mod failures;
mod honest_answers;
mod hostile_input;
mod intake_forms;
mod intakeq_webhooks;
mod manage_bookings;
mod schemathesis;
mod service_instance;
mod sync;
mod sync_safety;
mod two_way;
