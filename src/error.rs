//! One error type for the whole crate. Every variant's `Display` is a sentence a user can act on: the page
//! shows it in an alert and the `ddpm` command prints it.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    #[error("No GPU adapter is available: {0}")]
    NoAdapter(String),

    #[error("The GPU refused to create a device: {0}")]
    Device(String),

    #[error("The GPU device was lost ({0}).")]
    DeviceLost(String),

    #[error("A GPU operation failed: {0}")]
    Gpu(String),

    #[error("The CPU path failed: {0}")]
    Cpu(String),

    #[error("This GPU ({adapter}) has no shader-f16, so the network cannot run in f16 on it; use precision f32, or auto (f16 only where the GPU has it).")]
    NoShaderF16 { adapter: String },

    #[error("Shader `{name}` did not compile on this adapter: {message}")]
    Shader { name: &'static str, message: String },

    #[error("Could not read the model: {0}")]
    Io(String),

    #[error("The model's config.json is not valid: {0}")]
    ConfigJson(String),

    #[error("The model's config.json has {field} = {value}, which ddpm-web does not support ({hint}).")]
    UnsupportedConfig { field: &'static str, value: String, hint: String },

    #[error("The model's scheduler_config.json has {field} = {value}, which cannot be used ({hint}).")]
    SchedulerValue { field: &'static str, value: String, hint: String },

    #[error("The model is too large for this GPU: {what} needs {needed_mib} MiB, more than the {limit_mib} MiB this page can use on this adapter.")]
    ModelTooLarge { what: String, needed_mib: u64, limit_mib: u64 },

    #[error("The model address `{0}` is refused: only http(s) addresses and paths relative to this page are loaded.")]
    ModelUrl(String),

    #[error("The weights file is not a valid safetensors file: {0}")]
    Safetensors(String),

    #[error("The weights file has no tensor `{0}`; it does not match config.json.")]
    MissingTensor(String),

    #[error("Tensor `{name}` has shape {found:?} but config.json implies {expected:?}.")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("Tensor `{name}` is stored as {dtype}; only f32, f16 and bf16 weights are supported.")]
    DType { name: String, dtype: String },

    #[error("The input has shape {found:?}, but the model takes {expected}.")]
    InputShape { expected: String, found: Vec<usize> },

    #[error("A batch of {requested} images needs {needed_mib} MiB in one GPU buffer, more than this adapter allows ({limit_mib} MiB); at most {max} images fit.")]
    BatchTooLarge { requested: usize, max: usize, needed_mib: u64, limit_mib: u64 },

    #[error("The model's scheduler_config.json has {field} = {value}, which the {sampler} sampler does not support ({hint}).")]
    UnsupportedScheduler { sampler: &'static str, field: &'static str, value: String, hint: String },

    #[error("{setting} = {value} is not usable: {hint}.")]
    SamplerSetting { setting: &'static str, value: String, hint: String },

    #[error("Timestep {t} is outside the schedule (0..{steps}).")]
    Timestep { t: usize, steps: usize },

    #[error("Sampling was cancelled.")]
    Cancelled,

    #[error("The noise z has {found} values but the image x_0 has {expected}; they must have the same shape.")]
    NoiseShape { expected: usize, found: usize },

    #[error("Pixel {index} of x_0 is {value}, not one of the 256 levels k / 127.5 − 1 of an 8-bit image: the likelihood's decoder has bins only for 8-bit data (quantise the images first).")]
    OffGrid { index: usize, value: f32 },

    #[error("The image could not be used: {0}")]
    Image(String),
}

pub type Result<T> = std::result::Result<T, Error>;
