//! The page's configuration: what the URL hash (or the widget's attributes) asked for, what was
//! rejected, and what a proposed change does to the live run.
//!
//! A change is proposed (`propose_set`, `propose_hash`), classified by the fields' effects
//! (`config::FIELDS`, `Config::change_effect`: retrain, resample or live), applied to the engine by
//! the page, and committed here only when the engine took it — so a refused change leaves both as
//! they were. The page's link holds the page's fields only (`Config::to_page_query`).

use crate::config::{Config, ConfigError, Effect};

/// The configuration in use and the hash fields that were rejected.
#[derive(Clone, Debug)]
pub struct Session {
    config: Config,
    hash_errors: Vec<ConfigError>,
}

impl Session {
    /// `defaults` with `hash` applied: invalid fields are reported and keep their default.
    pub fn new(defaults: Config, hash: &str) -> Self {
        let mut config = defaults;
        let hash_errors = config.apply_page_query(hash);
        let mut session = Session { config, hash_errors };
        session.fit(Config::check_generation);
        session
    }

    /// Makes the configuration pass `check` (fields valid alone but not together, e.g. a class
    /// without conditional; or what an engine cannot do): the field each error names goes back to
    /// its default and the error is reported with the hash errors.
    pub fn fit(&mut self, check: impl Fn(&Config) -> Result<(), ConfigError>) {
        for _ in 0..crate::config::FIELDS.len() {
            let Err(e) = check(&self.config) else { break };
            let Some(f) = crate::config::field(e.field()) else { break };
            if f.get(&self.config) == f.default_value() || self.config.set(f.name, &f.default_value()).is_err() {
                break;
            }
            self.hash_errors.push(e);
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
    pub fn propose_hash(&self, hash: &str) -> (Config, Vec<ConfigError>) {
        let mut next = self.config.clone();
        let errors = next.apply_page_query(hash);
        (next, errors)
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

    pub fn hash_errors(&self) -> &[ConfigError] {
        &self.hash_errors
    }

    pub fn set_hash_errors(&mut self, errors: Vec<ConfigError>) {
        self.hash_errors = errors;
    }

    /// A field was set successfully: its hash error (if any) is gone.
    pub fn clear_error(&mut self, key: &str) {
        let field = key.trim().to_ascii_lowercase().replace('-', "_");
        self.hash_errors.retain(|e| e.field() != field);
    }

    /// The step limit (`steps`; 0: none).
    pub fn step_limit(&self) -> Option<u32> {
        (self.config.steps > 0).then(|| self.config.steps.min(u32::MAX as u64) as u32)
    }

    /// Sets the step limit (0: none); a live change.
    pub fn set_step_limit(&mut self, limit: u32) {
        self.config.steps = limit as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::pacing::page_config;

    #[test]
    fn a_session_classifies_changes_and_keeps_the_page_link_to_page_fields() {
        let mut s = Session::new(page_config(true), "#width=abc&depth=3&samples=9&steps=500");
        assert_eq!(s.hash_errors().iter().map(|e| e.field()).collect::<Vec<_>>(), ["samples", "width"]);
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
        assert_eq!(s.hash_errors().len(), 1);
        assert!(s.query().contains("width=8") && !s.query().contains("samples"));
        assert_eq!(s.get("sigma-min").as_deref(), Some("0"));
        s.set_step_limit(0);
        assert_eq!(s.step_limit(), None);
    }

    #[test]
    fn fields_that_do_not_go_together_or_that_the_engine_cannot_do_are_reported_and_reset() {
        let mut s = Session::new(page_config(true), "#class=3&guidance=2&width=8");
        let fields: Vec<_> = s.hash_errors().iter().map(|e| e.field().to_string()).collect();
        assert_eq!(fields, ["class", "guidance"], "a class and guidance need conditional on");
        assert_eq!((s.get("class").as_deref(), s.get("guidance").as_deref(), s.config().width), (Some("all"), Some("1"), 8));
        let mut s2 = Session::new(page_config(true), "#conditional=on&class=1&sampler=sde&width=8");
        assert!(s2.hash_errors().is_empty(), "{:?}", s2.hash_errors());
        // The page's CPU start (`Page::create`): what the CPU cannot do, then what no longer goes with it.
        s2.fit(|c| crate::engine::cpu::cpu_can_run(c).and_then(|_| c.check_generation()));
        let fields: Vec<_> = s2.hash_errors().iter().map(|e| e.field().to_string()).collect();
        assert_eq!(fields, ["conditional", "sampler", "class"]);
        assert!(s2.hash_errors()[0].to_string().contains("WebGPU"), "{}", s2.hash_errors()[0]);
        assert_eq!((s2.get("conditional").as_deref(), s2.get("class").as_deref(), s2.get("sampler").as_deref()), (Some("off"), Some("all"), Some("ode")));
        assert_eq!(s2.config().width, 8);
        assert!(s2.config().check_generation().is_ok());
    }
}
