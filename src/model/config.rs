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

/// serde_json with the path of the offending field in the message (serde_path_to_error).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
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

    fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(unsupported("block_out_channels", &self.block_out_channels, "at least one level is needed"));
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
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(unsupported("in_channels", self.in_channels, "at least one channel in and out"));
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
        if h == 0 || w == 0 {
            return Err(unsupported("sample_size", (h, w), "must be positive"));
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
}
