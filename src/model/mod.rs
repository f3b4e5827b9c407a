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
