//! The registry of every compute kernel: which WGSL source, which entry point, which pipeline-overridable
//! constants, and which bindings, by name and number. It depends on nothing else in the crate, so the context
//! (which compiles the pipelines), the graph and plan (which bind tensors) and the benchmarks all read the
//! same table. Adding a kernel is one WGSL file or entry point, one variant here, and its module in
//! `kernels/`.
//!
//! Every bind-group layout is explicit: the bindings listed here, nothing derived from the shader. A kernel
//! variant binds only what its entry point reads, so an optional input (a fused residual, say) is a separate
//! variant, never a stand-in buffer.

/// How a binding is accessed; a read-only storage binding can never alias a written one in one dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<uniform>`: the kernel's params struct, always binding 0.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`: an output (possibly read too, as the in-place update's `x`).
    ReadWrite,
    /// `var<uniform>` of [`WINDOW_BYTES`]: a slice of a tensor read as uniforms. Of a constant (a
    /// convolution's weights for a chunk of its output channels), the plan copies it into a uniform buffer of
    /// its own once, when compiled; of an activation (attention's K or V for one image and head), the plan
    /// binds it in place, from a start aligned to [`WINDOW_ALIGN`].
    Window,
}

/// Bytes of a [`Access::Window`] binding: WebGPU's default (and lavapipe's and SwiftShader's) largest uniform
/// binding.
pub const WINDOW_BYTES: u64 = 65_536;

/// Bytes an in-place window's start is aligned to: WebGPU's default `minUniformBufferOffsetAlignment`, which
/// no adapter may exceed (a limit of the "alignment" class only gets smaller).
pub const WINDOW_ALIGN: u64 = 256;

/// The element type of the network's weights and activations. The sampler's state (x_t, ε, z, frames) is
/// always f32: only the U-Net runs in f16, between a cast in and a cast out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Storage in f16 (half the bytes moved), sums in f32 registers: needs the adapter's `shader-f16`.
    F16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which precision to run the network in: a fixed one, or f16 wherever the adapter has `shader-f16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrecisionChoice {
    Auto,
    Fixed(Precision),
}

impl PrecisionChoice {
    /// The precision on an adapter that has (or lacks) `shader-f16`; an explicit f16 without it is the
    /// caller's error to report, so it is returned as asked.
    pub fn resolve(self, has_f16: bool) -> Precision {
        match self {
            PrecisionChoice::Auto if has_f16 => Precision::F16,
            PrecisionChoice::Auto => Precision::F32,
            PrecisionChoice::Fixed(p) => p,
        }
    }
}

impl std::str::FromStr for PrecisionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PrecisionChoice::Auto),
            "f32" => Ok(PrecisionChoice::Fixed(Precision::F32)),
            "f16" => Ok(PrecisionChoice::Fixed(Precision::F16)),
            _ => Err(format!("precision must be `auto`, `f32` or `f16`, not `{s}`")),
        }
    }
}

/// The element type a storage binding holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// Always f32 (the sampler's buffers, timesteps, the cast's f32 side).
    F32,
    /// The network's precision: `alias elem` in the WGSL, f32 or f16 per pipeline.
    Net,
}

/// One `@binding(number)` of a kernel's bind group 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub number: u32,
    pub name: &'static str,
    pub access: Access,
    pub elem: Elem,
}

const fn uniform() -> Binding {
    Binding { number: 0, name: "params", access: Access::Uniform, elem: Elem::F32 }
}
const fn read(number: u32, name: &'static str) -> Binding {
    Binding { number, name, access: Access::Read, elem: Elem::F32 }
}
const fn write(number: u32, name: &'static str) -> Binding {
    Binding { number, name, access: Access::ReadWrite, elem: Elem::F32 }
}
/// Always f32: the windowed kernels have no f16 form.
const fn window(number: u32, name: &'static str) -> Binding {
    Binding { number, name, access: Access::Window, elem: Elem::F32 }
}
/// A binding in the network's precision.
const fn net(b: Binding) -> Binding {
    Binding { elem: Elem::Net, ..b }
}

/// What a convolution adds after the bias, fused so that the sum costs no extra pass over the activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// out = conv + bias.
    Bias,
    /// + a value per (image, output channel): the ResNet block's projected time embedding.
    ChannelAdd,
    /// + a tensor of the output's shape: ResNet shortcuts and the attention residual.
    Residual,
}

impl Epilogue {
    pub const ALL: [Epilogue; 3] = [Epilogue::Bias, Epilogue::ChannelAdd, Epilogue::Residual];
}

/// Convolution algorithms. Each takes any epilogue; `Conv3x3` and `Conv1x1` only their shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    /// Any kernel size, stride and padding; one pixel x 4 output channels per invocation.
    General,
    /// 3x3, stride 1, one pixel of padding; 4 pixels x 8 channels per invocation (register-blocked).
    Blocked3x3,
    /// 1x1, stride 1; 4 pixels x 8 channels per invocation.
    Blocked1x1,
    /// Any geometry: implicit GEMM, 32x32 output tiles through workgroup memory, K in slices of 32.
    Tiled,
    /// `Blocked3x3` with its weights read through uniform-buffer windows (`conv2d_window.wgsl`), one dispatch
    /// per chunk of output channels whose weights fit [`WINDOW_BYTES`]; f32 only.
    Window3x3,
    /// `Blocked1x1` likewise.
    Window1x1,
    /// `General` likewise.
    WindowGeneral,
    /// 3x3 with stride 2, any padding (the downsamplers): 4 pixels of a row x 8 channels per invocation.
    Blocked3x3s2,
    /// `Blocked3x3s2` with windowed weights.
    Window3x3s2,
    /// `Window1x1` reading an invocation's 4 pixels as one vec4 of x: for planes of a multiple of 4 pixels,
    /// which [`conv2d`](crate::gpu::kernels::conv2d::conv2d) picks between the two by the plane.
    Window1x1x4,
    /// `Window3x3` reading a run's 4 inputs of a row as one vec4 of x and its two neighbours as lanes of
    /// the vec4s either side: for rows of a multiple of 4 pixels, picked by the row's width likewise.
    Window3x3x4,
    /// `Window3x3` reading x as vec2s, for rows of an even width that is not a multiple of 4 (14x14).
    Window3x3x2,
}

impl ConvAlgo {
    pub const ALL: [ConvAlgo; 12] = [
        ConvAlgo::General,
        ConvAlgo::Blocked3x3,
        ConvAlgo::Blocked1x1,
        ConvAlgo::Tiled,
        ConvAlgo::Window3x3,
        ConvAlgo::Window1x1,
        ConvAlgo::WindowGeneral,
        ConvAlgo::Blocked3x3s2,
        ConvAlgo::Window3x3s2,
        ConvAlgo::Window1x1x4,
        ConvAlgo::Window3x3x4,
        ConvAlgo::Window3x3x2,
    ];

    /// Whether it reads its weights through windows (and so runs in chunks, in f32 only).
    pub fn is_windowed(self) -> bool {
        matches!(self, ConvAlgo::Window3x3 | ConvAlgo::Window1x1 | ConvAlgo::WindowGeneral | ConvAlgo::Window3x3s2 | ConvAlgo::Window1x1x4 | ConvAlgo::Window3x3x4 | ConvAlgo::Window3x3x2)
    }
}

/// The kernels a whole pass uses (convolutions and attention): the candidates the engine times per adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// Register-blocked 3x3 (stride 1 and 2) and 1x1 kernels (general for other shapes): no workgroup
    /// memory, tuned for CPU adapters (lavapipe, SwiftShader).
    Blocked,
    /// The implicit GEMM tiled through workgroup memory for every convolution (attention in three passes):
    /// for real GPUs.
    Tiled,
    /// As `Tiled`, with attention in one fused kernel where heads are at most 64 wide.
    Fused,
    /// As `Blocked`, with the convolutions reading their weights from uniform buffers: for lavapipe, which
    /// reads a storage buffer lane by lane (conv2d_window.wgsl). In f16 it is `Blocked`.
    Windowed,
}

impl KernelFamily {
    pub const ALL: [KernelFamily; 4] = [KernelFamily::Blocked, KernelFamily::Tiled, KernelFamily::Fused, KernelFamily::Windowed];

    pub fn name(self) -> &'static str {
        match self {
            KernelFamily::Blocked => "blocked",
            KernelFamily::Tiled => "tiled",
            KernelFamily::Fused => "fused",
            KernelFamily::Windowed => "windowed",
        }
    }

    /// Whether it differs from the others in `precision` (the windowed kernels have no f16 form, so there
    /// it is `Blocked` and not worth timing twice).
    pub fn is_distinct_in(self, precision: Precision) -> bool {
        self != KernelFamily::Windowed || precision == Precision::F32
    }
}

/// Which convolution kernels to use: a fixed family, or the faster one measured on this adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelChoice {
    Auto,
    Fixed(KernelFamily),
}

impl std::str::FromStr for KernelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(KernelChoice::Auto),
            _ => KernelFamily::ALL
                .into_iter()
                .find(|k| k.name() == s)
                .map(KernelChoice::Fixed)
                .ok_or_else(|| {
                    let names: Vec<String> = KernelFamily::ALL.iter().map(|k| format!("`{}`", k.name())).collect();
                    format!("kernels must be `auto` or one of {}, not `{s}`", names.join(", "))
                }),
        }
    }
}

/// How the update kernel gets its noise z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Noise {
    /// Philox4x32-10 on the GPU, keyed by the seed and step.
    Philox,
    /// Read from a buffer (golden tests feed diffusers' noise; `ddpm step --z`).
    Given,
}

/// Every compute pipeline ddpm-web compiles. Variants carry what selects an entry point or an override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Conv(ConvAlgo, Epilogue),
    /// A 1x1 convolution (+ bias) of the channel concatenation of two tensors, read in place: a ResNet's
    /// shortcut after a skip connection. `Blocked1x1` or `Tiled`.
    ConvPair(ConvAlgo),
    /// GroupNorm, followed by SiLU when `silu` (WGSL override `SILU`).
    GroupNorm { silu: bool },
    /// GroupNorm of the channel concatenation of two tensors, read in place (a ResNet's norm1 after a skip).
    GroupNormPair { silu: bool },
    /// `GroupNorm` reading and writing four values at a time, for planes of a multiple of 4 pixels, which
    /// [`group_norm`](crate::gpu::kernels::group_norm::group_norm) picks by the plane.
    GroupNormX4 { silu: bool },
    /// `GroupNormPair` likewise.
    GroupNormPairX4 { silu: bool },
    /// y = W·silu?(x) + b, then silu? (overrides `SILU_IN`, `SILU_OUT`).
    Linear { silu_in: bool, silu_out: bool },
    TimeEmbed,
    AttnScores,
    AttnSoftmax,
    AttnApply,
    /// All of attention in one kernel (online softmax, K/V tiles in workgroup memory), heads up to 64 wide.
    AttnFused,
    /// `AttnScores` for one (image, head), K read through a window bound in place; f32, L a multiple of 4.
    AttnScoresWindow,
    /// `AttnApply` likewise, V through the window.
    AttnApplyWindow,
    Upsample,
    Concat,
    /// The network's input: f32 x_t into the network's precision (`cast.wgsl`).
    CastIn,
    /// The network's output: ε from the network's precision back to f32.
    CastOut,
    /// A sampler's update as one affine map of (x̂_0, x_t, ε, z) (`update.wgsl`).
    Affine(Noise),
    /// Heun's first stage: the affine update that also keeps x_t and the derivative.
    HeunPredict,
    /// Heun's second stage: the affine update plus the kept state.
    HeunCorrect,
    /// x ← a·x + b·z without the network: x_T, or an image noised to level t.
    AddNoise(Noise),
    /// A Langevin corrector step, the step size from per-image norms (`langevin.wgsl`).
    Langevin(Noise),
    /// Inpainting: the known region of x replaced by the source noised to x's level (`update.wgsl`).
    ReplaceKnown(Noise),
    /// Super-resolution (ILVR): each 2x2 block's mean set to the noised low-resolution source.
    ProjectLow,
    PackFrame,
    /// x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) z: the forward process q(x_t | x_0) in one step.
    Forward(Noise),
}

/// A WGSL module (one family of kernels).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub file: &'static str,
    pub code: &'static str,
}

impl Source {
    /// The module's text for a network in `precision`. Network shaders declare `alias elem = f32;` for their
    /// storage and convert to f32 at every load; the f16 text enables the extension and retypes the alias,
    /// so one file serves both (WGSL has no generics).
    pub fn code_for(self, precision: Precision) -> std::borrow::Cow<'static, str> {
        match precision {
            Precision::F32 => self.code.into(),
            Precision::F16 => {
                assert!(self.code.contains(ELEM_F32), "{} has no `{ELEM_F32}`: it is not a network shader", self.file);
                format!("enable f16;\n{}", self.code.replacen(ELEM_F32, "alias elem = f16;", 1)).into()
            }
        }
    }

    /// Whether the module has an f16 form (it declares its storage through `elem`).
    pub fn is_network(self) -> bool {
        self.code.contains(ELEM_F32)
    }
}

const ELEM_F32: &str = "alias elem = f32;";

macro_rules! shader {
    ($file:literal) => {
        Source { file: $file, code: include_str!(concat!("../../shaders/", $file)) }
    };
    // The Philox generator is shared by the kernels that draw noise; WGSL has no includes.
    ($file:literal, with_philox) => {
        Source { file: $file, code: concat!(include_str!("../../shaders/philox.wgsl"), include_str!(concat!("../../shaders/", $file))) }
    };
    // conv2d.wgsl reads its weights through `weight(k)`, declared by the file appended (storage or window).
    ($file:literal, then $weights:literal) => {
        Source { file: concat!($file, " + ", $weights), code: concat!(include_str!(concat!("../../shaders/", $file)), include_str!(concat!("../../shaders/", $weights))) }
    };
}

const CONV: Source = shader!("conv2d.wgsl", then "conv2d_storage.wgsl");
const CONV_WINDOW: Source = shader!("conv2d.wgsl", then "conv2d_window.wgsl");
const GROUP_NORM: Source = shader!("group_norm.wgsl");
const LINEAR: Source = shader!("linear.wgsl");
const EMBED: Source = shader!("embed.wgsl");
const ATTENTION: Source = shader!("attention.wgsl");
const RESAMPLE: Source = shader!("resample.wgsl");
const UPDATE: Source = shader!("update.wgsl", with_philox);
const LANGEVIN: Source = shader!("langevin.wgsl", with_philox);
const FRAMES: Source = shader!("frames.wgsl");
const FORWARD: Source = shader!("forward.wgsl", with_philox);
const CAST: Source = shader!("cast.wgsl");

/// Every WGSL module, each compiled once per device (the network's also in f16, where asked for).
pub const SOURCES: [Source; 12] = [CONV, CONV_WINDOW, GROUP_NORM, LINEAR, EMBED, ATTENTION, RESAMPLE, CAST, UPDATE, LANGEVIN, FRAMES, FORWARD];

const CONV_BIAS: &[Binding] = &[uniform(), net(read(1, "x")), net(read(2, "w")), net(read(3, "bias")), net(write(6, "out"))];
const CONV_ADD: &[Binding] = &[uniform(), net(read(1, "x")), net(read(2, "w")), net(read(3, "bias")), net(read(4, "chan_add")), net(write(6, "out"))];
const CONV_RES: &[Binding] = &[uniform(), net(read(1, "x")), net(read(2, "w")), net(read(3, "bias")), net(read(5, "residual")), net(write(6, "out"))];
const WINDOW_BIAS: &[Binding] = &[uniform(), net(read(1, "x")), window(2, "w"), net(read(3, "bias")), net(write(6, "out"))];
const WINDOW_ADD: &[Binding] = &[uniform(), net(read(1, "x")), window(2, "w"), net(read(3, "bias")), net(read(4, "chan_add")), net(write(6, "out"))];
const WINDOW_RES: &[Binding] = &[uniform(), net(read(1, "x")), window(2, "w"), net(read(3, "bias")), net(read(5, "residual")), net(write(6, "out"))];
// Window1x1x4 and Window3x3x4: x as vec4s, at binding 8.
const WINDOW4_BIAS: &[Binding] = &[uniform(), net(read(8, "x")), window(2, "w"), net(read(3, "bias")), net(write(6, "out"))];
const WINDOW4_ADD: &[Binding] = &[uniform(), net(read(8, "x")), window(2, "w"), net(read(3, "bias")), net(read(4, "chan_add")), net(write(6, "out"))];
const WINDOW4_RES: &[Binding] = &[uniform(), net(read(8, "x")), window(2, "w"), net(read(3, "bias")), net(read(5, "residual")), net(write(6, "out"))];
// Window3x3x2: x as vec2s, at binding 10.
const WINDOW2_BIAS: &[Binding] = &[uniform(), net(read(10, "x")), window(2, "w"), net(read(3, "bias")), net(write(6, "out"))];
const WINDOW2_ADD: &[Binding] = &[uniform(), net(read(10, "x")), window(2, "w"), net(read(3, "bias")), net(read(4, "chan_add")), net(write(6, "out"))];
const WINDOW2_RES: &[Binding] = &[uniform(), net(read(10, "x")), window(2, "w"), net(read(3, "bias")), net(read(5, "residual")), net(write(6, "out"))];

impl Kernel {
    /// Every kernel, in the order pipelines are compiled.
    pub const ALL: [Kernel; 77] = [
        Kernel::Conv(ConvAlgo::General, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::General, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::General, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Blocked3x3, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Blocked3x3, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Blocked3x3, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Blocked1x1, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Blocked1x1, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Blocked1x1, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Tiled, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Tiled, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Tiled, Epilogue::Residual),
        Kernel::ConvPair(ConvAlgo::Blocked1x1),
        Kernel::ConvPair(ConvAlgo::Tiled),
        Kernel::Conv(ConvAlgo::Window3x3, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window3x3, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window3x3, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Window1x1, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window1x1, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window1x1, Epilogue::Residual),
        Kernel::ConvPair(ConvAlgo::Window1x1),
        Kernel::Conv(ConvAlgo::WindowGeneral, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::WindowGeneral, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::WindowGeneral, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Blocked3x3s2, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Blocked3x3s2, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Blocked3x3s2, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Window3x3s2, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window3x3s2, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window3x3s2, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Window1x1x4, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window1x1x4, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window1x1x4, Epilogue::Residual),
        Kernel::ConvPair(ConvAlgo::Window1x1x4),
        Kernel::Conv(ConvAlgo::Window3x3x4, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window3x3x4, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window3x3x4, Epilogue::Residual),
        Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::Bias),
        Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::ChannelAdd),
        Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::Residual),
        Kernel::GroupNorm { silu: false },
        Kernel::GroupNorm { silu: true },
        Kernel::GroupNormPair { silu: false },
        Kernel::GroupNormPair { silu: true },
        Kernel::GroupNormX4 { silu: false },
        Kernel::GroupNormX4 { silu: true },
        Kernel::GroupNormPairX4 { silu: false },
        Kernel::GroupNormPairX4 { silu: true },
        Kernel::Linear { silu_in: false, silu_out: false },
        Kernel::Linear { silu_in: true, silu_out: false },
        Kernel::Linear { silu_in: false, silu_out: true },
        Kernel::Linear { silu_in: true, silu_out: true },
        Kernel::TimeEmbed,
        Kernel::AttnScores,
        Kernel::AttnSoftmax,
        Kernel::AttnApply,
        Kernel::AttnFused,
        Kernel::AttnScoresWindow,
        Kernel::AttnApplyWindow,
        Kernel::Upsample,
        Kernel::Concat,
        Kernel::CastIn,
        Kernel::CastOut,
        Kernel::Affine(Noise::Philox),
        Kernel::Affine(Noise::Given),
        Kernel::HeunPredict,
        Kernel::HeunCorrect,
        Kernel::AddNoise(Noise::Philox),
        Kernel::AddNoise(Noise::Given),
        Kernel::Langevin(Noise::Philox),
        Kernel::Langevin(Noise::Given),
        Kernel::ReplaceKnown(Noise::Philox),
        Kernel::ReplaceKnown(Noise::Given),
        Kernel::ProjectLow,
        Kernel::PackFrame,
        Kernel::Forward(Noise::Philox),
        Kernel::Forward(Noise::Given),
    ];

    /// Position in [`Kernel::ALL`] (pipelines are stored in that order).
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&k| k == self).expect("every kernel is listed in Kernel::ALL")
    }

    pub fn source(self) -> Source {
        match self {
            Kernel::Conv(a, _) | Kernel::ConvPair(a) if a.is_windowed() => CONV_WINDOW,
            Kernel::Conv(..) | Kernel::ConvPair(_) => CONV,
            Kernel::GroupNorm { .. } | Kernel::GroupNormPair { .. } | Kernel::GroupNormX4 { .. } | Kernel::GroupNormPairX4 { .. } => GROUP_NORM,
            Kernel::Linear { .. } => LINEAR,
            Kernel::TimeEmbed => EMBED,
            Kernel::AttnScores | Kernel::AttnSoftmax | Kernel::AttnApply | Kernel::AttnFused | Kernel::AttnScoresWindow | Kernel::AttnApplyWindow => ATTENTION,
            Kernel::Upsample | Kernel::Concat => RESAMPLE,
            Kernel::CastIn | Kernel::CastOut => CAST,
            Kernel::Affine(_) | Kernel::HeunPredict | Kernel::HeunCorrect | Kernel::AddNoise(_) | Kernel::ReplaceKnown(_) | Kernel::ProjectLow => UPDATE,
            Kernel::Langevin(_) => LANGEVIN,
            Kernel::PackFrame => FRAMES,
            Kernel::Forward(_) => FORWARD,
        }
    }

    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        use ConvAlgo::*;
        use Epilogue::*;
        match self {
            Kernel::Conv(General | WindowGeneral, Bias) => "general",
            Kernel::Conv(General | WindowGeneral, ChannelAdd) => "general_chan_add",
            Kernel::Conv(General | WindowGeneral, Residual) => "general_residual",
            // The windowed kernels are the blocked entry points of the module with windowed weights.
            Kernel::Conv(Blocked3x3 | Window3x3, Bias) => "conv3x3",
            Kernel::Conv(Blocked3x3 | Window3x3, ChannelAdd) => "conv3x3_chan_add",
            Kernel::Conv(Blocked3x3 | Window3x3, Residual) => "conv3x3_residual",
            Kernel::Conv(Blocked1x1 | Window1x1, Bias) => "conv1x1",
            Kernel::Conv(Blocked1x1 | Window1x1, ChannelAdd) => "conv1x1_chan_add",
            Kernel::Conv(Blocked1x1 | Window1x1, Residual) => "conv1x1_residual",
            Kernel::Conv(Window1x1x4, Bias) => "conv1x1_x4",
            Kernel::Conv(Window1x1x4, ChannelAdd) => "conv1x1_x4_chan_add",
            Kernel::Conv(Window1x1x4, Residual) => "conv1x1_x4_residual",
            Kernel::ConvPair(Window1x1x4) => "conv1x1_pair_x4",
            Kernel::Conv(Window3x3x4, Bias) => "conv3x3_x4",
            Kernel::Conv(Window3x3x4, ChannelAdd) => "conv3x3_x4_chan_add",
            Kernel::Conv(Window3x3x4, Residual) => "conv3x3_x4_residual",
            Kernel::Conv(Window3x3x2, Bias) => "conv3x3_x2",
            Kernel::Conv(Window3x3x2, ChannelAdd) => "conv3x3_x2_chan_add",
            Kernel::Conv(Window3x3x2, Residual) => "conv3x3_x2_residual",
            Kernel::Conv(Blocked3x3s2 | Window3x3s2, Bias) => "conv3x3s2",
            Kernel::Conv(Blocked3x3s2 | Window3x3s2, ChannelAdd) => "conv3x3s2_chan_add",
            Kernel::Conv(Blocked3x3s2 | Window3x3s2, Residual) => "conv3x3s2_residual",
            Kernel::Conv(Tiled, Bias) => "tiled",
            Kernel::Conv(Tiled, ChannelAdd) => "tiled_chan_add",
            Kernel::Conv(Tiled, Residual) => "tiled_residual",
            Kernel::ConvPair(Tiled) => "tiled_pair",
            Kernel::ConvPair(_) => "conv1x1_pair",
            Kernel::GroupNormPair { .. } => "main_pair",
            Kernel::GroupNormX4 { .. } => "main_x4",
            Kernel::GroupNormPairX4 { .. } => "main_pair_x4",
            Kernel::GroupNorm { .. } | Kernel::Linear { .. } | Kernel::TimeEmbed | Kernel::PackFrame => "main",
            Kernel::AttnScores => "scores",
            Kernel::AttnSoftmax => "softmax",
            Kernel::AttnApply => "apply",
            Kernel::AttnFused => "fused",
            Kernel::AttnScoresWindow => "scores_window",
            Kernel::AttnApplyWindow => "apply_window",
            Kernel::Upsample => "upsample_nearest2x",
            Kernel::Concat => "concat_channels",
            Kernel::CastIn => "cast_in",
            Kernel::CastOut => "cast_out",
            Kernel::Affine(Noise::Philox) => "affine_philox",
            Kernel::Affine(Noise::Given) => "affine_given",
            Kernel::HeunPredict => "heun_predict",
            Kernel::HeunCorrect => "heun_correct",
            Kernel::AddNoise(Noise::Philox) => "add_noise_philox",
            Kernel::AddNoise(Noise::Given) => "add_noise_given",
            Kernel::Langevin(Noise::Philox) => "langevin_philox",
            Kernel::Langevin(Noise::Given) => "langevin_given",
            Kernel::ReplaceKnown(Noise::Philox) => "replace_known_philox",
            Kernel::ReplaceKnown(Noise::Given) => "replace_known_given",
            Kernel::ProjectLow => "project_low_philox",
            Kernel::Forward(Noise::Philox) => "philox_noise",
            Kernel::Forward(Noise::Given) => "given_noise",
        }
    }

    /// Values of the WGSL `override` constants this pipeline is compiled with.
    pub fn constants(self) -> &'static [(&'static str, f64)] {
        match self {
            Kernel::GroupNorm { silu } | Kernel::GroupNormPair { silu } | Kernel::GroupNormX4 { silu } | Kernel::GroupNormPairX4 { silu } => {
                if silu {
                    &[("SILU", 1.0)]
                } else {
                    &[("SILU", 0.0)]
                }
            }
            Kernel::Linear { silu_in: false, silu_out: false } => &[("SILU_IN", 0.0), ("SILU_OUT", 0.0)],
            Kernel::Linear { silu_in: true, silu_out: false } => &[("SILU_IN", 1.0), ("SILU_OUT", 0.0)],
            Kernel::Linear { silu_in: false, silu_out: true } => &[("SILU_IN", 0.0), ("SILU_OUT", 1.0)],
            Kernel::Linear { silu_in: true, silu_out: true } => &[("SILU_IN", 1.0), ("SILU_OUT", 1.0)],
            _ => &[],
        }
    }

    /// The bind group's layout, params first.
    pub fn bindings(self) -> &'static [Binding] {
        match self {
            Kernel::Conv(ConvAlgo::Window1x1x4 | ConvAlgo::Window3x3x4, Epilogue::Bias) => WINDOW4_BIAS,
            Kernel::Conv(ConvAlgo::Window1x1x4 | ConvAlgo::Window3x3x4, Epilogue::ChannelAdd) => WINDOW4_ADD,
            Kernel::Conv(ConvAlgo::Window1x1x4 | ConvAlgo::Window3x3x4, Epilogue::Residual) => WINDOW4_RES,
            Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::Bias) => WINDOW2_BIAS,
            Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::ChannelAdd) => WINDOW2_ADD,
            Kernel::Conv(ConvAlgo::Window3x3x2, Epilogue::Residual) => WINDOW2_RES,
            Kernel::ConvPair(ConvAlgo::Window1x1x4) => const { &[uniform(), net(read(8, "a")), net(read(9, "b")), window(2, "w"), net(read(3, "bias")), net(write(6, "out"))] },
            Kernel::Conv(a, Epilogue::Bias) if a.is_windowed() => WINDOW_BIAS,
            Kernel::Conv(a, Epilogue::ChannelAdd) if a.is_windowed() => WINDOW_ADD,
            Kernel::Conv(a, Epilogue::Residual) if a.is_windowed() => WINDOW_RES,
            Kernel::ConvPair(ConvAlgo::Window1x1) => const { &[uniform(), net(read(1, "a")), net(read(7, "b")), window(2, "w"), net(read(3, "bias")), net(write(6, "out"))] },
            Kernel::Conv(_, Epilogue::Bias) => CONV_BIAS,
            Kernel::Conv(_, Epilogue::ChannelAdd) => CONV_ADD,
            Kernel::Conv(_, Epilogue::Residual) => CONV_RES,
            Kernel::GroupNorm { .. } => const { &[uniform(), net(read(1, "x")), net(read(2, "gamma")), net(read(3, "beta")), net(write(4, "out"))] },
            Kernel::GroupNormPair { .. } => {
                const { &[uniform(), net(read(1, "a")), net(read(5, "b")), net(read(2, "gamma")), net(read(3, "beta")), net(write(4, "out"))] }
            }
            Kernel::GroupNormX4 { .. } => const { &[uniform(), net(read(6, "x")), net(read(2, "gamma")), net(read(3, "beta")), net(write(7, "out"))] },
            Kernel::GroupNormPairX4 { .. } => {
                const { &[uniform(), net(read(6, "a")), net(read(8, "b")), net(read(2, "gamma")), net(read(3, "beta")), net(write(7, "out"))] }
            }
            Kernel::ConvPair(_) => const { &[uniform(), net(read(1, "a")), net(read(7, "b")), net(read(2, "w")), net(read(3, "bias")), net(write(6, "out"))] },
            Kernel::Linear { .. } => const { &[uniform(), net(read(1, "x")), net(read(2, "w")), net(read(3, "b")), net(write(4, "out"))] },
            Kernel::TimeEmbed => const { &[uniform(), read(1, "t"), net(write(2, "out"))] },
            Kernel::AttnScores => const { &[uniform(), net(read(1, "q")), net(read(2, "k")), write(5, "scores")] },
            Kernel::AttnSoftmax => const { &[uniform(), write(5, "scores")] },
            Kernel::AttnApply => const { &[uniform(), read(6, "probs"), net(read(2, "v")), net(write(3, "out"))] },
            Kernel::AttnFused => const { &[uniform(), net(read(1, "q")), net(read(2, "k")), net(write(3, "out")), net(read(4, "v"))] },
            Kernel::AttnScoresWindow => const { &[uniform(), net(read(9, "q")), window(8, "k"), write(5, "scores")] },
            Kernel::AttnApplyWindow => const { &[uniform(), read(10, "probs"), window(8, "v"), net(write(3, "out"))] },
            Kernel::Upsample => const { &[uniform(), net(read(1, "x")), net(write(3, "out"))] },
            Kernel::Concat => const { &[uniform(), net(read(1, "a")), net(read(2, "b")), net(write(3, "out"))] },
            Kernel::CastIn => const { &[uniform(), read(1, "x"), net(write(2, "out"))] },
            Kernel::CastOut => const { &[uniform(), net(read(3, "x")), write(4, "out")] },
            Kernel::Affine(Noise::Philox) | Kernel::Langevin(Noise::Philox) => const { &[uniform(), read(1, "eps"), write(3, "x"), write(4, "x0")] },
            Kernel::Affine(Noise::Given) | Kernel::Langevin(Noise::Given) => {
                const { &[uniform(), read(1, "eps"), read(2, "z"), write(3, "x"), write(4, "x0")] }
            }
            Kernel::HeunPredict | Kernel::HeunCorrect => {
                const { &[uniform(), read(1, "eps"), write(3, "x"), write(4, "x0"), write(5, "saved"), write(6, "deriv")] }
            }
            Kernel::AddNoise(Noise::Philox) => const { &[uniform(), write(3, "x")] },
            Kernel::AddNoise(Noise::Given) => const { &[uniform(), read(2, "z"), write(3, "x")] },
            Kernel::ReplaceKnown(Noise::Philox) => const { &[uniform(), write(3, "x"), read(7, "known"), read(8, "mask")] },
            Kernel::ReplaceKnown(Noise::Given) => const { &[uniform(), read(2, "z"), write(3, "x"), read(7, "known"), read(8, "mask")] },
            Kernel::ProjectLow => const { &[uniform(), write(3, "x"), read(9, "low")] },
            Kernel::PackFrame => const { &[uniform(), read(1, "src"), write(2, "out")] },
            Kernel::Forward(Noise::Philox) => const { &[uniform(), read(1, "x0"), write(3, "xt")] },
            Kernel::Forward(Noise::Given) => const { &[uniform(), read(1, "x0"), read(2, "z"), write(3, "xt")] },
        }
    }

    /// Whether the kernel has a pipeline per precision (its module declares its storage through `elem`);
    /// the others are compiled once, in f32.
    pub fn is_network(self) -> bool {
        self.source().is_network()
    }

    /// Whether it has a pipeline in `precision`: network kernels in both, others in f32, and the windowed
    /// kernels (whose windows hold f32) in f32 only.
    pub fn runs_in(self, precision: Precision) -> bool {
        let windowed = self.bindings().iter().any(|b| b.access == Access::Window);
        precision == Precision::F32 || (self.is_network() && !windowed)
    }

    /// The family a benchmark groups this kernel under ("Conv3x3", "GroupNorm", …).
    pub fn family(self) -> &'static str {
        match self {
            Kernel::Conv(ConvAlgo::General | ConvAlgo::WindowGeneral, _) => "ConvGeneral",
            Kernel::Conv(ConvAlgo::Blocked3x3s2 | ConvAlgo::Window3x3s2, _) => "Conv3x3s2",
            Kernel::Conv(ConvAlgo::Blocked3x3 | ConvAlgo::Window3x3 | ConvAlgo::Window3x3x4 | ConvAlgo::Window3x3x2, _) => "Conv3x3",
            Kernel::Conv(ConvAlgo::Blocked1x1 | ConvAlgo::Window1x1 | ConvAlgo::Window1x1x4, _) => "Conv1x1",
            Kernel::Conv(ConvAlgo::Tiled, _) | Kernel::ConvPair(ConvAlgo::Tiled) => "ConvTiled",
            Kernel::ConvPair(_) => "Conv1x1",
            Kernel::GroupNorm { .. } | Kernel::GroupNormPair { .. } | Kernel::GroupNormX4 { .. } | Kernel::GroupNormPairX4 { .. } => "GroupNorm",
            Kernel::Linear { .. } => "Linear",
            Kernel::TimeEmbed => "TimeEmbed",
            Kernel::AttnScores | Kernel::AttnSoftmax | Kernel::AttnApply | Kernel::AttnFused | Kernel::AttnScoresWindow | Kernel::AttnApplyWindow => {
                "Attention"
            }
            Kernel::Upsample | Kernel::Concat | Kernel::CastIn | Kernel::CastOut => "Resample",
            Kernel::Affine(_) | Kernel::HeunPredict | Kernel::HeunCorrect | Kernel::AddNoise(_) | Kernel::Langevin(_) | Kernel::ReplaceKnown(_) | Kernel::ProjectLow => {
                "Update"
            }
            Kernel::PackFrame => "Frames",
            Kernel::Forward(_) => "Forward",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_listed_once_with_params_at_binding_0_and_distinct_numbers() {
        for (i, k) in Kernel::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?} listed twice");
            let b = k.bindings();
            assert_eq!(b[0], uniform(), "{k:?}");
            let mut numbers: Vec<u32> = b.iter().map(|b| b.number).collect();
            numbers.sort();
            numbers.dedup();
            assert_eq!(numbers.len(), b.len(), "{k:?} repeats a binding number");
            assert!(b.iter().any(|b| b.access == Access::ReadWrite), "{k:?} writes nothing");
            assert!(k.source().code.contains(&format!("fn {}(", k.entry())), "{k:?}: no entry point {} in {}", k.entry(), k.source().file);
        }
    }
}
