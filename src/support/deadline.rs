//! Time limits and waits on the runtime's timers (workerd's `setTimeout` in the worker, a timer thread in native
//! tests): a whole exchange under a limit (sending, and reading the answer to its end), and a pause.

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

/// Waits `duration`.
pub async fn pause(duration: Duration) {
    futures_timer::Delay::new(duration).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::executor::block_on;

    use super::*;

    #[test]
    fn an_exchange_within_its_limit_answers_and_one_past_it_is_abandoned() {
        assert_eq!(block_on(within(Duration::from_secs(5), async { 7 })), Some(7));
        assert_eq!(block_on(within(Duration::from_millis(10), futures::future::pending::<()>())), None);
    }
}
