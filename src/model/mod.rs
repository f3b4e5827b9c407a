//! A model folder as diffusers writes it: `config.json`, `diffusion_pytorch_model.safetensors`, and optionally
//! `scheduler_config.json`.

pub mod config;
pub mod unet;
pub mod weights;

use crate::diffusion::schedule::{Schedule, SchedulerConfig};
use crate::error::Result;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";
pub const SCHEDULER_FILE: &str = "scheduler_config.json";

/// Checks a model folder's address (the page's `?model=` and Model URL field): an http(s) URL or a path
/// relative to the page. Any other scheme (javascript:, data:, file:, blob:, …) is refused, since the page
/// would fetch whatever it names. Browsers drop tabs and newlines inside a URL and trim spaces and controls
/// around it, so the scheme is read as they would read it.
pub fn check_model_address(address: &str) -> Result<()> {
    let refuse = || Err(crate::error::Error::ModelUrl(address.chars().take(80).collect()));
    let seen: String = address.trim_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    if seen.is_empty() {
        return refuse();
    }
    // A scheme is a letter, then letters, digits, '+', '-' or '.', then ':' (RFC 3986 3.1); a ':' after a
    // '/', '?' or '#' belongs to a path or query.
    let end = seen.find([':', '/', '?', '#']);
    match end.map(|i| (i, seen.as_bytes()[i])) {
        Some((i, b':')) => {
            let scheme = &seen[..i];
            let is_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            // Not a scheme ("1x:y") is a relative path to a browser too.
            if is_scheme && !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return refuse();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A parsed, validated model on the host.
pub struct Model {
    pub config: config::UNetConfig,
    pub scheduler: SchedulerConfig,
    pub weights: weights::Weights,
}

impl Model {
    /// Parses the three files' contents (the scheduler's is optional: the paper's linear schedule then).
    pub fn from_bytes(config_json: &str, weights: &[u8], scheduler_json: Option<&str>) -> Result<Self> {
        let config = config::UNetConfig::from_json(config_json)?;
        let scheduler = match scheduler_json {
            Some(s) => SchedulerConfig::from_json(s)?,
            None => SchedulerConfig {
                num_train_timesteps: config.num_train_timesteps.unwrap_or(1000),
                ..SchedulerConfig::default()
            },
        };
        Schedule::from_config(&scheduler)?;
        let weights = weights::Weights::from_safetensors(weights)?;
        Ok(Self { config, scheduler, weights })
    }

    /// Reads a model folder from disk (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Self> {
        use crate::error::Error;
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| Error::Io(format!("{}: {e}", dir.join(name).display())));
        let config = String::from_utf8(read(CONFIG_FILE)?).map_err(|e| Error::ConfigJson(e.to_string()))?;
        let weights = read(WEIGHTS_FILE)?;
        let scheduler = match std::fs::read_to_string(dir.join(SCHEDULER_FILE)) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Io(format!("{SCHEDULER_FILE}: {e}"))),
        };
        Self::from_bytes(&config, &weights, scheduler.as_deref())
    }

    pub fn schedule(&self) -> Schedule {
        Schedule::from_config(&self.scheduler).expect("validated in from_bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_addresses_are_http_or_relative() {
        // Adds: ?model= cannot make the page fetch a javascript:, data:, file: or blob: URL, however the scheme
        // is disguised (case, tabs inside it, spaces around it), while every ordinary form is accepted.
        for ok in ["models/tiny/", "./m", "../m", "/models/x", "https://example.org/m/", "HTTP://h/m", "//cdn.example/m", "m?x=1:2", "a/b:c", "1x:y"] {
            assert!(check_model_address(ok).is_ok(), "{ok} is accepted");
        }
        for bad in ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:x", "java\tscript:x", "java\nscript:x", "\u{1}data:text/plain,hi",
            "data:application/json,{}", "file:///etc/passwd", "blob:https://x/y", "ftp://h/m", "", "   "] {
            let e = check_model_address(bad).expect_err(bad).to_string();
            assert!(e.contains("only http(s) addresses and paths relative to this page"), "{e}");
        }
    }
}
