//! x
mod error;
mod load;
mod settings;
pub use error::{LoadError, Origin, Problem};
pub use load::{Configuration, Loader, Settings};
pub use settings::*;
