//! The `metrics` facade.
