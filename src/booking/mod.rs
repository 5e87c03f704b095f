//! The core of a booking, with no I/O: the form's JSON parsed into a `BookingRequest` that cannot hold bad
//! data (`request`), the booking as the database answers it (`model`), the contract's error codes and steps
//! (`error`), and what a booking needs from the database (`store`, a trait). A booking cancelled or moved later
//! is a `change`.

pub mod change;
pub mod error;
pub mod model;
pub mod request;
pub mod store;
