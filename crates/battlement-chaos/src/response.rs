//! Injected responses.

use std::fmt;
use std::sync::Arc;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoResponse {}
    impl<Res> Sealed for super::ResponseFn<Res> {}
}

/// What a [`Chaos`](crate::Chaos) handle answers with when it injects a response: either
/// [`NoResponse`] (the handle injects no responses, and works with services of any response type)
/// or a [`ResponseFn`] made by [`ChaosBuilder::response`](crate::ChaosBuilder::response).
pub trait InjectResponse<Res>: sealed::Sealed {
    /// A new injected response; `None` for [`NoResponse`].
    #[doc(hidden)]
    fn make_response(&self) -> Option<Res>;
}

/// A [`Chaos`](crate::Chaos) handle that injects no responses (only latency and errors).
///
/// ```
/// use battlement_chaos::{Chaos, NoResponse};
///
/// let chaos: Chaos<NoResponse> = Chaos::builder("c").error(0.1).build().unwrap();
/// # drop(chaos);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoResponse;

impl<Res> InjectResponse<Res> for NoResponse {
    #[inline]
    fn make_response(&self) -> Option<Res> {
        None
    }
}

/// A user function that makes injected responses (e.g. an HTTP 503); see
/// [`ChaosBuilder::response`](crate::ChaosBuilder::response).
///
/// Its type names only the response type, so a handle can be stored:
///
/// ```
/// use battlement_chaos::{Chaos, ResponseFn};
///
/// struct Gateway {
///     chaos: Chaos<ResponseFn<http::Response<String>>>,
/// }
///
/// let chaos = Chaos::builder("upstream")
///     .response(0.05, || {
///         http::Response::builder().status(503).body(String::new()).unwrap()
///     })
///     .build()
///     .unwrap();
/// let gateway = Gateway { chaos };
/// # drop(gateway);
/// ```
pub struct ResponseFn<Res> {
    make: Arc<dyn Fn() -> Res + Send + Sync>,
}

impl<Res> ResponseFn<Res> {
    pub(crate) fn new<F>(make: F) -> Self
    where
        F: Fn() -> Res + Send + Sync + 'static,
    {
        ResponseFn {
            make: Arc::new(make),
        }
    }
}

impl<Res> Clone for ResponseFn<Res> {
    fn clone(&self) -> Self {
        ResponseFn {
            make: self.make.clone(),
        }
    }
}

impl<Res> fmt::Debug for ResponseFn<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFn")
            .field("response", &std::any::type_name::<Res>())
            .finish()
    }
}

impl<Res> InjectResponse<Res> for ResponseFn<Res> {
    #[inline]
    fn make_response(&self) -> Option<Res> {
        Some((self.make)())
    }
}
