//! The future a retry waits on.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

pin_project! {
    /// The wait before a retry: a `tokio::time::Sleep`, or nothing for a zero delay.
    ///
    /// Returned by the policy's [`Policy::retry`](tower::retry::Policy::retry); tower's `Retry`
    /// polls it and then sends the request again. Time comes from `tokio::time`, so tests run it
    /// with a paused clock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_retry::RetryDelay;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let start = Instant::now();
    /// RetryDelay::new(Duration::from_secs(2)).await;
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct RetryDelay {
        #[pin]
        inner: Inner,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner {
        Now,
        Sleeping { #[pin] sleep: Sleep },
    }
}

impl RetryDelay {
    /// A wait of `delay` (`Duration::ZERO` is ready at once).
    pub fn new(delay: Duration) -> Self {
        let inner = if delay.is_zero() {
            Inner::Now
        } else {
            Inner::Sleeping {
                sleep: tokio::time::sleep(delay),
            }
        };
        RetryDelay { inner }
    }
}

impl Future for RetryDelay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().inner.project() {
            InnerProj::Now => Poll::Ready(()),
            InnerProj::Sleeping { sleep } => sleep.poll(cx),
        }
    }
}
