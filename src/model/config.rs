//! `config.json` as diffusers' `UNet2DModel.save_pretrained` writes it, read into a typed struct and checked
//! against what the WGSL U-Net implements. Anything else is refused with the field's name.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The `UNet2DModel` fields that shape the graph. Defaults are diffusers' own, so a config that omits a field
/// means what it means to diffusers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UNetConfig {
    #[serde(default)]
    pub sample_size: Option<SampleSize>,
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default)]
    pub time_embedding_type: TimeEmbedding,
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "default_down")]
    pub down_block_types: Vec<DownBlock>,
    #[serde(default = "default_up")]
    pub up_block_types: Vec<UpBlock>,
    #[serde(default = "default_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    #[serde(default = "one")]
    pub downsample_padding: usize,
    #[serde(default)]
    pub downsample_type: Resample,
    #[serde(default)]
    pub upsample_type: Resample,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default)]
    pub act_fn: Activation,
    #[serde(default = "eight_opt")]
    pub attention_head_dim: Option<usize>,
    #[serde(default = "thirty_two_opt")]
    pub norm_num_groups: Option<usize>,
    #[serde(default)]
    pub attn_norm_num_groups: Option<usize>,
    #[serde(default = "norm_eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub resnet_time_scale_shift: TimeScaleShift,
    #[serde(default = "yes")]
    pub add_attention: bool,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    #[serde(default)]
    pub num_train_timesteps: Option<usize>,
    /// ddpm-web's own note on what the model was trained on (written by `training/export.py`); optional.
    #[serde(default, rename = "_ddpm_web")]
    pub provenance: Option<Provenance>,
}

/// Where a model came from, shown on the page.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Provenance {
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub images_seen: Option<u64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A block of the down path (`down_block_types`). Others (cross-attention, skip, ResNet-downsampling blocks)
/// are refused by serde with the field's path.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum DownBlock {
    DownBlock2D,
    AttnDownBlock2D,
}

/// A block of the up path (`up_block_types`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum UpBlock {
    UpBlock2D,
    AttnUpBlock2D,
}

/// Whether a block has self-attention after each ResNet.
pub trait BlockKind {
    fn has_attention(&self) -> bool;
}

impl BlockKind for DownBlock {
    fn has_attention(&self) -> bool {
        *self == DownBlock::AttnDownBlock2D
    }
}

impl BlockKind for UpBlock {
    fn has_attention(&self) -> bool {
        *self == UpBlock::AttnUpBlock2D
    }
}

/// `act_fn`: diffusers' `get_activation` maps both names to SiLU; nothing else is implemented.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    #[serde(alias = "swish")]
    Silu,
}

/// `time_embedding_type`: sinusoidal only (not "fourier").
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeEmbedding {
    #[default]
    Positional,
}

/// `resnet_time_scale_shift`: the time embedding is added ("default"), not FiLM ("scale_shift").
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeScaleShift {
    #[default]
    Default,
}

/// `downsample_type` / `upsample_type`: strided and nearest-upsampled convolutions (not "resnet" blocks).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Resample {
    #[default]
    Conv,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SampleSize {
    Square(usize),
    Rect(Vec<usize>),
}

fn three() -> usize { 3 }
fn two() -> usize { 2 }
fn one() -> usize { 1 }
fn one_f() -> f64 { 1.0 }
fn yes() -> bool { true }
fn eight_opt() -> Option<usize> { Some(8) }
fn thirty_two_opt() -> Option<usize> { Some(32) }
fn norm_eps() -> f64 { 1e-5 }
fn default_channels() -> Vec<usize> { vec![224, 448, 672, 896] }
fn default_down() -> Vec<DownBlock> {
    use DownBlock::*;
    vec![DownBlock2D, AttnDownBlock2D, AttnDownBlock2D, AttnDownBlock2D]
}
fn default_up() -> Vec<UpBlock> {
    use UpBlock::*;
    vec![AttnUpBlock2D, AttnUpBlock2D, AttnUpBlock2D, UpBlock2D]
}

/// Bounds a config must stay within before anything is sized from it: far above any UNet2DModel that runs in
/// a browser, far below what would overflow a size computation or exhaust memory.
pub const MAX_LEVELS: usize = 8;
pub const MAX_WIDTH: usize = 8192;
pub const MAX_IMAGE_CHANNELS: usize = 64;
pub const MAX_SIDE: usize = 4096;
pub const MAX_LAYERS_PER_BLOCK: usize = 16;
/// Parameters a config may imply (1 GiB as f32): the original CIFAR-10 DDPM has 35.7 M.
pub const MAX_PARAMETERS: u64 = 1 << 28;

/// What a config implies before any weight is read: enough to refuse a model that cannot fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSizes {
    /// Parameters of the network the config describes (exact for the blocks ddpm-web implements).
    pub parameters: u64,
    /// Elements of its largest weight tensor.
    pub largest_weight: u64,
    /// Elements of the largest activation of one image's pass (a skip concatenation or attention scores).
    pub largest_activation: u64,
}

/// serde_json with the path of the offending field in the message (serde_path_to_error).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    // A server that answers a missing file with its own HTML page (a 200 "not found", a login page) is the
    // usual cause of a JSON syntax error at line 1: say so rather than quote a column.
    if text.trim_start().starts_with('<') {
        return Err("this is an HTML page, not JSON (is the model's address right?)".into());
    }
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { e.into_inner().to_string() } else { format!("{path}: {}", e.into_inner()) }
    })
}

fn unsupported(field: &'static str, value: impl std::fmt::Debug, hint: &str) -> Error {
    Error::UnsupportedConfig { field, value: format!("{value:?}"), hint: hint.into() }
}

impl UNetConfig {
    /// Parses and validates `config.json`. A value serde refuses is reported with its field's path
    /// (`up_block_types[1]: unknown variant …`), not only a line and column.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: UNetConfig = parse_json(text).map_err(Error::ConfigJson)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Height and width of the images the model was trained on.
    pub fn image_size(&self) -> (usize, usize) {
        match &self.sample_size {
            Some(SampleSize::Square(s)) => (*s, *s),
            Some(SampleSize::Rect(v)) if v.len() == 2 => (v[0], v[1]),
            _ => (32, 32),
        }
    }

    /// Groups of every GroupNorm in the ResNet blocks and the output norm.
    pub fn groups(&self) -> usize {
        self.norm_num_groups.unwrap_or(32)
    }

    /// Width of the sinusoidal embedding fed to the time MLP (diffusers: `block_out_channels[0]`).
    pub fn time_proj_dim(&self) -> usize {
        self.block_out_channels[0]
    }

    /// Width of the time embedding every ResNet block receives.
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim.unwrap_or(self.block_out_channels[0] * 4)
    }

    /// Channels per attention head for a block of `channels` channels (diffusers' rule: the config's
    /// `attention_head_dim`, or one head over all channels when it is null).
    pub fn head_dim(&self, channels: usize) -> usize {
        self.attention_head_dim.unwrap_or(channels)
    }

    /// Parameter and activation counts implied by the config, in u64 (validated bounds keep them far from
    /// overflow). Follows `Unet::forward` and diffusers' `UNet2DModel.__init__` block by block.
    pub fn sizes(&self) -> ConfigSizes {
        let ch: Vec<u64> = self.block_out_channels.iter().map(|&c| c as u64).collect();
        let n = ch.len();
        let (d, layers) = (self.time_embed_dim() as u64, self.layers_per_block as u64);
        let (cin, cout) = (self.in_channels as u64, self.out_channels as u64);
        let mut largest_weight = 0u64;
        let mut params = 0u64;
        let mut weight = |elems: u64, bias: u64| {
            largest_weight = largest_weight.max(elems);
            params += elems + bias;
        };
        let conv3 = |w: &mut dyn FnMut(u64, u64), i: u64, o: u64| w(i * o * 9, o);
        let resnet = |w: &mut dyn FnMut(u64, u64), i: u64, o: u64| {
            w(2 * i, 0);
            w(i * o * 9, o);
            w(d * o, o);
            w(2 * o, 0);
            w(o * o * 9, o);
            if i != o {
                w(i * o, o);
            }
        };
        let attention = |w: &mut dyn FnMut(u64, u64), c: u64| {
            w(2 * c, 0);
            for _ in 0..4 {
                w(c * c, c);
            }
        };
        conv3(&mut weight, cin, ch[0]);
        weight(ch[0] * d, d);
        weight(d * d, d);
        let mut prev = ch[0];
        for (i, kind) in self.down_block_types.iter().enumerate() {
            for _ in 0..layers {
                resnet(&mut weight, prev, ch[i]);
                prev = ch[i];
                if kind.has_attention() {
                    attention(&mut weight, ch[i]);
                }
            }
            if i + 1 < n {
                conv3(&mut weight, ch[i], ch[i]);
            }
        }
        resnet(&mut weight, ch[n - 1], ch[n - 1]);
        attention(&mut weight, ch[n - 1]);
        resnet(&mut weight, ch[n - 1], ch[n - 1]);
        // Up block i: layers + 1 ResNets, the j-th taking the previous output and a skip (diffusers' channels).
        let rev: Vec<u64> = ch.iter().rev().copied().collect();
        let mut prev_out = rev[0];
        for (i, kind) in self.up_block_types.iter().enumerate() {
            let out = rev[i];
            let input = rev[(i + 1).min(n - 1)];
            for j in 0..=layers {
                let skip = if j == layers { input } else { out };
                let res_in = if j == 0 { prev_out } else { out };
                resnet(&mut weight, res_in + skip, out);
                if kind.has_attention() {
                    attention(&mut weight, out);
                }
            }
            if i + 1 < n {
                conv3(&mut weight, out, out);
            }
            prev_out = out;
        }
        weight(2 * ch[0], 0);
        conv3(&mut weight, ch[0], cout);

        let (h, w) = self.image_size();
        let mut largest_activation = 0u64;
        for i in 0..n {
            let pixels = (h >> i) as u64 * (w >> i) as u64;
            let wider = ch[i].max(ch[(i + 1).min(n - 1)]);
            largest_activation = largest_activation.max(2 * wider * pixels);
            let attn = self.down_block_types[i].has_attention() || self.up_block_types[n - 1 - i].has_attention() || i == n - 1;
            if attn {
                // The unfused attention keeps every head's L x L scores.
                let heads = ch[i] / self.head_dim(self.block_out_channels[i]).max(1) as u64;
                largest_activation = largest_activation.max(heads * pixels * pixels);
            }
        }
        ConfigSizes { parameters: params, largest_weight, largest_activation }
    }

    fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(unsupported("block_out_channels", &self.block_out_channels, "at least one level is needed"));
        }
        if n > MAX_LEVELS {
            return Err(unsupported("block_out_channels", n, &format!("at most {MAX_LEVELS} levels")));
        }
        if let Some(&c) = self.block_out_channels.iter().find(|&&c| c == 0 || c > MAX_WIDTH) {
            return Err(unsupported("block_out_channels", &self.block_out_channels, &format!("every width must be 1 to {MAX_WIDTH}; {c} is not")));
        }
        if self.layers_per_block > MAX_LAYERS_PER_BLOCK {
            return Err(unsupported("layers_per_block", self.layers_per_block, &format!("at most {MAX_LAYERS_PER_BLOCK}")));
        }
        for (field, c) in [("in_channels", self.in_channels), ("out_channels", self.out_channels)] {
            if c == 0 || c > MAX_IMAGE_CHANNELS {
                return Err(unsupported(field, c, &format!("1 to {MAX_IMAGE_CHANNELS} channels")));
            }
        }
        if let Some(d) = self.time_embedding_dim {
            if d == 0 || d > 4 * MAX_WIDTH {
                return Err(unsupported("time_embedding_dim", d, &format!("1 to {} or null", 4 * MAX_WIDTH)));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0 && self.norm_eps < 1.0) {
            return Err(unsupported("norm_eps", self.norm_eps, "a small positive number such as 1e-5"));
        }
        if !self.freq_shift.is_finite() || self.freq_shift.abs() > 1e6 {
            return Err(unsupported("freq_shift", self.freq_shift, "a finite number such as 0 or 1"));
        }
        if self.down_block_types.len() != n {
            return Err(unsupported("down_block_types", &self.down_block_types, "one per block_out_channels entry"));
        }
        if self.up_block_types.len() != n {
            return Err(unsupported("up_block_types", &self.up_block_types, "one per block_out_channels entry"));
        }
        if self.downsample_padding > 1 {
            return Err(unsupported("downsample_padding", self.downsample_padding, "0 or 1"));
        }
        if self.center_input_sample {
            return Err(unsupported("center_input_sample", true, "only false"));
        }
        if self.class_embed_type.is_some() || self.num_class_embeds.is_some() {
            return Err(unsupported("class_embed_type", &self.class_embed_type, "class-conditional models are not supported"));
        }
        if !self.add_attention {
            return Err(unsupported("add_attention", false, "the mid block must have attention"));
        }
        if self.layers_per_block == 0 {
            return Err(unsupported("layers_per_block", 0, "at least 1"));
        }
        if (self.mid_block_scale_factor - 1.0).abs() > 1e-12 {
            return Err(unsupported("mid_block_scale_factor", self.mid_block_scale_factor, "only 1"));
        }
        if self.time_proj_dim() % 2 == 1 {
            return Err(unsupported("block_out_channels", &self.block_out_channels, "the first width must be even"));
        }
        let g = self.groups();
        for &c in &self.block_out_channels {
            if g == 0 || c % g != 0 {
                return Err(unsupported("norm_num_groups", self.norm_num_groups, &format!("must divide every width; {c} is not a multiple")));
            }
        }
        if let Some(ag) = self.attn_norm_num_groups {
            if ag != g {
                return Err(unsupported("attn_norm_num_groups", ag, "must equal norm_num_groups or be null"));
            }
        }
        // Widths that carry attention: attention down blocks, up blocks (in reverse order), the mid block.
        let down = self.down_block_types.iter().enumerate().filter(|(_, b)| b.has_attention()).map(|(i, _)| self.block_out_channels[i]);
        let up = self.up_block_types.iter().enumerate().filter(|(_, b)| b.has_attention()).map(|(i, _)| self.block_out_channels[n - 1 - i]);
        for c in down.chain(up).chain([self.block_out_channels[n - 1]]) {
            let d = self.head_dim(c);
            if d == 0 || c % d != 0 {
                return Err(unsupported("attention_head_dim", self.attention_head_dim, &format!("must divide width {c}")));
            }
        }
        match &self.sample_size {
            None | Some(SampleSize::Square(_)) => {}
            Some(SampleSize::Rect(v)) if v.len() == 2 => {}
            Some(other) => return Err(unsupported("sample_size", other, "a number or [height, width]")),
        }
        let (h, w) = self.image_size();
        if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
            return Err(unsupported("sample_size", (h, w), &format!("each side 1 to {MAX_SIDE}")));
        }
        // Each level halves the image and the up path doubles it back onto its skip connection.
        let k = 1 << (n - 1);
        if h % k != 0 || w % k != 0 {
            return Err(unsupported("sample_size", (h, w), &format!("must be divisible by {k} to go down {} levels and back", n - 1)));
        }
        let sizes = self.sizes();
        if sizes.parameters > MAX_PARAMETERS {
            return Err(unsupported(
                "block_out_channels",
                &self.block_out_channels,
                &format!("these widths imply {} parameters, more than the {MAX_PARAMETERS} ddpm-web loads", sizes.parameters),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIFAR: &str = r#"{
      "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": null,
      "block_out_channels": [128, 256, 256, 256], "center_input_sample": false,
      "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
      "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3,
      "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
      "out_channels": 3, "sample_size": 32, "time_embedding_type": "positional",
      "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    }"#;

    #[test]
    fn reads_the_original_ddpm_cifar10_config() {
        let c = UNetConfig::from_json(CIFAR).unwrap();
        assert_eq!(c.image_size(), (32, 32));
        assert_eq!(c.time_embed_dim(), 512);
        assert_eq!(c.head_dim(256), 256);
        assert_eq!(c.downsample_padding, 0);
    }

    #[test]
    fn refuses_unknown_blocks_naming_the_field() {
        let bad = CIFAR.replace("\"UpBlock2D\", \"UpBlock2D\"", "\"CrossAttnUpBlock2D\", \"UpBlock2D\"");
        let e = UNetConfig::from_json(&bad).unwrap_err();
        assert!(e.to_string().contains("up_block_types"), "{e}");
        assert!(e.to_string().contains("CrossAttnUpBlock2D") && e.to_string().contains("UpBlock2D"), "names the value and what is allowed: {e}");
        let bad = CIFAR.replace("\"silu\"", "\"gelu\"");
        let e = UNetConfig::from_json(&bad).unwrap_err().to_string();
        assert!(e.contains("act_fn") && e.contains("gelu"), "{e}");
        let swish = UNetConfig::from_json(&CIFAR.replace("\"silu\"", "\"swish\"")).unwrap();
        assert_eq!(swish.act_fn, Activation::Silu, "diffusers treats swish as SiLU");
        let e = UNetConfig::from_json(&CIFAR.replace("\"positional\"", "\"fourier\"")).unwrap_err().to_string();
        assert!(e.contains("time_embedding_type"), "{e}");
        let e = UNetConfig::from_json(&CIFAR.replace("\"layers_per_block\": 2", "\"layers_per_block\": \"two\"")).unwrap_err().to_string();
        assert!(e.contains("layers_per_block"), "a wrong type names its field too: {e}");
    }

    #[test]
    fn refuses_head_sizes_that_do_not_divide_an_attention_width() {
        // 48 divides 96 (the mid block) but not 64, where the up path has attention.
        let cfg = r#"{"block_out_channels": [64, 96], "down_block_types": ["DownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "AttnUpBlock2D"], "attention_head_dim": 48, "norm_num_groups": 16}"#;
        let e = UNetConfig::from_json(cfg).unwrap_err();
        assert!(e.to_string().contains("attention_head_dim") && e.to_string().contains("64"), "{e}");
    }

    #[test]
    fn refuses_malformed_json() {
        assert!(matches!(UNetConfig::from_json("{ not json"), Err(Error::ConfigJson(_))));
    }

    /// The tiny test model with one field replaced (a JSON value, or `None` to drop the field).
    fn tiny_with(field: &str, value: Option<&str>) -> String {
        let mut v: serde_json::Value = serde_json::from_str(include_str!("../../tests/models/tiny/config.json")).unwrap();
        match value {
            Some(x) => v[field] = serde_json::from_str(x).unwrap(),
            None => { v.as_object_mut().unwrap().remove(field); }
        }
        v.to_string()
    }

    fn refused(field: &str, value: &str) -> String {
        let e = UNetConfig::from_json(&tiny_with(field, Some(value))).expect_err(&format!("{field} = {value} must be refused"));
        assert!(e.to_string().contains(field), "names the field: {e}");
        e.to_string()
    }

    #[test]
    fn the_implied_parameter_count_is_the_tiny_models_own() {
        // Adds: `sizes` follows diffusers' block layout exactly (44,969 values in the tiny safetensors), so
        // the size checks made before downloading weights measure the real network.
        let c = UNetConfig::from_json(include_str!("../../tests/models/tiny/config.json")).unwrap();
        assert_eq!(c.sizes().parameters, 44_969);
        let cifar = UNetConfig::from_json(CIFAR).unwrap();
        assert_eq!(cifar.sizes().parameters, 35_746_307, "the sum over tests/cifar_layout/tensors.json (diffusers' own tensors)");
        assert_eq!(cifar.sizes().largest_weight, 256 * 512 * 9, "an up block's first conv: 512 channels in (concat), 256 out");
    }

    #[test]
    fn refuses_zero_and_absurd_sizes_naming_the_field() {
        // Adds: every count the graph is sized from is bounded before use (a width of 0 passed the group
        // check before, since 0 is a multiple of every group count).
        refused("block_out_channels", "[0, 16]");
        refused("block_out_channels", "[8, 100000]");
        refused("block_out_channels", "[8, 8, 8, 8, 8, 8, 8, 8, 8]");
        refused("in_channels", "0");
        let e = refused("out_channels", "0");
        assert!(!e.contains("in_channels"), "names out_channels, not in_channels: {e}");
        refused("layers_per_block", "1000");
        refused("time_embedding_dim", "0");
        refused("norm_eps", "0");
        refused("norm_eps", "-1e-5");
        refused("sample_size", "0");
        refused("sample_size", "100000");
        refused("sample_size", "[28]");
        refused("norm_num_groups", "0");
        refused("attention_head_dim", "0");
        let e = refused("sample_size", "29");
        assert!(e.contains("divisible by 2"), "29 cannot go down a level and back: {e}");
    }

    #[test]
    fn refuses_a_config_implying_more_parameters_than_the_cap() {
        // Adds: a config alone (before any weight is fetched) is refused when it implies over MAX_PARAMETERS.
        let e = UNetConfig::from_json(&tiny_with("block_out_channels", Some("[8192, 8192]")).replace("\"norm_num_groups\":4", "\"norm_num_groups\":32")).unwrap_err().to_string();
        assert!(e.contains("parameters") && e.contains("block_out_channels"), "{e}");
    }

    #[test]
    fn negative_and_fractional_counts_name_their_field() {
        // Adds: serde's own refusals (wrong sign, wrong type) keep the field path.
        for (field, value) in [("layers_per_block", "-1"), ("in_channels", "1.5"), ("block_out_channels", "[8, -16]"), ("sample_size", "\"big\"")] {
            let e = UNetConfig::from_json(&tiny_with(field, Some(value))).unwrap_err().to_string();
            assert!(e.contains(field), "{field} = {value}: {e}");
        }
    }

    #[test]
    fn an_html_page_or_empty_file_is_named_as_such() {
        // Adds: a server's HTML answer (a 200 "not found" page) is named, not reported as a bad column.
        let e = UNetConfig::from_json("<!doctype html><html><body>Not found</body></html>").unwrap_err().to_string();
        assert!(e.contains("HTML page"), "{e}");
        let e = UNetConfig::from_json("  ").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
