//! What a [`Keyed`](crate::Keyed) table holds: a component kind it can build per key, admit calls
//! through, and report on. Implemented for the circuit breaker and the bulkhead.

use battlement_breaker::{BreakerOpen, CallGuard, CircuitBreaker, CircuitBreakerBuilder, State};
use battlement_bulkhead::{Bulkhead, BulkheadAdmission, BulkheadBuilder};
use battlement_core::{
    BoxError, ComponentKind, ConfigError, HealthStatus, ResponseClassifier, Settle,
};
use std::fmt;
use std::future::Future;
use tower_service::Service;

/// A component a [`Keyed`](crate::Keyed) table keeps one of per key: a cheap `Clone` handle
/// (an `Arc` inside) that the table builds from a template, admits calls through and reports on.
///
/// Implemented for [`CircuitBreaker`] and [`Bulkhead`]; the table, its eviction, its layer and
/// its health are the same code for both.
///
/// ```
/// use battlement_breaker::CircuitBreaker;
/// use battlement_keyed::Component;
///
/// let b = CircuitBreaker::build_from(CircuitBreaker::builder("payments/a.example")).unwrap();
/// assert_eq!(CircuitBreaker::state_name(b.key_state()), "closed");
/// ```
pub trait Component: Clone + Send + Sync + 'static {
    /// The component's builder: the template makes one per key.
    type Builder;
    /// What a call's admission holds: the component's reference for the call's duration (a
    /// breaker's [`CallGuard`], a bulkhead's permit or place in its queue), or the rejection.
    type Ticket;
    /// The states the group counts keys by.
    type State: Copy + Eq + fmt::Debug + Send + Sync + 'static;
    /// The component's kind: the group registers and reports under it.
    const KIND: ComponentKind;
    /// Every state, in the order the group reports them.
    const STATES: &'static [Self::State];
    /// The default per-call setting of the layer (a breaker's classifier; nothing for a
    /// bulkhead).
    type Extra: Clone + Default + Send + Sync + 'static;

    /// Checks a builder without building.
    ///
    /// # Errors
    ///
    /// A setting the component refuses.
    fn validate(builder: &Self::Builder) -> Result<(), ConfigError>;
    /// A builder with the component's default settings, named `name` (the template when none
    /// is given).
    fn builder_named(name: String) -> Self::Builder;
    /// Builds one.
    ///
    /// # Errors
    ///
    /// A setting the component refuses.
    fn build_from(builder: Self::Builder) -> Result<Self, ConfigError>;
    /// Admits one call.
    fn admit(&self) -> Self::Ticket;
    /// Whether anything but this handle holds the component (a call in flight, a clone): the
    /// table drops a component only when this is `false`.
    fn held(&self) -> bool;
    /// Its state now.
    fn key_state(&self) -> Self::State;
    /// A state's stable snake_case name (a metric label value).
    fn state_name(state: Self::State) -> &'static str;
    /// Its health now, from its state.
    fn key_status(&self) -> HealthStatus;
    /// How badly it is doing, from 0 to 1: a breaker's failure rate over its window, a
    /// bulkhead's share of calls rejected. The group's health lists the keys worst by it.
    fn failure_rate(&self) -> f64;
    /// Whether an operator set its state (a breaker forced open or disabled): such a key is never
    /// evicted, so the operator's action is not lost.
    fn pinned(&self) -> bool;
}

/// A [`Component`] that guards calls to services of type `S` with requests `Req`, with the
/// per-call setting `E` (a breaker's classifier).
pub trait Guard<S, Req, E>: Component {
    /// The guarded service's response.
    type Response;
    /// The guarded call's future: the component's own response future.
    type Future: Future<Output = Result<Self::Response, BoxError>>;

    /// Calls `inner` (ready) with `req` if `ticket` admitted the call; else a future that fails
    /// with the rejection.
    fn call(ticket: Self::Ticket, inner: &mut S, extra: &E, req: Req) -> Self::Future;
}

impl Component for CircuitBreaker {
    type Builder = CircuitBreakerBuilder;
    type Ticket = Result<CallGuard, BreakerOpen>;
    type State = State;
    type Extra = ResponseClassifier;
    const KIND: ComponentKind = ComponentKind::CircuitBreaker;
    const STATES: &'static [State] = &State::ALL;

    fn validate(builder: &CircuitBreakerBuilder) -> Result<(), ConfigError> {
        builder.validate()
    }
    fn builder_named(name: String) -> CircuitBreakerBuilder {
        CircuitBreaker::builder(name)
    }
    fn build_from(builder: CircuitBreakerBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
    #[inline]
    fn admit(&self) -> Self::Ticket {
        self.try_call()
    }
    fn held(&self) -> bool {
        self.is_shared()
    }
    fn key_state(&self) -> State {
        self.state()
    }
    fn state_name(state: State) -> &'static str {
        state.as_str()
    }
    fn key_status(&self) -> HealthStatus {
        match self.state() {
            State::Closed | State::Disabled => HealthStatus::Pass,
            State::HalfOpen => HealthStatus::Warn,
            State::Open | State::ForcedOpen => HealthStatus::Fail,
        }
    }
    fn failure_rate(&self) -> f64 {
        self.metrics().failure_rate
    }
    fn pinned(&self) -> bool {
        matches!(self.state(), State::ForcedOpen | State::Disabled)
    }
}

impl<S, Req, C> Guard<S, Req, C> for CircuitBreaker
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Settle<S::Response, BoxError> + Clone,
{
    type Response = C::Response<CallGuard>;
    type Future = battlement_breaker::ResponseFuture<S::Future, C>;

    #[inline]
    fn call(ticket: Self::Ticket, inner: &mut S, classifier: &C, req: Req) -> Self::Future {
        battlement_breaker::ResponseFuture::new(
            ticket.map(|guard| (inner.call(req), guard)),
            classifier.clone(),
        )
    }
}

/// A bulkhead's state as a keyed table counts it.
///
/// ```
/// use battlement_keyed::BulkheadState;
///
/// assert_eq!(BulkheadState::Saturated.as_str(), "saturated");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BulkheadState {
    /// No call holds a permit.
    Idle,
    /// Some calls hold permits, and some are free.
    Busy,
    /// Every permit is taken (or a call was rejected recently).
    Saturated,
}

impl BulkheadState {
    /// The state's stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkheadState::Idle => "idle",
            BulkheadState::Busy => "busy",
            BulkheadState::Saturated => "saturated",
        }
    }
}

impl Component for Bulkhead {
    type Builder = BulkheadBuilder;
    type Ticket = BulkheadAdmission;
    type State = BulkheadState;
    type Extra = ();
    const KIND: ComponentKind = ComponentKind::Bulkhead;
    const STATES: &'static [BulkheadState] = &[
        BulkheadState::Idle,
        BulkheadState::Busy,
        BulkheadState::Saturated,
    ];

    fn validate(builder: &BulkheadBuilder) -> Result<(), ConfigError> {
        builder.validate()
    }
    fn builder_named(name: String) -> BulkheadBuilder {
        Bulkhead::builder(name)
    }
    fn build_from(builder: BulkheadBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
    #[inline]
    fn admit(&self) -> Self::Ticket {
        self.try_call()
    }
    fn held(&self) -> bool {
        self.is_shared()
    }
    fn key_state(&self) -> BulkheadState {
        if self.is_saturated() {
            BulkheadState::Saturated
        } else if self.in_flight() > 0 {
            BulkheadState::Busy
        } else {
            BulkheadState::Idle
        }
    }
    fn state_name(state: BulkheadState) -> &'static str {
        state.as_str()
    }
    fn key_status(&self) -> HealthStatus {
        if self.is_saturated() {
            HealthStatus::Warn
        } else {
            HealthStatus::Pass
        }
    }
    fn failure_rate(&self) -> f64 {
        let m = self.metrics();
        let rejected = m.rejected_full + m.rejected_timeout;
        let total = m.accepted + rejected;
        if total == 0 {
            0.0
        } else {
            rejected as f64 / total as f64
        }
    }
    fn pinned(&self) -> bool {
        false
    }
}

impl<S, Req> Guard<S, Req, ()> for Bulkhead
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Future = battlement_bulkhead::ResponseFuture<S::Future, S, Req>;

    #[inline]
    fn call(ticket: BulkheadAdmission, inner: &mut S, _: &(), req: Req) -> Self::Future {
        battlement_bulkhead::ResponseFuture::new(ticket, inner, req)
    }
}
