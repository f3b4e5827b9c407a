//! `diffusion_pytorch_model.safetensors` → named f32 tensors, looked up by path with the shape the config
//! implies (candle's `VarBuilder` habit: a wrong tensor is an error naming the path and both shapes).

use std::collections::HashMap;

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Host copies of the weights in f32 (the GPU math is f32 everywhere: SwiftShader has no `shader-f16`).
pub struct Weights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Old diffusers checkpoints (e.g. `google/ddpm-cifar10-32`) name the attention projections
/// `query`/`key`/`value`/`proj_attn`; diffusers renames them on load, so do we.
fn canonical_name(name: &str) -> String {
    for (old, new) in [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")] {
        if let Some(i) = name.find(old) {
            return format!("{}{}{}", &name[..i], new, &name[i + old.len()..]);
        }
    }
    name.to_string()
}

/// Values a weights file may hold (1 GiB once widened to f32), checked from its header before any is
/// converted: the same bound as a config's implied parameters.
pub const MAX_VALUES: u64 = crate::model::config::MAX_PARAMETERS;

/// A safetensors parse error as a sentence, with the usual wrong files recognised by their first bytes.
fn describe(bytes: &[u8], e: safetensors::SafeTensorError) -> Error {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).trim_start().to_ascii_lowercase();
    Error::Safetensors(if bytes.is_empty() {
        "the file is empty (0 bytes)".into()
    } else if head.starts_with('<') {
        "it is an HTML page (the server sent a web page instead of the weights: is the model's address right?)".into()
    } else if head.starts_with('{') {
        "it is JSON text, not weights".into()
    } else {
        match e {
            safetensors::SafeTensorError::HeaderTooSmall => format!("the file is {} bytes, too short for a safetensors header", bytes.len()),
            safetensors::SafeTensorError::InvalidHeaderLength => "its header length is larger than the file (truncated or not safetensors)".into(),
            other => format!("{other}"),
        }
    })
}

impl Weights {
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes, MAX_VALUES)
    }

    fn parse(bytes: &[u8], max_values: u64) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| describe(bytes, e))?;
        let values: u64 = st.tensors().iter().map(|(_, v)| v.shape().iter().map(|&d| d as u64).product::<u64>()).sum();
        if values > max_values {
            return Err(Error::Safetensors(format!("it holds {values} values, more than the {max_values} ddpm-web loads")));
        }
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                other => return Err(Error::DType { name, dtype: format!("{other:?}") }),
            };
            tensors.insert(canonical_name(&name), (view.shape().to_vec(), values));
        }
        Ok(Self { tensors })
    }

    /// The tensor at `name`, which must have `shape` (a linear's `[out, in]` may also be stored as a 1x1
    /// conv `[out, in, 1, 1]`, as old checkpoints do).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (found, data) = self.tensors.get(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        let squeezed: Vec<usize> = found.iter().copied().filter(|&d| d != 1).collect();
        let want: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
        if found.as_slice() != shape && !(found.len() != shape.len() && squeezed == want) {
            return Err(Error::ShapeMismatch { name: name.to_string(), expected: shape.to_vec(), found: found.clone() });
        }
        Ok(data)
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_old_attention_names() {
        assert_eq!(canonical_name("mid_block.attentions.0.query.weight"), "mid_block.attentions.0.to_q.weight");
        assert_eq!(canonical_name("mid_block.attentions.0.proj_attn.bias"), "mid_block.attentions.0.to_out.0.bias");
        assert_eq!(canonical_name("conv_in.weight"), "conv_in.weight");
    }

    #[test]
    fn reads_f16_and_reports_mismatches() {
        let vals = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F16, vec![2], &bytes).unwrap();
        let file = safetensors::serialize([("a.weight", view)], None).unwrap();
        let w = Weights::from_safetensors(&file).unwrap();
        assert_eq!(w.get("a.weight", &[2]).unwrap(), &[1.5, -2.0]);
        assert!(matches!(w.get("a.weight", &[3]), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(w.get("b.weight", &[2]), Err(Error::MissingTensor(_))));
        assert!(matches!(Weights::from_safetensors(b"garbage"), Err(Error::Safetensors(_))));
    }

    #[test]
    fn reads_bf16_and_refuses_integer_tensors() {
        let vals = [bf16::from_f32(0.5), bf16::from_f32(-3.0), bf16::from_f32(1e-3)];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ints = [1u8, 0, 0, 0];
        let file = safetensors::serialize(
            [
                ("w", safetensors::tensor::TensorView::new(Dtype::BF16, vec![3], &bytes).unwrap()),
                ("i", safetensors::tensor::TensorView::new(Dtype::I32, vec![1], &ints).unwrap()),
            ],
            None,
        )
        .unwrap();
        let e = Weights::from_safetensors(&file).err().expect("an I32 tensor is refused");
        assert!(e.to_string().contains("only f32, f16 and bf16"), "{e}");
        let file = safetensors::serialize([("w", safetensors::tensor::TensorView::new(Dtype::BF16, vec![3], &bytes).unwrap())], None).unwrap();
        let w = Weights::from_safetensors(&file).unwrap();
        assert_eq!(w.get("w", &[3]).unwrap(), &[0.5, -3.0, bf16::from_f32(1e-3).to_f32()]);
    }

    #[test]
    fn names_the_usual_wrong_files() {
        // Adds: an empty file, a server's HTML page and a JSON file in place of the weights each get a
        // sentence saying what they are, not safetensors' variant name.
        let msg = |b: &[u8]| Weights::from_safetensors(b).err().expect("refused").to_string();
        assert!(msg(b"").contains("empty (0 bytes)"), "{}", msg(b""));
        assert!(msg(b"<!DOCTYPE html><html><head><title>404</title></head></html>").contains("HTML page"));
        assert!(msg(b"{\"a\": 1}  ").contains("JSON text"));
        assert!(msg(b"abc").contains("3 bytes"), "{}", msg(b"abc"));
    }

    #[test]
    fn declared_shapes_must_match_the_file_length_before_anything_is_read() {
        // Adds: a header whose shape x dtype disagrees with the bytes present (a truncated download, or a
        // header claiming a huge tensor) is refused by the format check, before any value is converted.
        let vals = [0u8; 8];
        let good = safetensors::serialize([("w", safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &vals).unwrap())], None).unwrap();
        assert!(Weights::from_safetensors(&good).is_ok());
        assert!(Weights::from_safetensors(&good[..good.len() - 1]).is_err(), "one byte short");
        let header = r#"{"w":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&vals);
        let e = Weights::from_safetensors(&bytes).err().expect("a shape the bytes cannot hold").to_string();
        assert!(e.contains("safetensors"), "{e}");
    }

    #[test]
    fn refuses_more_values_than_the_cap() {
        // Adds: the total-size cap is checked from the header, before any value is widened (tested with a
        // small cap: a file past the real one would be a gigabyte).
        let vals = [0u8; 12];
        let file = safetensors::serialize([("w", safetensors::tensor::TensorView::new(Dtype::F32, vec![3], &vals).unwrap())], None).unwrap();
        assert!(Weights::parse(&file, 3).is_ok());
        let e = Weights::parse(&file, 2).err().expect("3 values over a cap of 2").to_string();
        assert!(e.contains("3 values") && e.contains("more than the 2"), "{e}");
    }
}
