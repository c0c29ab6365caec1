//! The page's configuration: what the URL hash (or the widget's attributes) asked for, what was
//! rejected, and what a proposed change does to the live run.
//!
//! A change is proposed (`propose_set`, `propose_hash`), classified by the fields' effects
//! (`config::FIELDS`, `Config::change_effect`: retrain, resample or live), applied to the engine by
//! the page, and committed here only when the engine took it — so a refused change leaves both as
//! they were. The page's link holds the page's fields only (`Config::to_page_query`).
//!
//! A hostile link cannot hang the tab or flood the page: a hash is applied field by field in one
//! pass, at most [`MAX_HASH_ERRORS`] rejected fields are reported in full (the rest are counted,
//! without building their messages), and the values echoed are cut to [`MAX_SHOWN_CHARS`]. A
//! configuration is admitted by the work budget ([`fit`], `crate::budget::check`): a field whose
//! value does not fit on the device keeps its previous value and is reported with the budget's
//! message (the setting and the largest value that fits).

use crate::budget::{check, Profile, Target};
use crate::config::{Config, ConfigError, Effect, Scope};

/// Rejected hash fields reported in full; the others are counted ("and N more").
pub const MAX_HASH_ERRORS: usize = 5;
/// Characters of a field name or value echoed in a message.
pub const MAX_SHOWN_CHARS: usize = 40;

/// A rejected hash field: its name and a message naming it and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashError {
    pub field: String,
    pub message: String,
}

/// `s` cut to [`MAX_SHOWN_CHARS`] characters (with an ellipsis when cut).
pub fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl HashError {
    /// A configuration error with the values it echoes cut to [`MAX_SHOWN_CHARS`].
    pub fn from_config(e: &ConfigError) -> Self {
        let cut_error = match e {
            ConfigError::Invalid { field, value, allowed } => ConfigError::Invalid { field: cut(field), value: cut(value), allowed: allowed.clone() },
            ConfigError::Unknown { field, known } => ConfigError::Unknown { field: cut(field), known: known.clone() },
            ConfigError::OtherScope { field } => ConfigError::OtherScope { field: cut(field) },
        };
        HashError { field: cut(e.field()), message: cut_error.to_string() }
    }
}

/// Rejected hash fields: the first [`MAX_HASH_ERRORS`] and how many more there were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashErrors {
    pub shown: Vec<HashError>,
    pub more: usize,
}

impl HashErrors {
    pub fn push(&mut self, e: HashError) {
        if self.shown.len() < MAX_HASH_ERRORS {
            self.shown.push(e);
        } else {
            self.more += 1;
        }
    }

    fn full(&self) -> bool {
        self.shown.len() >= MAX_HASH_ERRORS
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// Puts `first` (the budget's refusals: they say what the page did instead) before the
    /// others, keeping at most [`MAX_HASH_ERRORS`] shown.
    pub fn prepend(&mut self, first: Vec<HashError>) {
        let rest = std::mem::take(&mut self.shown);
        let more = self.more;
        self.more = 0;
        for e in first.into_iter().chain(rest) {
            self.push(e);
        }
        self.more += more;
    }

    /// "and N more settings in the link were rejected", when some were not shown.
    pub fn more_message(&self) -> Option<String> {
        (self.more > 0).then(|| format!("and {} more settings in the link could not be used (only the first {MAX_HASH_ERRORS} are listed)", self.more))
    }
}

/// Applies the page's fields of `hash` to `config` in one pass (the page's rules:
/// `Config::apply_page_query`), reporting at most [`MAX_HASH_ERRORS`] rejected fields. Once that
/// many are reported, the rest are only counted: an unknown name costs no message at all.
pub fn apply_hash(config: &mut Config, hash: &str) -> HashErrors {
    let mut errors = HashErrors::default();
    for part in hash.trim_start_matches('#').split('&').filter(|p| !p.is_empty()) {
        let key = part.split_once('=').map_or(part, |(k, _)| k);
        let spec = crate::config::field(key);
        if errors.full() {
            match spec {
                Some(f) if f.scope == Scope::All => {
                    if !config.apply_query(part).is_empty() {
                        errors.more += 1;
                    }
                }
                _ => errors.more += 1,
            }
            continue;
        }
        for e in config.apply_page_query(part) {
            errors.push(HashError::from_config(&e));
        }
    }
    errors
}

/// `next` admitted by the work budget on `profile` (training on `target`). When it does not fit,
/// its changes from `fallback` are applied one setting at a time (in `config::FIELDS` order): a
/// setting that does not fit with the ones already taken keeps its `fallback` value and is
/// reported with the budget's message (which names it and the largest value that fits; when the
/// budget names another setting, the message says so). If `fallback` itself does not fit,
/// nothing is taken. The errors are empty when `next` fits as it is.
pub fn fit(next: Config, fallback: &Config, profile: &Profile, target: Target) -> (Config, Vec<HashError>) {
    if check(&next, profile, target).is_ok() {
        return (next, Vec::new());
    }
    let mut c = fallback.clone();
    let mut errors = Vec::new();
    for f in crate::config::FIELDS {
        let v = f.get(&next);
        if v == f.get(&c) {
            continue;
        }
        let mut t = c.clone();
        if t.set(f.name, &v).is_err() {
            continue;
        }
        match check(&t, profile, target) {
            Ok(_) => c = t,
            Err(r) if r.field == f.name => errors.push(HashError { field: f.name.to_string(), message: r.to_string() }),
            Err(r) => errors.push(HashError { field: f.name.to_string(), message: format!("{}={} does not fit with the other settings: {r}", f.name, cut(&v)) }),
        }
    }
    (c, errors)
}

/// The configuration in use and the hash fields that were rejected.
#[derive(Clone, Debug)]
pub struct Session {
    config: Config,
    hash_errors: HashErrors,
}

impl Session {
    /// `defaults` with `hash` applied: invalid fields are reported and keep their default.
    pub fn new(defaults: Config, hash: &str) -> Self {
        let mut config = defaults;
        let hash_errors = apply_hash(&mut config, hash);
        let mut session = Session { config, hash_errors };
        session.reset_until(Config::check_generation);
        session
    }

    /// Makes the configuration pass `check` (fields valid alone but not together, e.g. a class
    /// without conditional; or what an engine cannot do): the field each error names goes back to
    /// its default and the error is reported with the hash errors.
    pub fn reset_until(&mut self, check: impl Fn(&Config) -> Result<(), ConfigError>) {
        for _ in 0..crate::config::FIELDS.len() {
            let Err(e) = check(&self.config) else { break };
            let Some(f) = crate::config::field(e.field()) else { break };
            if f.get(&self.config) == f.default_value() || self.config.set(f.name, &f.default_value()).is_err() {
                break;
            }
            self.hash_errors.push(HashError::from_config(&e));
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration with `key` set to `value`, or the error naming the field.
    pub fn propose_set(&self, key: &str, value: &str) -> Result<Config, ConfigError> {
        let mut next = self.config.clone();
        if let Some(f) = crate::config::field(key) {
            if f.scope != crate::config::Scope::All {
                return Err(ConfigError::OtherScope { field: f.name.to_string() });
            }
        }
        next.set(key, value)?;
        Ok(next)
    }

    /// The configuration with a whole hash applied, and the rejected fields.
    pub fn propose_hash(&self, hash: &str) -> (Config, HashErrors) {
        let mut next = self.config.clone();
        let errors = apply_hash(&mut next, hash);
        (next, errors)
    }

    /// Admits the configuration by the work budget (see [`fit`]): each refused setting goes back
    /// to its value in `fallback` and is reported first among the hash errors. False when
    /// something was refused.
    pub fn admit(&mut self, fallback: &Config, profile: &Profile, target: Target) -> bool {
        let (c, refusals) = fit(self.config.clone(), fallback, profile, target);
        if refusals.is_empty() {
            return true;
        }
        self.config = c;
        self.hash_errors.prepend(refusals);
        false
    }

    /// What moving to `next` does to the live run (`None`: nothing changed), or why it cannot.
    pub fn effect(&self, next: &Config) -> Result<Option<Effect>, String> {
        crate::engine::change(&self.config, next)
    }

    /// `next` is in use now.
    pub fn commit(&mut self, next: Config) {
        self.config = next;
    }

    /// The value of one field as text.
    pub fn get(&self, key: &str) -> Option<String> {
        crate::config::field(key).map(|f| f.get(&self.config))
    }

    /// The page's link (without `#`).
    pub fn query(&self) -> String {
        self.config.to_page_query()
    }

    pub fn hash_errors(&self) -> &HashErrors {
        &self.hash_errors
    }

    pub fn set_hash_errors(&mut self, errors: HashErrors) {
        self.hash_errors = errors;
    }

    /// A field was set successfully: its hash error (if any) is gone.
    pub fn clear_error(&mut self, key: &str) {
        let field = key.trim().to_ascii_lowercase().replace('-', "_");
        self.hash_errors.shown.retain(|e| e.field != field);
    }

    /// The step limit (`steps`; 0: none).
    pub fn step_limit(&self) -> Option<u32> {
        (self.config.steps > 0).then(|| self.config.steps.min(u32::MAX as u64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::pacing::{page_config, Runs};

    #[test]
    fn a_session_classifies_changes_and_keeps_the_page_link_to_page_fields() {
        let mut s = Session::new(page_config(Runs::Software), "#width=abc&depth=3&samples=9&steps=500");
        assert_eq!(s.hash_errors().shown.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["width", "samples"]);
        assert_eq!((s.config().width, s.config().depth, s.step_limit()), (32, 3, Some(500)));
        let next = s.propose_set("lr", "0.003").unwrap();
        assert_eq!(s.effect(&next), Ok(Some(Effect::Live)));
        let next = s.propose_set("particles", "100").unwrap();
        assert_eq!(s.effect(&next), Ok(Some(Effect::Resample)));
        let next = s.propose_set("width", "8").unwrap();
        assert_eq!(s.effect(&next), Ok(Some(Effect::Retrain)));
        assert!(s.propose_set("samples", "5").is_err(), "the page does not take command-line fields");
        let mut bad = s.propose_set("solver", "dopri5").unwrap();
        bad.nfe = 5;
        assert!(s.effect(&bad).unwrap_err().contains("at least 7"));
        s.commit(next);
        s.clear_error("width");
        assert_eq!(s.hash_errors().shown.len(), 1);
        assert!(s.query().contains("width=8") && !s.query().contains("samples"));
        assert_eq!(s.get("sigma-min").as_deref(), Some("0"));
        let next = s.propose_set("steps", "0").unwrap();
        assert_eq!(s.effect(&next), Ok(Some(Effect::Live)));
        s.commit(next);
        assert_eq!(s.step_limit(), None);
    }

    #[test]
    fn fields_that_do_not_go_together_or_that_the_engine_cannot_do_are_reported_and_reset() {
        let s = Session::new(page_config(Runs::Software), "#class=3&guidance=2&width=8");
        let fields: Vec<_> = s.hash_errors().shown.iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["class", "guidance"], "a class and guidance need conditional on");
        assert_eq!((s.get("class").as_deref(), s.get("guidance").as_deref(), s.config().width), (Some("all"), Some("1"), 8));
        let mut s2 = Session::new(page_config(Runs::Software), "#conditional=on&class=1&sampler=sde&width=8");
        assert!(s2.hash_errors().is_empty(), "{:?}", s2.hash_errors());
        // The page's CPU start (`Page::create`): what the CPU cannot do, then what no longer goes with it.
        s2.reset_until(|c| crate::engine::cpu::cpu_can_run(c).and_then(|_| c.check_generation()));
        let fields: Vec<_> = s2.hash_errors().shown.iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["conditional", "sampler", "class"]);
        assert!(s2.hash_errors().shown[0].message.contains("WebGPU"), "{}", s2.hash_errors().shown[0].message);
        assert_eq!((s2.get("conditional").as_deref(), s2.get("class").as_deref(), s2.get("sampler").as_deref()), (Some("off"), Some("all"), Some("ode")));
        assert_eq!(s2.config().width, 8);
        assert!(s2.config().check_generation().is_ok());
    }

    /// A hostile hash: five errors in full, the rest counted; echoed names and values cut; a
    /// 2 MB hash of empty fields and a hash of 100,000 fields are one quick pass.
    #[test]
    fn hash_errors_are_capped_and_cut() {
        let long = "9".repeat(5000);
        let hash = format!("#width={long}&{}=1&depth=abc&batch=-1&lr=x&nfe=0&seed=zz&particles=q", "z".repeat(3000));
        let s = Session::new(page_config(Runs::Software), &hash);
        let e = s.hash_errors();
        assert_eq!(e.shown.len(), MAX_HASH_ERRORS);
        assert_eq!(e.more, 3, "{e:?}");
        assert!(e.more_message().unwrap().contains("and 3 more"));
        for h in &e.shown {
            assert!(h.message.len() < 600, "{}", h.message.len());
            assert!(!h.message.contains(&"9".repeat(MAX_SHOWN_CHARS + 1)) && !h.message.contains(&"z".repeat(MAX_SHOWN_CHARS + 1)), "{}", h.message);
        }
        assert!(e.shown[0].message.contains(&format!("{}…", "9".repeat(MAX_SHOWN_CHARS))), "{}", e.shown[0].message);
        assert_eq!(cut("ab"), "ab");
        assert_eq!(cut(&"é".repeat(50)).chars().count(), MAX_SHOWN_CHARS + 1);
        // 2 MB of empty names: about 700,000 unknown fields, counted, not described.
        let t = std::time::Instant::now();
        let s = Session::new(page_config(Runs::Software), &"=&".repeat(700_000));
        assert_eq!((s.hash_errors().shown.len(), s.hash_errors().more), (MAX_HASH_ERRORS, 700_000 - MAX_HASH_ERRORS));
        // 100,000 valid fields: the last one wins.
        let many: Vec<String> = (0..100_000).map(|i| format!("seed={i}")).collect();
        let s = Session::new(page_config(Runs::Software), &many.join("&"));
        assert!(s.hash_errors().is_empty());
        assert_eq!(s.config().seed, 99_999);
        // Generous for a loaded debug build; a pass over 2 MB used to build ~10^6 messages.
        assert!(t.elapsed().as_secs_f64() < 10.0, "{:?}", t.elapsed());
    }

    /// The budget admits a configuration field by field: a refused setting goes back to the
    /// previous value with the budget's message; what fits is kept.
    fn next_of(base: &Config, q: &str) -> Config {
        let mut c = base.clone();
        assert!(c.apply_query(q).is_empty());
        c
    }

    #[test]
    fn fit_reverts_what_the_budget_refuses() {
        let cpu = Profile::cpu();
        let base = page_config(Runs::Cpu);
        let mut next = base.clone();
        assert!(next.apply_query("dataset=moons&coupling=ot&batch=65536").is_empty());
        let (c, errors) = fit(next, &base, &cpu, Target::Dataset);
        assert_eq!((c.batch, c.dataset), (base.batch, crate::config::Dataset::Moons));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "batch");
        assert!(errors[0].message.starts_with("batch=65536 needs") && errors[0].message.contains("the largest batch that fits is"), "{}", errors[0].message);
        // Several fields over budget: each is named and put back.
        let mut next = base.clone();
        assert!(next.apply_query("particles=200000&nfe=2000&width=1024&depth=8&batch=65536").is_empty());
        let (c, errors) = fit(next, &base, &cpu, Target::Dataset);
        assert!(check(&c, &cpu, Target::Dataset).is_ok());
        assert!(!errors.is_empty() && errors.iter().all(|e| e.message.starts_with(&format!("{}=", e.field))), "{errors:?}");
        // Every setting that was not taken is named.
        for f in ["particles", "nfe", "width", "depth", "batch"] {
            let field = crate::config::field(f).unwrap();
            assert!(field.get(&c) == field.get(&next_of(&base, "particles=200000&nfe=2000&width=1024&depth=8&batch=65536")) || errors.iter().any(|e| e.field == f), "{f}: {errors:?}");
        }
        // A session started from a hostile link keeps what fits and names what it refused first.
        let mut s = Session::new(base.clone(), "#dataset=moons&width=abc&coupling=ot&batch=65536");
        assert!(!s.admit(&base, &cpu, Target::Dataset));
        let fields: Vec<&str> = s.hash_errors().shown.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["batch", "width"]);
        assert_eq!((s.config().batch, s.config().dataset), (base.batch, crate::config::Dataset::Moons));
        assert!(s.admit(&base, &cpu, Target::Dataset));
        // What fits is not touched.
        let (c, errors) = fit(base.clone(), &base, &cpu, Target::Dataset);
        assert_eq!((c, errors.len()), (base, 0));
    }
}
