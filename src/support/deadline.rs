//! A time limit on a whole exchange (sending, and reading the answer to its end), on workerd's timers.

use std::future::Future;
use std::time::Duration;

use futures::future::{select, Either};

/// `exchange`'s result, or `None` when it took longer than `limit` (it is then abandoned; what it asked for may
/// still be carried out upstream).
pub async fn within<T>(limit: Duration, exchange: impl Future<Output = T>) -> Option<T> {
    match select(Box::pin(exchange), futures_timer::Delay::new(limit)).await {
        Either::Left((result, _)) => Some(result),
        Either::Right(_) => None,
    }
}
