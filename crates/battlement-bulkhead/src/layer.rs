//! The bulkhead's `tower::Layer`.

use crate::{Bulkhead, BulkheadService};
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
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer guarding services with `bulkhead`.
    pub fn new(bulkhead: &Bulkhead) -> Self {
        BulkheadLayer {
            bulkhead: bulkhead.clone(),
        }
    }

    /// The bulkhead this layer guards with.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, self.bulkhead.clone())
    }
}

impl Bulkhead {
    /// A layer guarding services with this bulkhead.
    pub fn layer(&self) -> BulkheadLayer {
        BulkheadLayer::new(self)
    }
}
