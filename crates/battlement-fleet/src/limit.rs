//! The global rate limiter: GCRA evaluated in Redis by a Lua script, exact or leased, with a
//! local fallback of this replica's share.

use crate::fleet::Fleet;
use crate::key::FleetKey;
use battlement_core::error::RateLimited;
use battlement_core::stripe::StripedCounter;
use battlement_core::{ComponentKind, ConfigError};
use battlement_rate_limit::{ExtractKey, KeyExtractor, RateLimit, Unkeyed};
use dashmap::DashMap;
use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// GCRA over Redis' own clock (`TIME`), taking up to `ARGV[3]` permits at once.
///
/// `KEYS[1]`: the key's theoretical arrival time (µs). `ARGV`: the emission interval (µs), the
/// tolerance (interval × burst, µs), the permits wanted. Returns `{granted, retry_after_us}`,
/// where a refusal's wait is until half the permits wanted (at least one) are free: a lease
/// refill then comes back to a useful batch, and the burst absorbs its lateness.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local avail = math.floor((now + tolerance - tat) / interval)
if avail < 1 then
  local need = math.max(1, math.floor(want / 2))
  return {0, tat + need * interval - tolerance - now}
end
local n = math.min(avail, want)
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {n, 0}
";

fn gcra() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(GCRA))
}

/// How the global limiter spends the fleet's permits.
///
/// ```
/// use battlement_fleet::Mode;
///
/// assert_eq!(Mode::default(), Mode::Exact);
/// let leased = Mode::Leased { batch: 10 };
/// # let _ = leased;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One Redis round trip per call: the fleet admits exactly the limit.
    #[default]
    Exact,
    /// The replica takes up to `batch` permits in one round trip and spends them locally: one
    /// round trip per `batch` calls. When Redis has none free, it says until when, and calls
    /// of that key are rejected locally until then (no round trip either); a refill waits
    /// until half a batch is free, so in this mode `retry_after` is that time. A replica holds at most `batch - 1` unspent permits per key
    /// (one refill in flight at a time; calls meanwhile take single permits), so over any span
    /// the fleet admits at most the limit plus `batch × replicas` — permits taken earlier and
    /// spent later. The fleet's total never exceeds what Redis granted. It may admit less than
    /// the limit: a replica told to wait comes back when half a batch is free, and permits
    /// that pile up past the burst while every replica is late are lost (exact mode admits the
    /// limit).
    Leased {
        /// Permits taken per round trip (at least 1).
        batch: u32,
    },
}

/// What the global limiter does while Redis is unreachable (or slower than the fleet's
/// command timeout).
///
/// ```
/// use battlement_fleet::Outage;
///
/// assert_eq!(Outage::default(), Outage::LocalShare { replicas: 1 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Limit locally to this replica's share: the limit (and burst) divided by `replicas`,
    /// rounded up, by a battlement-rate-limit limiter with the same key extractor.
    LocalShare {
        /// How many replicas share the limit (at least 1).
        replicas: u32,
    },
    /// Reject every call (with `RateLimited`, retry after one emission interval).
    FailClosed,
}

impl Default for Outage {
    fn default() -> Self {
        Outage::LocalShare { replicas: 1 }
    }
}

/// A rate limit shared by every replica of a fleet: GCRA evaluated atomically in Redis by a
/// Lua script run by its SHA (`EVALSHA`, loading it on `NOSCRIPT`), in one round trip, keyed
/// like battlement-rate-limit's limiter (any [`KeyExtractor`] whose key is a [`FleetKey`]).
///
/// Keys are `{<prefix>:rl:<name>}:<key>`: the hash tag puts a limiter's keys on one Redis
/// Cluster slot. Time is Redis' clock (`TIME` inside the script), so replicas' clocks do not
/// matter. A call over the rate fails with core's [`RateLimited`] (so the facade's HTTP 429
/// and gRPC `RESOURCE_EXHAUSTED` mappings apply), with `retry_after` from the script.
///
/// While Redis is unreachable or slow, each call waits at most the fleet's command timeout
/// once, then none, and the limiter decides locally ([`Outage`]).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, GlobalRateLimit, Mode, Outage};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let limit = GlobalRateLimit::builder("api", &fleet)
///     .rate(1000, Duration::from_secs(1))
///     .mode(Mode::Leased { batch: 20 })
///     .outage(Outage::LocalShare { replicas: 3 })
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(limit.layer())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
/// let _ = svc.oneshot(1).await;
/// # }
/// ```
pub struct GlobalRateLimit<X: KeyExtractor = Unkeyed> {
    pub(crate) inner: Arc<Inner<X>>,
}

impl<X: KeyExtractor> Clone for GlobalRateLimit<X> {
    fn clone(&self) -> Self {
        GlobalRateLimit {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<X: KeyExtractor> {
    name: Arc<str>,
    fleet: Fleet,
    extractor: X,
    quota: u32,
    window: Duration,
    burst: u32,
    interval_us: u64,
    tolerance_us: u64,
    mode: Mode,
    local: Option<RateLimit<X>>,
    key_prefix: String,
    leases: DashMap<String, Lease>,
    max_keys: usize,
    admitted: StripedCounter,
    rejected: AtomicU64,
    local_decisions: AtomicU64,
    round_trips: StripedCounter,
}

#[derive(Default)]
struct Lease {
    permits: Arc<AtomicU64>,
    refilling: Arc<AtomicBool>,
    /// Until when (µs since [`epoch`]) Redis said no permit is free: calls before then are
    /// rejected here, without a round trip.
    denied_until: Arc<AtomicU64>,
}

/// The time base of leases' `denied_until` (`tokio::time`, so paused tests drive it).
fn epoch() -> tokio::time::Instant {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(tokio::time::Instant::now)
}

fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What a lease says about a call.
enum Leased {
    Admit,
    Reject(RateLimited),
    /// Ask Redis.
    Ask,
}

/// A decision of the global limiter.
pub(crate) enum Decision {
    Admit,
    Reject(RateLimited),
    /// Redis could not decide: decide locally.
    Local,
}

impl GlobalRateLimit {
    /// Starts building a global rate limiter called `name` on `fleet` (one limit for every
    /// call; make it keyed with [`keyed`](GlobalRateLimitBuilder::keyed)).
    pub fn builder(name: impl Into<String>, fleet: &Fleet) -> GlobalRateLimitBuilder {
        GlobalRateLimitBuilder {
            name: name.into(),
            fleet: fleet.clone(),
            extractor: Unkeyed,
            quota: 0,
            window: Duration::ZERO,
            burst: None,
            mode: Mode::Exact,
            outage: Outage::default(),
            max_keys: 100_000,
        }
    }
}

impl<X: KeyExtractor> GlobalRateLimit<X>
where
    X::Key: FleetKey,
{
    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The calls allowed per [`window`](Self::window), fleet-wide.
    pub fn quota(&self) -> u32 {
        self.inner.quota
    }

    /// The rate's period.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// How many calls may pass at once after a quiet spell, fleet-wide.
    pub fn burst(&self) -> u32 {
        self.inner.burst
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The local limiter of this replica's share ([`Outage::LocalShare`]).
    pub fn local(&self) -> Option<&RateLimit<X>> {
        self.inner.local.as_ref()
    }

    /// A read-out of the counts.
    pub fn metrics(&self) -> GlobalRateLimitMetrics {
        let i = &*self.inner;
        GlobalRateLimitMetrics {
            admitted: i.admitted.sum(),
            rejected: i.rejected.load(Relaxed),
            local_decisions: i.local_decisions.load(Relaxed),
            round_trips: i.round_trips.sum(),
            leased_permits: i.leases.iter().map(|l| l.permits.load(Relaxed)).sum(),
        }
    }

    /// Decides a call for `req` locally when it can (leased mode: a leased permit, or Redis'
    /// recent "none free until T"); otherwise returns the Redis key to ask about. The key is
    /// written into a reused per-thread buffer, so a call decided locally allocates nothing.
    #[inline]
    pub(crate) fn check_local<Req>(&self, req: &Req) -> Result<Result<(), RateLimited>, String>
    where
        X: ExtractKey<Req>,
    {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|buf| {
            let mut key = buf.borrow_mut();
            key.clear();
            key.push_str(&self.inner.key_prefix);
            if let Some(k) = self.inner.extractor.extract(req) {
                k.write_key(&mut key);
            }
            match self.try_leased(&key) {
                Leased::Admit => Ok(Ok(())),
                Leased::Reject(e) => Ok(Err(e)),
                Leased::Ask => Err(key.clone()),
            }
        })
    }

    /// Decides a call at once, without Redis, when it can (leased mode): a leased permit
    /// admits it; a recent "no permit until T" from Redis rejects it.
    #[inline]
    fn try_leased(&self, key: &str) -> Leased {
        if !matches!(self.inner.mode, Mode::Leased { .. }) {
            return Leased::Ask;
        }
        let Some(lease) = self.inner.leases.get(key) else {
            return Leased::Ask;
        };
        let permits = &lease.permits;
        let mut n = permits.load(Acquire);
        while n > 0 {
            match permits.compare_exchange_weak(n, n - 1, AcqRel, Acquire) {
                Ok(_) => {
                    self.inner.admitted.increment();
                    return Leased::Admit;
                }
                Err(now) => n = now,
            }
        }
        let until = lease.denied_until.load(Relaxed);
        if until != 0 {
            let now = now_us();
            if now < until {
                drop(lease);
                return Leased::Reject(self.reject(Duration::from_micros(until - now)));
            }
        }
        Leased::Ask
    }

    /// Decides a call with Redis (one round trip).
    pub(crate) async fn decide(&self, key: String) -> Decision {
        let inner = &*self.inner;
        let (want, lease, denied) = match inner.mode {
            Mode::Exact => (1, None, None),
            Mode::Leased { batch } => {
                if inner.leases.len() >= inner.max_keys && !inner.leases.contains_key(&key) {
                    // Dropping leases loses unspent permits: the fleet admits less, never more.
                    inner.leases.clear();
                }
                let lease = inner.leases.entry(key.clone()).or_default();
                let (permits, refilling) = (lease.permits.clone(), lease.refilling.clone());
                let denied = Some(lease.denied_until.clone());
                drop(lease);
                if refilling
                    .compare_exchange(false, true, AcqRel, Acquire)
                    .is_ok()
                {
                    (batch, Some((permits, refilling)), denied)
                } else {
                    // Another call is refilling: this one takes a single permit.
                    (1, None, denied)
                }
            }
        };
        inner.round_trips.increment();
        let result = inner
            .fleet
            .run(|mut conn| async move {
                gcra()
                    .key(&key)
                    .arg(inner.interval_us)
                    .arg(inner.tolerance_us)
                    .arg(want)
                    .invoke_async::<(u64, u64)>(&mut conn)
                    .await
            })
            .await;
        let decision = match result {
            Ok((granted, _)) if granted > 0 => {
                if let Some((permits, _)) = &lease {
                    permits.fetch_add(granted - 1, AcqRel);
                }
                self.inner.admitted.increment();
                Decision::Admit
            }
            Ok((_, retry_us)) => {
                let retry_us = retry_us.max(1);
                if let Some(denied) = &denied {
                    denied.store(now_us().saturating_add(retry_us), Relaxed);
                }
                Decision::Reject(self.reject(Duration::from_micros(retry_us)))
            }
            Err(e) => {
                tracing::debug!(rate_limit = %inner.name, error = %e, "global rate limit undecided; deciding locally");
                Decision::Local
            }
        };
        if let Some((_, refilling)) = lease {
            refilling.store(false, Relaxed);
        }
        decision
    }

    /// Decides locally while Redis is unreachable ([`Outage`]).
    pub(crate) fn decide_locally<Req>(&self, req: &Req) -> Result<(), RateLimited>
    where
        X: ExtractKey<Req>,
    {
        self.inner.local_decisions.fetch_add(1, Relaxed);
        match &self.inner.local {
            Some(local) => match local.try_acquire(req) {
                Ok(()) => {
                    self.inner.admitted.increment();
                    Ok(())
                }
                Err(e) => {
                    self.inner.rejected.fetch_add(1, Relaxed);
                    Err(e)
                }
            },
            None => Err(self.reject(Duration::from_micros(self.inner.interval_us))),
        }
    }

    #[cold]
    fn reject(&self, retry_after: Duration) -> RateLimited {
        self.inner.rejected.fetch_add(1, Relaxed);
        tracing::debug!(rate_limit = %self.inner.name, ?retry_after, "call rejected by the global rate limit");
        RateLimited::new(
            self.inner.name.clone(),
            retry_after,
            u64::from(self.inner.quota),
            self.inner.window,
        )
    }

    /// Decides one call for `req` without a service: `Ok` admits it, `Err` is the typed
    /// rejection. One round trip in exact mode, none for a leased permit; while Redis is
    /// unreachable, the [`Outage`] rule.
    pub async fn acquire<Req>(&self, req: &Req) -> Result<(), RateLimited>
    where
        X: ExtractKey<Req>,
    {
        let key = match self.check_local(req) {
            Ok(decided) => return decided,
            Err(key) => key,
        };
        match self.decide(key).await {
            Decision::Admit => Ok(()),
            Decision::Reject(e) => Err(e),
            Decision::Local => self.decide_locally(req),
        }
    }

    /// A layer applying this limit.
    pub fn layer(&self) -> crate::GlobalRateLimitLayer<X> {
        crate::GlobalRateLimitLayer::new(self)
    }
}

impl<X: KeyExtractor> fmt::Debug for GlobalRateLimit<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalRateLimit")
            .field("name", &self.inner.name)
            .field("quota", &self.inner.quota)
            .field("window", &self.inner.window)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// A read-out of a [`GlobalRateLimit`]'s counts on this replica.
///
/// ```no_run
/// # async fn f(limit: battlement_fleet::GlobalRateLimit) {
/// let m = limit.metrics();
/// println!("{} admitted, {} round trips", m.admitted, m.round_trips);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GlobalRateLimitMetrics {
    /// Calls admitted (globally, leased or locally).
    pub admitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Calls decided locally because Redis could not decide.
    pub local_decisions: u64,
    /// Script runs sent to Redis.
    pub round_trips: u64,
    /// Leased permits held unspent now.
    pub leased_permits: u64,
}

/// Settings of a [`GlobalRateLimit`]; [`build`](Self::build) validates them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_fleet::{Fleet, GlobalRateLimit, Mode};
/// use std::time::Duration;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:1/").build().unwrap();
/// let err = GlobalRateLimit::builder("api", &fleet)
///     .rate(10, Duration::from_secs(1))
///     .mode(Mode::Leased { batch: 0 })
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "mode.batch");
/// # }
/// ```
#[derive(Debug)]
pub struct GlobalRateLimitBuilder<X = Unkeyed> {
    name: String,
    fleet: Fleet,
    extractor: X,
    quota: u32,
    window: Duration,
    burst: Option<u32>,
    mode: Mode,
    outage: Outage,
    max_keys: usize,
}

impl<X> GlobalRateLimitBuilder<X> {
    /// Counts calls per key, read by `extractor` (battlement-rate-limit's extractors).
    pub fn keyed<Y: KeyExtractor + Clone>(self, extractor: Y) -> GlobalRateLimitBuilder<Y> {
        GlobalRateLimitBuilder {
            name: self.name,
            fleet: self.fleet,
            extractor,
            quota: self.quota,
            window: self.window,
            burst: self.burst,
            mode: self.mode,
            outage: self.outage,
            max_keys: self.max_keys,
        }
    }

    /// `n` calls per `period`, fleet-wide (required).
    pub fn rate(mut self, n: u32, period: Duration) -> Self {
        self.quota = n;
        self.window = period;
        self
    }

    /// Calls that may pass at once after a quiet spell, fleet-wide (default: 1 in exact mode,
    /// the batch in leased mode, since a refill takes at most the burst). Chosen so: a burst
    /// above 1 also absorbs the jitter of calls arriving over the network — with a burst of 1,
    /// time between a permit's due moment and the next call's arrival is lost, and a busy fleet
    /// admits a little less than the rate.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Exact (the default) or leased.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What to do while Redis is unreachable (default: the local limit of a share of 1, the
    /// whole limit).
    pub fn outage(mut self, outage: Outage) -> Self {
        self.outage = outage;
        self
    }

    /// The most keys with a lease held at once (leased mode; default 100 000): past it, the
    /// leases are dropped (their unspent permits are lost: the fleet admits less, never more).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }
}

impl<X: KeyExtractor + Clone> GlobalRateLimitBuilder<X>
where
    X::Key: FleetKey,
{
    fn error(
        &self,
        setting: &'static str,
        value: impl fmt::Debug,
        why: &'static str,
    ) -> ConfigError {
        ConfigError::scoped(ComponentKind::RateLimit, &self.name, setting, value, why)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            return Err(self.error("name", &self.name, "must be non-empty, without braces"));
        }
        if self.quota == 0 {
            return Err(self.error("rate.n", self.quota, "must be at least 1"));
        }
        if self.window.is_zero() {
            return Err(self.error("rate.period", self.window, "must be greater than zero"));
        }
        if self.window.as_micros() / u128::from(self.quota) == 0 {
            return Err(self.error("rate", self.quota, "more than one call per microsecond"));
        }
        if self.burst == Some(0) {
            return Err(self.error("burst", 0, "must be at least 1"));
        }
        if let Mode::Leased { batch: 0 } = self.mode {
            return Err(self.error("mode.batch", 0, "must be at least 1"));
        }
        if let Outage::LocalShare { replicas: 0 } = self.outage {
            return Err(self.error("outage.replicas", 0, "must be at least 1"));
        }
        if self.max_keys == 0 {
            return Err(self.error("max_keys", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// Builds the limiter.
    pub fn build(self) -> Result<GlobalRateLimit<X>, ConfigError> {
        self.validate()?;
        let burst = self.burst.unwrap_or(match self.mode {
            Mode::Exact => 1,
            Mode::Leased { batch } => batch,
        });
        let interval_us =
            u64::try_from(self.window.as_micros() / u128::from(self.quota)).unwrap_or(u64::MAX / 4);
        let local = match self.outage {
            Outage::LocalShare { replicas } => Some(
                RateLimit::builder(self.name.clone())
                    .rate(self.quota.div_ceil(replicas), self.window)
                    .burst(burst.div_ceil(replicas))
                    .keyed(self.extractor.clone())
                    .build()?,
            ),
            Outage::FailClosed => None,
        };
        let key_prefix = format!("{}:", self.fleet.key("rl", &self.name));
        Ok(GlobalRateLimit {
            inner: Arc::new(Inner {
                name: self.name.into(),
                fleet: self.fleet,
                extractor: self.extractor,
                quota: self.quota,
                window: self.window,
                burst,
                interval_us,
                tolerance_us: interval_us.saturating_mul(u64::from(burst)),
                mode: self.mode,
                local,
                key_prefix,
                leases: DashMap::new(),
                max_keys: self.max_keys,
                admitted: StripedCounter::new(),
                rejected: AtomicU64::new(0),
                local_decisions: AtomicU64::new(0),
                round_trips: StripedCounter::new(),
            }),
        })
    }
}
