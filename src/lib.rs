//! The book-v2 Worker: `POST /api/patient-booking/book-v2` on Cloudflare Workers.
//!
//! A booking travels: HTTP request -> parsed booking -> ONE PostgREST RPC call to `book_appointment`
//! (`supabase/migrations/20261124000700_book_appointment.sql`) -> IntakeQ sync -> recorded outcome -> HTTP
//! response. The database half lives entirely in that function; this crate grows the rest around it.
