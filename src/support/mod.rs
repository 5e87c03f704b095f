//! Small pieces every boundary uses: the time (`clock`), the request id that follows a booking
//! (`request_id`), log lines as JSON (`json_logs`), patient data masked for logs (`masking`), and secrets that
//! never print (`secret`).

pub mod clock;
#[cfg(target_arch = "wasm32")]
pub mod deadline;
pub mod json_logs;
pub mod masking;
pub mod request_id;
pub mod secret;
