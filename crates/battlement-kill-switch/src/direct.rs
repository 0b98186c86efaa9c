//! Direct calls: the kill switch in front of any async call, outside Tower.

use crate::KillSwitch;
use battlement_core::error::Halted;
use battlement_core::CallError;
use std::future::Future;

impl KillSwitch {
    /// Runs `f`'s future unless the switch is halted, outside Tower: the same check, the same
    /// counters (a refused call counts in [`rejected_calls`](Self::rejected_calls)), events and
    /// health as the switch's layer.
    ///
    /// While halted, `f` is not called and the call returns [`CallError::Rejected`] with the
    /// [`Halted`] error a layer returns; otherwise the call's own result comes back, its error
    /// in [`CallError::Inner`]. The switch is checked once, when the call starts: a call already
    /// running when the switch is halted runs to its end, as through the layer. An admitted call
    /// takes no lock and allocates nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::{BoxError, CallError};
    /// use battlement_kill_switch::KillSwitch;
    ///
    /// let payments = KillSwitch::builder("payments").build().unwrap();
    /// let charge = || async { Ok::<_, BoxError>("charged") };
    /// assert_eq!(payments.call(charge).await.unwrap(), "charged");
    ///
    /// payments.halt("fraud investigation");
    /// match payments.call(charge).await {
    ///     Err(CallError::Rejected(halted)) => assert_eq!(halted.reason(), "fraud investigation"),
    ///     other => panic!("expected a rejection, got {other:?}"),
    /// }
    /// # }
    /// ```
    #[inline]
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<Halted, E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.check().map_err(CallError::Rejected)?;
        f().await.map_err(CallError::Inner)
    }
}

#[cfg(test)]
mod tests {
    use crate::KillSwitch;
    use battlement_core::{BoxError, CallError};
    use tower::{service_fn, Layer, ServiceExt};

    /// A halted switch refuses direct calls without running them, counted as the layer's
    /// refusals are; resumed, it lets them through again.
    #[tokio::test]
    async fn a_halted_switch_refuses_direct_calls() {
        let switch = KillSwitch::builder("exports").build().unwrap();
        let layered = crate::KillSwitchLayer::new(&switch)
            .layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
        assert_eq!(
            switch
                .call(|| async { Ok::<_, BoxError>(1) })
                .await
                .unwrap(),
            1
        );

        assert!(switch.halt("disk full"));
        let mut ran = false;
        let err = switch
            .call(|| {
                ran = true;
                async { Ok::<_, BoxError>(2) }
            })
            .await
            .unwrap_err();
        assert!(!ran);
        let CallError::Rejected(halted) = err else {
            panic!("expected a rejection")
        };
        assert_eq!((halted.name(), halted.reason()), ("exports", "disk full"));
        layered.clone().oneshot(3).await.unwrap_err();
        assert_eq!(
            switch.rejected_calls(),
            2,
            "direct and layered refusals count alike"
        );

        switch.resume();
        let err = switch
            .call(|| async { Err::<u32, _>(std::io::Error::other("boom")) })
            .await
            .unwrap_err();
        assert_eq!(err.into_inner().unwrap().to_string(), "boom");
    }
}
