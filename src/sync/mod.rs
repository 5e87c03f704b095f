//! The IntakeQ sync: the outbox protocol that puts each booking into IntakeQ exactly once. A job (`job`) is
//! written by `book_appointment` in the booking's transaction; one attempt (`attempt`) finds or creates the
//! client, posts the appointment and sends the intake questionnaire, looking first for what an earlier attempt
//! may have created; every attempt is recorded through `record` (the booking request's first attempt and the
//! cron's alike); the cron drains what is left (`runner`). The database side is a trait (`store`). No I/O of its
//! own.

pub mod attempt;
pub mod job;
pub mod record;
pub mod runner;
pub mod store;
