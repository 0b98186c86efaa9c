//! x
mod error;
mod load;
mod registry;
mod settings;
pub use error::{LoadError, Origin, Problem};
pub use load::{Configuration, Loader, Settings};
pub use registry::{Resilience, ResilienceBuilder, ResilienceError};
pub use settings::*;
