//! Loading: files and environment through figment, `base` inheritance, validation by building.

use crate::error::{LoadError, Origin, Problem};
use crate::settings::*;
use battlement_breaker::CircuitBreaker;
use battlement_bulkhead::Bulkhead;
use battlement_core::ConfigError;
use battlement_hedge::HedgeLayer;
use battlement_kill_switch::KillSwitch;
use battlement_retry::RetryPolicy;
use figment::providers::{Env, Format, Json, Toml, Yaml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The three sections of a configuration as written: `defaults` per pattern, named `configs`
/// and `instances`. [`Configuration::new`] resolves and validates it.
///
/// ```
/// use battlement_config::{BulkheadSettings, Configuration, InstanceSettings, Settings};
///
/// let mut settings = Settings::default();
/// settings.instances.insert("db".into(), InstanceSettings {
///     bulkhead: Some(BulkheadSettings { max_concurrent: Some(8), ..Default::default() }),
///     ..Default::default()
/// });
/// let config = Configuration::new(settings).unwrap();
/// assert_eq!(config.instance("db").unwrap().bulkhead.as_ref().unwrap().max_concurrent, Some(8));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The settings every instance starts from, per pattern (no `base`).
    pub defaults: InstanceSettings,
    /// Named settings that instances (and other configs) extend with `base = "name"`.
    pub configs: BTreeMap<String, InstanceSettings>,
    /// The instances, by name.
    pub instances: BTreeMap<String, InstanceSettings>,
}

/// A resolved, validated configuration: for each instance, the patterns it has (set in it or
/// in one of its bases), each merged over its bases and `defaults`.
///
/// Resolution: for an instance, `defaults`, then its bases from the farthest to the nearest,
/// then the instance itself, field by field (a field set later wins). An instance has a
/// pattern when it or one of its bases has that section; `defaults` alone gives no instance a
/// pattern. Every pattern of every instance, and every pattern in `defaults`, is built once
/// while loading, so a loaded configuration builds.
///
/// ```
/// use battlement_config::Configuration;
///
/// let config = Configuration::from_toml(r#"
/// [defaults.breaker]
/// minimum_calls = 20
///
/// [configs.strict.breaker]
/// failure_rate = 0.2
///
/// [instances.payments]
/// base = "strict"
/// breaker = { window = 50 }
/// "#).unwrap();
/// let breaker = config.instance("payments").unwrap().breaker.clone().unwrap();
/// assert_eq!(breaker.minimum_calls, Some(20)); // from defaults
/// assert_eq!(breaker.failure_rate, Some(0.2)); // from the base
/// assert_eq!(breaker.window, Some(battlement_config::Window::Calls(50)));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Configuration {
    defaults: InstanceSettings,
    instances: BTreeMap<String, InstanceSettings>,
}

/// The patterns, by section name.
pub(crate) const PATTERNS: [&str; 10] = [
    "breaker",
    "bulkhead",
    "retry",
    "timeout",
    "total_timeout",
    "hedge",
    "kill_switch",
    "rate_limit",
    "throttle",
    "adaptive_limit",
];

impl Configuration {
    /// Resolves `base` inheritance and validates every instance by building it.
    ///
    /// # Errors
    ///
    /// Every problem found, with its key path (its origin is [`Origin::Code`]).
    pub fn new(settings: Settings) -> Result<Self, LoadError> {
        resolve(&settings, None)
    }

    /// Reads a figment (files, environment, anything) and resolves it as [`new`](Self::new)
    /// does; problems carry the source of each value and, for TOML files, its line.
    ///
    /// # Errors
    ///
    /// Every problem found.
    pub fn from_figment(figment: &Figment) -> Result<Self, LoadError> {
        let mut cx = Context::new(figment);
        let settings = cx.extract();
        let config = resolve(&settings, Some(&mut cx));
        match (config, cx.problems.is_empty()) {
            (Ok(config), true) => Ok(config),
            (Ok(_), false) => Err(LoadError::new(cx.problems)),
            (Err(e), _) => {
                let mut problems = cx.problems;
                problems.extend(e.problems().iter().cloned());
                Err(LoadError::new(problems))
            }
        }
    }

    /// A configuration from TOML text (no environment).
    ///
    /// # Errors
    ///
    /// Every problem found.
    pub fn from_toml(text: &str) -> Result<Self, LoadError> {
        Self::from_figment(&Figment::from(Toml::string(text)))
    }

    /// A configuration from YAML text (no environment).
    ///
    /// # Errors
    ///
    /// Every problem found.
    pub fn from_yaml(text: &str) -> Result<Self, LoadError> {
        Self::from_figment(&Figment::from(Yaml::string(text)))
    }

    /// A configuration from JSON text (no environment).
    ///
    /// # Errors
    ///
    /// Every problem found.
    pub fn from_json(text: &str) -> Result<Self, LoadError> {
        Self::from_figment(&Figment::from(Json::string(text)))
    }

    /// The settings every instance starts from.
    pub fn defaults(&self) -> &InstanceSettings {
        &self.defaults
    }

    /// An instance's resolved settings: the patterns it has, each merged over its bases and
    /// `defaults` (`base` is `None`).
    pub fn instance(&self, name: &str) -> Option<&InstanceSettings> {
        self.instances.get(name)
    }

    /// The instances' names, sorted.
    pub fn instance_names(&self) -> impl Iterator<Item = &str> {
        self.instances.keys().map(String::as_str)
    }
}

/// Names of configs and instances: letters, digits, `-` and `_` (they become key paths,
/// environment variable names and metric labels).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}` has `{c}`: names have letters, digits, `-` and `_` only"
        ));
    }
    Ok(())
}

/// How a name is spelled in an environment variable's key once figment lowercased it.
pub(crate) fn env_spelling(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// The figment being read, and the problems found in it.
struct Context<'a> {
    figment: &'a Figment,
    problems: Vec<Problem>,
    files: HashMap<PathBuf, Option<toml_edit::ImDocument<String>>>,
}

impl<'a> Context<'a> {
    fn new(figment: &'a Figment) -> Self {
        Context {
            figment,
            problems: Vec::new(),
            files: HashMap::new(),
        }
    }

    /// Where the value at `key` came from: its provider and, in a TOML file, its line.
    fn origin(&mut self, key: &str) -> Option<Origin> {
        let meta = self.figment.find_metadata(key)?;
        if let Some(path) = meta.source.as_ref().and_then(|s| s.file_path()) {
            let line = self.toml_line(path, key);
            return Some(Origin::file(path, line));
        }
        if meta.name.contains("environment variable") {
            let prefix = meta
                .name
                .trim_start_matches('`')
                .split('`')
                .next()
                .unwrap_or_default()
                .to_owned();
            let var = key
                .split('.')
                .map(|k| env_spelling(k).to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("__");
            return Some(Origin::Env {
                var: format!("{prefix}{var}"),
            });
        }
        Some(Origin::Provider(meta.name.to_string()))
    }

    fn toml_line(&mut self, path: &Path, key: &str) -> Option<usize> {
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            return None;
        }
        let doc = self
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(path).ok()?;
                toml_edit::ImDocument::parse(text).ok()
            })
            .as_ref()?;
        toml_key_line(doc, key)
    }

    fn problem(&mut self, key: &str, message: impl Into<String>) {
        let origin = self.origin(key);
        self.problems
            .push(Problem::new(key, message).origin_opt(origin));
    }

    /// Records every error of `err`, found in the section at `at` (figment's `extract_inner`
    /// appends the section's path after the error's own instead of before it: put it first).
    fn figment_error(&mut self, err: figment::Error, at: &str) {
        let prefix: Vec<String> = at
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        for e in err {
            let mut path = e.path.clone();
            if !prefix.is_empty() && path.ends_with(&prefix) {
                path.truncate(path.len() - prefix.len());
                path.splice(0..0, prefix.iter().cloned());
            } else if !path.starts_with(&prefix) {
                path.splice(0..0, prefix.iter().cloned());
            }
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key; expected one of {}", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            let key = path.join(".");
            let origin = self.origin(&key).or_else(|| {
                e.metadata.as_ref().and_then(|m| {
                    m.source
                        .as_ref()
                        .and_then(|s| s.file_path())
                        .map(|p| Origin::file(p, None))
                })
            });
            self.problems
                .push(Problem::new(key, message).origin_opt(origin));
        }
    }

    fn section<T: for<'de> Deserialize<'de>>(&mut self, key: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(key) {
            Ok(v) => Some(v),
            Err(e) => {
                self.figment_error(e, key);
                None
            }
        }
    }

    fn dict(&mut self, key: &str) -> Option<Dict> {
        match self.figment.find_value(key) {
            Ok(Value::Dict(_, d)) => Some(d),
            Ok(_) => {
                self.problem(key, "must be a table of settings");
                None
            }
            Err(_) => None,
        }
    }

    /// One section (defaults, a config, an instance), pattern by pattern, so each pattern's
    /// problems are found whatever the other patterns hold.
    fn instance(&mut self, key: &str, base_allowed: bool) -> InstanceSettings {
        let mut out = InstanceSettings::default();
        let Some(dict) = self.dict(key) else {
            return out;
        };
        for name in dict.keys() {
            let at = format!("{key}.{name}");
            match name.as_str() {
                "base" if base_allowed => out.base = self.section(&at),
                "breaker" => out.breaker = self.section(&at),
                "bulkhead" => out.bulkhead = self.section(&at),
                "retry" => out.retry = self.section(&at),
                "timeout" => out.timeout = self.section(&at),
                "total_timeout" => out.total_timeout = self.section(&at),
                "hedge" => out.hedge = self.section(&at),
                "kill_switch" => out.kill_switch = self.section(&at),
                "rate_limit" => out.rate_limit = self.section(&at),
                "throttle" => out.throttle = self.section(&at),
                "adaptive_limit" => out.adaptive_limit = self.section(&at),
                _ => {
                    let base = if base_allowed { "base, " } else { "" };
                    self.problem(
                        &at,
                        format!("unknown key; expected one of {base}{}", PATTERNS.join(", ")),
                    )
                }
            }
        }
        out
    }

    fn named(&mut self, section: &str) -> BTreeMap<String, InstanceSettings> {
        let mut out = BTreeMap::new();
        let Some(dict) = self.dict(section) else {
            return out;
        };
        let mut spellings: HashMap<String, String> = HashMap::new();
        for name in dict.keys() {
            let at = format!("{section}.{name}");
            if let Err(why) = check_name(name) {
                self.problem(&at, why);
                continue;
            }
            if let Some(other) = spellings.insert(env_spelling(name), name.clone()) {
                self.problem(
                    &at,
                    format!("`{name}` and `{other}` are the same name in an environment variable"),
                );
            }
            let settings = self.instance(&at, true);
            out.insert(name.clone(), settings);
        }
        out
    }

    fn extract(&mut self) -> Settings {
        let mut settings = Settings::default();
        let top = match self.figment.extract::<Dict>() {
            Ok(top) => top,
            Err(e) => {
                self.figment_error(e, "");
                return settings;
            }
        };
        for key in top.keys() {
            match key.as_str() {
                "defaults" => settings.defaults = self.instance("defaults", false),
                "configs" => settings.configs = self.named("configs"),
                "instances" => settings.instances = self.named("instances"),
                _ => self.problem(
                    key,
                    "unknown key; expected one of defaults, configs, instances",
                ),
            }
        }
        settings
    }
}

/// The line of `key` (dotted) in a TOML document, or of its deepest ancestor found.
fn toml_key_line(doc: &toml_edit::ImDocument<String>, key: &str) -> Option<usize> {
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut span = None;
    for part in key.split('.') {
        let Some((k, item)) = table.get_key_value(part) else {
            break;
        };
        span = k.span().or(span);
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    let offset = span?.start;
    Some(doc.raw()[..offset].matches('\n').count() + 1)
}

/// A pattern's refusal, placed at the key that set the refused value.
fn refusal(
    cx: &mut Option<&mut Context<'_>>,
    layers: &[String],
    pattern: &str,
    file_key: Option<&'static str>,
    err: ConfigError,
) -> Problem {
    let message = format!("{} {}", err.value(), err.reason());
    let Some(field) = file_key else {
        // A refusal of no one setting (the name): said of the first layer, the instance.
        let key = layers.first().cloned().unwrap_or_default();
        let origin = match cx {
            Some(cx) => cx.origin(&key),
            None => Some(Origin::Code),
        };
        return Problem::new(key, message).origin_opt(origin).refused(err);
    };
    let candidates: Vec<String> = layers
        .iter()
        .map(|l| format!("{l}.{pattern}.{field}"))
        .collect();
    let (key, origin) = match cx {
        Some(cx) => match candidates.iter().find(|k| cx.figment.contains(k)) {
            Some(k) => (k.clone(), cx.origin(k)),
            None => (candidates[0].clone(), Some(Origin::BuilderDefault)),
        },
        None => (candidates[0].clone(), Some(Origin::Code)),
    };
    Problem::new(key, message).refused(err).origin_opt(origin)
}

/// Builds each pattern of `settings` once (with no registry) to run the builders' checks.
fn check(
    settings: &InstanceSettings,
    name: &str,
    layers: &[String],
    cx: &mut Option<&mut Context<'_>>,
    problems: &mut Vec<Problem>,
) {
    if let Some(s) = &settings.breaker {
        if let Err(e) = s.apply(CircuitBreaker::builder(name)).build() {
            problems.push(refusal(
                cx,
                layers,
                "breaker",
                BreakerSettings::key_of(e.setting()),
                e,
            ));
        }
    }
    if let Some(s) = &settings.bulkhead {
        if let Err(e) = s.apply(Bulkhead::builder(name)).build() {
            problems.push(refusal(
                cx,
                layers,
                "bulkhead",
                BulkheadSettings::key_of(e.setting()),
                e,
            ));
        }
    }
    if let Some(s) = &settings.retry {
        if let Err(e) = s.apply(RetryPolicy::builder().name(name)).build() {
            problems.push(refusal(
                cx,
                layers,
                "retry",
                RetrySettings::key_of(e.setting()),
                e,
            ));
        }
    }
    if let Some(s) = &settings.timeout {
        if let Err(e) = s.layer(name) {
            problems.push(refusal(
                cx,
                layers,
                "timeout",
                TimeoutSettings::key_of(e.setting()),
                e,
            ));
        }
    }
    if let Some(s) = &settings.total_timeout {
        match s.layer(name) {
            Err(e) => problems.push(refusal(
                cx,
                layers,
                "total_timeout",
                TimeoutSettings::key_of(e.setting()),
                e,
            )),
            Ok(total) => {
                let attempt = settings.timeout.as_ref().and_then(|t| t.limit);
                if let Some(attempt) = attempt.filter(|a| *a > total.limit()) {
                    let e = ConfigError::new(
                        "timeout",
                        "limit",
                        attempt,
                        format!(
                            "an attempt's timeout must not be longer than the total timeout ({:?})",
                            total.limit()
                        ),
                    );
                    problems.push(refusal(cx, layers, "timeout", Some("limit"), e));
                }
            }
        }
    }
    if let Some(s) = &settings.hedge {
        if let Err(e) = s.apply(HedgeLayer::builder().name(name)).build() {
            problems.push(refusal(
                cx,
                layers,
                "hedge",
                HedgeSettings::key_of(e.setting()),
                e,
            ));
        }
    }
    if let Some(s) = &settings.kill_switch {
        if let Err(e) = s.apply(KillSwitch::builder(name)).build() {
            problems.push(refusal(
                cx,
                layers,
                "kill_switch",
                KillSwitchSettings::key_of(e.setting()),
                e,
            ));
        }
    }
    for (pattern, key_of, result) in crate::admission::check(settings, name) {
        if let Err(e) = result {
            problems.push(refusal(cx, layers, pattern, key_of(e.setting()), e));
        }
    }
}

/// `defaults`, then the bases from the farthest, then the instance; and the key paths of the
/// layers, nearest first.
fn chain(
    settings: &Settings,
    start: &str,
    own: &InstanceSettings,
) -> Result<(Vec<String>, Vec<InstanceSettings>), (String, String)> {
    let mut layers = vec![start.to_owned()];
    let mut stack = vec![own.clone()];
    let mut seen: Vec<String> = Vec::new();
    let mut base = own.base.clone();
    let mut at = format!("{start}.base");
    while let Some(name) = base {
        if seen.contains(&name) {
            seen.push(name.clone());
            return Err((at, format!("`base` makes a cycle: {}", seen.join(" → "))));
        }
        let Some(config) = settings.configs.get(&name) else {
            let known: Vec<&str> = settings.configs.keys().map(String::as_str).collect();
            return Err((
                at,
                format!(
                    "unknown base `{name}`; the configs are: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        seen.push(name.clone());
        layers.push(format!("configs.{name}"));
        stack.push(config.clone());
        at = format!("configs.{name}.base");
        base = config.base.clone();
    }
    layers.push("defaults".to_owned());
    Ok((layers, stack))
}

fn resolve(
    settings: &Settings,
    mut cx: Option<&mut Context<'_>>,
) -> Result<Configuration, LoadError> {
    let mut problems = Vec::new();
    let push = |cx: &mut Option<&mut Context<'_>>, key: String, message: String| {
        let origin = match cx {
            Some(cx) => cx.origin(&key),
            None => Some(Origin::Code),
        };
        Problem::new(key, message).origin_opt(origin)
    };
    if settings.defaults.base.is_some() {
        problems.push(push(
            &mut cx,
            "defaults.base".into(),
            "`defaults` have no base".into(),
        ));
    }
    for section in ["configs", "instances"] {
        let names = if section == "configs" {
            &settings.configs
        } else {
            &settings.instances
        };
        for name in names.keys() {
            if let Err(why) = check_name(name) {
                problems.push(push(&mut cx, format!("{section}.{name}"), why));
            }
        }
    }
    // The configs' own chains, so a cycle or an unknown base among configs is found even when
    // no instance uses them.
    for (name, config) in &settings.configs {
        if let Err((key, message)) = chain(settings, &format!("configs.{name}"), config) {
            problems.push(push(&mut cx, key, message));
        }
    }
    let defaults_layer = ["defaults".to_owned()];
    check(
        &settings.defaults,
        "defaults",
        &defaults_layer,
        &mut cx,
        &mut problems,
    );
    let mut instances = BTreeMap::new();
    for (name, own) in &settings.instances {
        let (layers, stack) = match chain(settings, &format!("instances.{name}"), own) {
            Ok(c) => c,
            Err((key, message)) => {
                if key.starts_with("instances.") {
                    problems.push(push(&mut cx, key, message));
                }
                continue;
            }
        };
        let mut merged = InstanceSettings::default();
        for layer in stack.iter().rev() {
            merged = merged.merged(layer);
        }
        let d = &settings.defaults;
        let resolved = InstanceSettings {
            base: None,
            breaker: merged
                .breaker
                .map(|s| d.breaker.clone().unwrap_or_default().merged(&s)),
            bulkhead: merged
                .bulkhead
                .map(|s| d.bulkhead.clone().unwrap_or_default().merged(&s)),
            retry: merged
                .retry
                .map(|s| d.retry.clone().unwrap_or_default().merged(&s)),
            timeout: merged
                .timeout
                .map(|s| d.timeout.clone().unwrap_or_default().merged(&s)),
            total_timeout: merged
                .total_timeout
                .map(|s| d.total_timeout.clone().unwrap_or_default().merged(&s)),
            hedge: merged
                .hedge
                .map(|s| d.hedge.clone().unwrap_or_default().merged(&s)),
            kill_switch: merged
                .kill_switch
                .map(|s| d.kill_switch.clone().unwrap_or_default().merged(&s)),
            rate_limit: merged
                .rate_limit
                .map(|s| d.rate_limit.clone().unwrap_or_default().merged(&s)),
            throttle: merged
                .throttle
                .map(|s| d.throttle.clone().unwrap_or_default().merged(&s)),
            adaptive_limit: merged
                .adaptive_limit
                .map(|s| d.adaptive_limit.clone().unwrap_or_default().merged(&s)),
        };
        check(&resolved, name, &layers, &mut cx, &mut problems);
        instances.insert(name.clone(), resolved);
    }
    if problems.is_empty() {
        Ok(Configuration {
            defaults: settings.defaults.clone(),
            instances,
        })
    } else {
        Err(LoadError::new(problems))
    }
}

/// File formats a [`Loader`] reads, by extension.
const EXTENSIONS: [&str; 4] = ["toml", "yaml", "yml", "json"];

/// Loads a configuration from a base file, an overlay for the environment, and environment
/// variables, in that order (each over the one before).
///
/// - The base file is `<dir>/<stem>.<ext>` with `ext` one of `toml`, `yaml`, `yml`, `json`
///   (default `./battlement.toml` or its YAML or JSON twin; two of them is an error).
/// - The environment is the value of the variable [`environment_variable`](Self::environment_variable)
///   names (default `BATTLEMENT_ENV`), or [`environment`](Self::environment). With one, the
///   overlay `<dir>/<stem>.<environment>.<ext>` must exist: a typo in the environment's name is
///   an error, not the base alone.
/// - Environment variables `<prefix>DEFAULTS__…`, `<prefix>CONFIGS__…` and
///   `<prefix>INSTANCES__…` (default prefix `BATTLEMENT_`) set single settings, `__`
///   separating keys: `BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE=0.3`. Other
///   variables with the prefix (`BATTLEMENT_ENV`) are not settings. Names in variables: a
///   variable's key is lowercased, so a config or instance is named in it lowercased with each
///   `-` written `_` (`payment-api` is `PAYMENT_API`), and refers to the file's instance of that
///   spelling; two names in a file that are spelled the same way in a variable
///   (`payment-api` and `payment_api`) are an error. A name only a variable gives is taken as
///   spelled (lowercase, `_`).
///
/// ```
/// use battlement_config::Loader;
///
/// figment::Jail::expect_with(|jail| {
///     jail.create_file("battlement.toml", "[instances.db.bulkhead]\nmax_concurrent = 10\n")?;
///     jail.create_file("battlement.production.toml", "[instances.db.bulkhead]\nmax_concurrent = 50\n")?;
///     jail.set_env("BATTLEMENT_ENV", "production");
///     let config = Loader::new().load().unwrap();
///     let bulkhead = config.instance("db").unwrap().bulkhead.clone().unwrap();
///     assert_eq!(bulkhead.max_concurrent, Some(50));
///     Ok(())
/// });
/// ```
#[derive(Debug, Clone)]
pub struct Loader {
    dir: PathBuf,
    stem: String,
    environment_variable: String,
    environment: Option<String>,
    env_prefix: Option<String>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// `./battlement.{toml,yaml,yml,json}`, the overlay named by `BATTLEMENT_ENV`, and variables
    /// prefixed `BATTLEMENT_`.
    pub fn new() -> Self {
        Loader {
            dir: PathBuf::from("."),
            stem: "battlement".to_owned(),
            environment_variable: "BATTLEMENT_ENV".to_owned(),
            environment: None,
            env_prefix: Some("BATTLEMENT_".to_owned()),
        }
    }

    /// The directory the files are in (default `.`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// The files' stem (default `battlement`).
    pub fn stem(mut self, stem: impl Into<String>) -> Self {
        self.stem = stem.into();
        self
    }

    /// The variable that names the environment (default `BATTLEMENT_ENV`).
    pub fn environment_variable(mut self, name: impl Into<String>) -> Self {
        self.environment_variable = name.into();
        self
    }

    /// The environment, whatever the variable says.
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.environment = Some(name.into());
        self
    }

    /// The prefix of variables that set single settings (default `BATTLEMENT_`).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// No settings from environment variables.
    pub fn no_env_overrides(mut self) -> Self {
        self.env_prefix = None;
        self
    }

    /// The directory the files are in.
    #[cfg_attr(not(feature = "watch"), allow(dead_code))]
    pub(crate) fn files_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `path` is one of the files this loader may read: `<stem>.<ext>` or
    /// `<stem>.<environment>.<ext>` in its directory, whatever the environment.
    #[cfg_attr(not(feature = "watch"), allow(dead_code))]
    pub(crate) fn may_read(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let Some(rest) = name.strip_prefix(&format!("{}.", self.stem)) else {
            return false;
        };
        EXTENSIONS
            .iter()
            .any(|ext| rest == *ext || rest.ends_with(&format!(".{ext}")))
    }

    fn find(&self, stem: &str) -> Result<Option<PathBuf>, Problem> {
        let found: Vec<PathBuf> = EXTENSIONS
            .iter()
            .map(|ext| self.dir.join(format!("{stem}.{ext}")))
            .filter(|p| p.is_file())
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            [a, b, ..] => Err(Problem::new(
                "",
                format!("both {} and {} exist; keep one", a.display(), b.display()),
            )),
        }
    }

    fn file(figment: Figment, path: &Path) -> Figment {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => figment.merge(Toml::file_exact(path)),
            Some("json") => figment.merge(Json::file_exact(path)),
            _ => figment.merge(Yaml::file_exact(path)),
        }
    }

    /// The layered figment: base file, overlay, environment variables.
    ///
    /// # Errors
    ///
    /// No base file, two of them, or an environment without its overlay.
    pub fn figment(&self) -> Result<Figment, LoadError> {
        let base = match self.find(&self.stem) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(LoadError::new(vec![Problem::new(
                    "",
                    format!(
                        "no {} in {}",
                        EXTENSIONS.map(|e| format!("{}.{e}", self.stem)).join(", "),
                        self.dir.display()
                    ),
                )]))
            }
            Err(p) => return Err(LoadError::new(vec![p])),
        };
        let mut figment = Self::file(Figment::new(), &base);
        let environment = self
            .environment
            .clone()
            .or_else(|| std::env::var(&self.environment_variable).ok())
            .filter(|e| !e.is_empty());
        if let Some(env) = environment {
            match self.find(&format!("{}.{env}", self.stem)) {
                Ok(Some(p)) => figment = Self::file(figment, &p),
                Ok(None) => {
                    return Err(LoadError::new(vec![Problem::new(
                        "",
                        format!(
                            "the environment `{env}` has no overlay {}.{env}.{{toml,yaml,yml,json}} in {}",
                            self.stem,
                            self.dir.display()
                        ),
                    )]))
                }
                Err(p) => return Err(LoadError::new(vec![p])),
            }
        }
        if let Some(prefix) = &self.env_prefix {
            let env = env_provider(prefix, &figment);
            figment = figment.merge(env);
        }
        Ok(figment)
    }

    /// Loads, resolves and validates the configuration.
    ///
    /// # Errors
    ///
    /// Every problem found (see [`LoadError`]).
    pub fn load(&self) -> Result<Configuration, LoadError> {
        Configuration::from_figment(&self.figment()?)
    }
}

/// Variables `<prefix>{DEFAULTS,CONFIGS,INSTANCES}__…`, keys split on `__`, names mapped to
/// the spelling the files use.
fn env_provider(prefix: &str, files: &Figment) -> Env {
    let mut names: HashMap<String, String> = HashMap::new();
    for section in ["configs", "instances"] {
        if let Ok(Value::Dict(_, d)) = files.find_value(section) {
            for name in d.keys() {
                names.insert(format!("{section}.{}", env_spelling(name)), name.clone());
            }
        }
    }
    Env::prefixed(prefix)
        .filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            ["defaults__", "configs__", "instances__"]
                .iter()
                .any(|s| k.starts_with(s))
        })
        .map(move |k| {
            let parts: Vec<String> = k
                .as_str()
                .to_ascii_lowercase()
                .split("__")
                .map(str::to_owned)
                .collect();
            let mut out = parts.clone();
            if parts.len() > 1 {
                if let Some(name) = names.get(&format!("{}.{}", parts[0], parts[1])) {
                    out[1] = name.clone();
                }
            }
            out.join(".").into()
        })
        .lowercase(false)
}

impl fmt::Display for Configuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration of {} instances", self.instances.len())
    }
}
