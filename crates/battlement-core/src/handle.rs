//! [`Handle`]: a shared value's handle that can be leaked, so that its clones copy a pointer.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A handle on a value that every clone shares: an [`Arc`], or once [leaked](Self::leak) a
/// `&'static` reference, whose clones copy a pointer instead of counting a reference on a word
/// that every core's clones write.
///
/// Layers keep their shared state in one (a timeout's limit and counters), so that a service
/// cloned for every request (hyper, axum's router) writes nothing shared once the layer was
/// leaked.
///
/// ```
/// use battlement_core::handle::Handle;
/// use std::sync::Arc;
///
/// let shared = Arc::new(7);
/// let counted = Handle::from(shared.clone());
/// let clone = counted.clone();
/// assert_eq!(Arc::strong_count(&shared), 3);
///
/// let leaked = counted.leak(); // keeps one reference for good
/// let copies: Vec<_> = (0..10).map(|_| leaked.clone()).collect();
/// assert_eq!(Arc::strong_count(&shared), 4); // one for good, none per copy
/// assert!(leaked.is_leaked() && *copies[9] == 7 && *clone == 7);
/// ```
pub struct Handle<T: ?Sized + 'static>(Repr<T>);

enum Repr<T: ?Sized + 'static> {
    Counted(Arc<T>),
    Leaked(&'static T),
}

impl<T: ?Sized> Handle<T> {
    /// The same value kept for the rest of the program (never freed), as a handle whose clones
    /// copy a pointer. Leaking a handle that is not leaked yet keeps one reference for good.
    pub fn leak(&self) -> Self {
        match &self.0 {
            Repr::Counted(value) => {
                let kept: &'static Arc<T> = Box::leak(Box::new(value.clone()));
                Handle(Repr::Leaked(kept))
            }
            Repr::Leaked(value) => Handle(Repr::Leaked(value)),
        }
    }

    /// Whether this handle was [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        matches!(self.0, Repr::Leaked(_))
    }

    /// A handle on a value kept for the rest of the program: its clones copy the pointer, as
    /// a [leaked](Self::leak) handle's do.
    ///
    /// ```
    /// use battlement_core::handle::Handle;
    ///
    /// static LIMIT: u32 = 7;
    /// let handle = Handle::from_static(&LIMIT);
    /// assert!(handle.is_leaked() && *handle.clone() == 7);
    /// ```
    pub fn from_static(value: &'static T) -> Self {
        Handle(Repr::Leaked(value))
    }

    /// The value, for the rest of the program, if this handle was [leaked](Self::leak) (or
    /// made [`from_static`](Self::from_static)): what a handle on a part of it can borrow
    /// without counting a reference.
    ///
    /// ```
    /// use battlement_core::handle::Handle;
    /// use std::sync::Arc;
    ///
    /// let counted = Handle::from(Arc::new([1, 2, 3]));
    /// assert!(counted.as_static().is_none());
    /// let second: &'static i32 = &counted.leak().as_static().unwrap()[1];
    /// assert_eq!(*second, 2);
    /// ```
    pub fn as_static(&self) -> Option<&'static T> {
        match self.0 {
            Repr::Counted(_) => None,
            Repr::Leaked(value) => Some(value),
        }
    }

    /// The value's reference count, `None` once leaked (no longer counted per handle).
    pub fn strong_count(&self) -> Option<usize> {
        match &self.0 {
            Repr::Counted(value) => Some(Arc::strong_count(value)),
            Repr::Leaked(_) => None,
        }
    }
}

impl<T: ?Sized> From<Arc<T>> for Handle<T> {
    fn from(value: Arc<T>) -> Self {
        Handle(Repr::Counted(value))
    }
}

impl<T: ?Sized> Deref for Handle<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.0 {
            Repr::Counted(value) => value,
            Repr::Leaked(value) => value,
        }
    }
}

/// A clone of a leaked handle copies the pointer; of another, counts a reference.
impl<T: ?Sized> Clone for Handle<T> {
    #[inline]
    fn clone(&self) -> Self {
        match &self.0 {
            Repr::Counted(value) => Handle(Repr::Counted(value.clone())),
            Repr::Leaked(value) => Handle(Repr::Leaked(value)),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
