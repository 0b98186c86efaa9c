//! One error listing every problem a configuration has.

use battlement_core::ConfigError;
use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a refused value came from.
///
/// ```
/// use battlement_config::Origin;
///
/// let origin = Origin::File { path: "battlement.toml".into(), line: Some(12) };
/// assert_eq!(origin.to_string(), "battlement.toml:12");
/// let origin = Origin::Env { var: "BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE".into() };
/// assert_eq!(origin.to_string(), "environment variable BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the line where the format gives it (TOML; not YAML or JSON).
    File {
        /// The file's path (relative to the working directory when it is below it).
        path: PathBuf,
        /// The line of the key, counting from 1.
        line: Option<usize>,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// Another figment provider, by its name.
    Provider(String),
    /// Settings given in code.
    Code,
    /// No layer set the value: it is the builder's own default, refused together with a
    /// setting that was given (e.g. `minimum_calls` larger than the window).
    BuilderDefault,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Provider(name) => f.write_str(name),
            Origin::Code => f.write_str("code"),
            Origin::BuilderDefault => f.write_str("the builder's default"),
        }
    }
}

impl Origin {
    pub(crate) fn file(path: &Path, line: Option<usize>) -> Self {
        let path = std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| path.to_path_buf());
        let path = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        Origin::File { path, line }
    }
}

/// One problem of a configuration: the key path it is at, what is wrong, and where the value
/// came from.
///
/// ```
/// use battlement_config::{Origin, Problem};
///
/// let p = Problem::new("instances.payments.breaker.failure_rate", "1.5 must be within (0, 1]")
///     .with_origin(Origin::File { path: "battlement.toml".into(), line: Some(12) });
/// assert_eq!(
///     p.to_string(),
///     "instances.payments.breaker.failure_rate: 1.5 must be within (0, 1] (battlement.toml:12)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    key: String,
    message: String,
    origin: Option<Origin>,
    refused: Option<Box<ConfigError>>,
}

impl Problem {
    /// A problem at `key` (a dotted path, e.g. `instances.payments.breaker.failure_rate`).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
            origin: None,
            refused: None,
        }
    }

    /// The same problem, said to come from `origin`.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    pub(crate) fn origin_opt(mut self, origin: Option<Origin>) -> Self {
        self.origin = origin;
        self
    }

    pub(crate) fn refused(mut self, err: ConfigError) -> Self {
        self.refused = Some(Box::new(err));
        self
    }

    /// The key path, dotted.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the value came from, when known.
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The line, when the origin is a file whose format gives it.
    pub fn line(&self) -> Option<usize> {
        match self.origin {
            Some(Origin::File { line, .. }) => line,
            _ => None,
        }
    }

    /// The builder's error, when a builder refused the value.
    pub fn config_error(&self) -> Option<&ConfigError> {
        self.refused.as_deref()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.key, self.message)?;
        }
        if let Some(origin) = &self.origin {
            write!(f, " ({origin})")?;
        }
        Ok(())
    }
}

/// A configuration that cannot be used, with every problem found (not only the first): each
/// with its key path, its source and, for TOML files, its line. Display lists them one a line.
///
/// ```
/// use battlement_config::Loader;
///
/// figment::Jail::expect_with(|jail| {
///     jail.create_file("battlement.toml", r#"
/// [instances.payments.breaker]
/// failure_rate = 1.5
/// [instances.search.bulkhead]
/// max_concurrent = 0
/// "#)?;
///     let err = Loader::new().load().unwrap_err();
///     assert_eq!(err.problems().len(), 2);
///     assert_eq!(err.problems()[0].key(), "instances.payments.breaker.failure_rate");
///     assert_eq!(err.problems()[0].line(), Some(3));
///     assert_eq!(err.problems()[1].key(), "instances.search.bulkhead.max_concurrent");
///     assert_eq!(
///         err.to_string(),
///         "invalid configuration, 2 problems:\n  \
///          instances.payments.breaker.failure_rate: 1.5 must be within (0, 1] (battlement.toml:3)\n  \
///          instances.search.bulkhead.max_concurrent: 0 must be at least 1 (battlement.toml:5)"
///     );
///     Ok(())
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    problems: Vec<Problem>,
}

impl LoadError {
    pub(crate) fn new(mut problems: Vec<Problem>) -> Self {
        let mut seen = std::collections::HashSet::new();
        problems.retain(|p| seen.insert((p.key.clone(), p.message.clone())));
        LoadError { problems }
    }

    /// Every problem, in the order found (sections in key order).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            all => {
                write!(f, "invalid configuration, {} problems:", all.len())?;
                for p in all {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl Error for LoadError {}
