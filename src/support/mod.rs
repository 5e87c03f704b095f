//! Small pieces every boundary uses: the time (`clock`), the request id that follows a booking
//! (`request_id`), log lines as JSON (`json_logs`), patient data masked for logs (`masking`), and secrets that
//! never print (`secret`), and time limits and waits on the runtime's timers (`deadline`).

pub mod clock;
pub mod deadline;
pub mod json_logs;
pub mod manage_token;
pub mod masking;
pub mod request_id;
pub mod secret;
