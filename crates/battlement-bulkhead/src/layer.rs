//! The bulkhead's `tower::Layer`.

use crate::{Bulkhead, BulkheadService, PriorityFn};
use tower_layer::Layer;

/// Guards services with a [`Bulkhead`].
///
/// The layer only holds a handle: every service it makes, and every other layer made from the
/// same bulkhead, shares one budget of permits and one queue.
///
/// ```
/// use battlement_bulkhead::{Bulkhead, BulkheadLayer};
/// use tower::ServiceBuilder;
///
/// let db = Bulkhead::builder("db").max_concurrent(4).build().unwrap();
/// let reads = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(&db))
///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
/// let writes = ServiceBuilder::new()
///     .layer(db.layer()) // the same budget of 4
///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
/// assert_eq!(reads.bulkhead().name(), writes.bulkhead().name());
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer<P = ()> {
    bulkhead: Bulkhead,
    priority: P,
}

impl BulkheadLayer {
    /// A layer guarding services with `bulkhead`.
    pub fn new(bulkhead: &Bulkhead) -> Self {
        BulkheadLayer {
            bulkhead: bulkhead.clone(),
            priority: (),
        }
    }
}

impl<P> BulkheadLayer<P> {
    /// The bulkhead this layer guards with.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// This layer with its bulkhead [leaked](Bulkhead::leak): the same bulkhead (permits,
    /// queue, metrics, health, reloads), kept for the rest of the program, so that the layer's
    /// clones, the services it makes and their clones copy a pointer instead of counting a
    /// reference that every core's clones share. For a layer made once, at start, and applied
    /// where services are cloned per request (axum's `Router::layer`).
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, BulkheadLayer};
    ///
    /// let pool = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
    /// let layer = BulkheadLayer::new(&pool).leak();
    /// assert!(layer.is_leaked() && !pool.is_leaked());
    /// let _permit = layer.bulkhead().try_call(); // the same bulkhead
    /// assert_eq!(pool.in_flight(), 1);
    /// ```
    pub fn leak(self) -> Self {
        BulkheadLayer {
            bulkhead: self.bulkhead.leak(),
            priority: self.priority,
        }
    }

    /// Whether this layer's bulkhead is [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.bulkhead.is_leaked()
    }

    /// Gives each request a [`Priority`](crate::Priority) with `f`, asked only when no permit is free (see
    /// [`Priority`](crate::Priority) for what it changes). Without it every call is `Normal`.
    ///
    /// For an `http::Request`, read a priority set by an earlier layer from its extensions:
    /// `priority_fn(|r: &http::Request<B>| r.extensions().get::<Priority>().copied().unwrap_or_default())`.
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, Priority};
    /// use tower::ServiceBuilder;
    ///
    /// let api = Bulkhead::builder("api").max_concurrent(8).max_queued(32).build().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(api.layer().priority_fn(|path: &String| {
    ///         if path.starts_with("/checkout") { Priority::Critical }
    ///         else if path.starts_with("/recommendations") { Priority::Sheddable }
    ///         else { Priority::Normal }
    ///     }))
    ///     .service_fn(|path: String| async move { Ok::<_, std::io::Error>(path.len()) });
    /// # drop(svc);
    /// ```
    pub fn priority_fn<F>(self, f: F) -> BulkheadLayer<PriorityFn<F>> {
        BulkheadLayer {
            bulkhead: self.bulkhead,
            priority: PriorityFn(f),
        }
    }
}

impl<S, P: Clone> Layer<S> for BulkheadLayer<P> {
    type Service = BulkheadService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::with_priority(inner, self.bulkhead.clone(), self.priority.clone())
    }
}

impl Bulkhead {
    /// A layer guarding services with this bulkhead.
    pub fn layer(&self) -> BulkheadLayer {
        BulkheadLayer::new(self)
    }
}
