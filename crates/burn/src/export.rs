//! A run's weights out to PyTorch: one [safetensors](https://github.com/huggingface/safetensors)
//! file that `torch` loads with no code of ours.
//!
//! - An ImageNet classifier run (`train classify --dataset photos`): torchvision's
//!   `mobilenet_v2()` state dict, names and layouts as torchvision has them
//!   ([`MobileNetV2::torchvision_state`]); `load_state_dict(strict=True)` takes it as it is.
//! - An embedding run (and the default model): the same backbone state dict plus `head.weight`
//!   `[d, 1280]` and `head.bias` `[d]`, the projection; the embedding is
//!   `normalize(head(mean over H, W of features(x)))`.
//! - A Fashion-MNIST classifier: the state dict of the plain `nn.Sequential` (conv, max-pool,
//!   ReLU, conv, max-pool, ReLU, flatten, linear, ReLU, linear) under its indices
//!   ([`SmallCnn::sequential_state`]).
//!
//! Our models normalise their [0,1] input themselves; the torch ones do not, so the header's
//! metadata says how (`mean`, `std`), with what the loader needs to build the module (`kind`,
//! `input_size`, `dim`, `num_classes`, …). `scripts/load_in_pytorch.py` reads it, builds the
//! torch module and, given a [`Reference`], checks it reproduces this program's outputs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::prelude::*;
use stabilize_core::Image;
use stabilize_core::fsutil::{sha256_file, write_atomic};
use stabilize_core::run_files;

use crate::embed::EmbedNet;
use crate::imagenet::{CROP, center_crop};
use crate::infer::{EMBED_BATCH, embed_images, imagenet_logits};
use crate::mobilenet::{IMAGENET_MEAN, IMAGENET_STD, MobileNetV2};
use crate::model::SmallCnn;
use crate::tensor::planar_pixels;
use crate::train::{
    ClassifyTrainConfig, EmbedTrainConfig, ImagenetTrainConfig, TrainError, is_imagenet_run, load_classifier,
    load_embedder, load_imagenet_run,
};

/// The `format` the metadata names; a loader refuses what it does not know.
pub const FORMAT: &str = "stabilize-export-1";

/// One tensor of an exported state dict.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// The key torch's `state_dict()` has for it.
    pub name: String,
    /// torch's shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    pub data: StateData,
}

/// The values of a [`StateTensor`], row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum StateData {
    F32(Vec<f32>),
    /// torch's `num_batches_tracked` counters.
    I64(Vec<i64>),
}

impl StateTensor {
    /// A float tensor as it is (convolution weights `[out, in/groups, kh, kw]`, vectors).
    pub fn of<const D: usize>(name: String, t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        Self { name, shape, data: StateData::F32(t.try_into_vec_as::<f32>().expect("float parameters")) }
    }

    /// A batch norm's `num_batches_tracked`: an int64 scalar, 0.
    pub fn counter(name: String) -> Self {
        Self { name, shape: vec![], data: StateData::I64(vec![0]) }
    }

    /// `PREFIX.weight` in torch's `[out, in]` (burn keeps `[in, out]`) and `PREFIX.bias`.
    pub fn linear(prefix: &str, l: &Linear) -> Vec<Self> {
        let mut v = vec![Self::of(format!("{prefix}.weight"), l.weight.val().transpose())];
        if let Some(b) = &l.bias {
            v.push(Self::of(format!("{prefix}.bias"), b.val()));
        }
        v
    }

    fn bytes(&self) -> (safetensors::Dtype, Vec<u8>) {
        match &self.data {
            StateData::F32(v) => (safetensors::Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            StateData::I64(v) => (safetensors::Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

/// What kind of model an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// MobileNetV2 + projection, L2-normalised embeddings.
    Embedding,
    /// MobileNetV2 with its ImageNet classifier, logits.
    ImagenetClassifier,
    /// The Fashion-MNIST CNN as an `nn.Sequential`, logits.
    FashionCnn,
}

impl ExportKind {
    /// The name in the file's metadata (`kind`) and in `export --json`.
    pub fn name(self) -> &'static str {
        match self {
            ExportKind::Embedding => "embedding",
            ExportKind::ImagenetClassifier => "imagenet-classifier",
            ExportKind::FashionCnn => "fashion-cnn",
        }
    }
}

/// A finished run folder, loaded, whatever its task.
pub enum LoadedRun {
    Embedding(Box<EmbedTrainConfig>, EmbedNet),
    Imagenet(Box<ImagenetTrainConfig>, MobileNetV2),
    Fashion(Box<ClassifyTrainConfig>, SmallCnn),
}

/// An export: the tensors and the header's metadata.
#[derive(Clone, Debug)]
pub struct Export {
    pub kind: ExportKind,
    pub tensors: Vec<StateTensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Inputs and what this program computes from them: `input` `[N, C, S, S]` on [0,1] (what the
/// model is given, before its own normalisation) and `output` `[N, K]` (logits, or unit
/// embeddings), row-major. A port is right when it maps one to the other.
#[derive(Clone, Debug)]
pub struct Reference {
    pub input: Vec<f32>,
    pub input_shape: [usize; 4],
    pub output: Vec<f32>,
    pub output_shape: [usize; 2],
}

/// Why a run could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Load(#[from] TrainError),
    #[error("{0}")]
    Io(#[from] stabilize_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl LoadedRun {
    /// Loads the run folder `dir` (an embedding, ImageNet-classifier or Fashion-MNIST run; the
    /// kind is read from its `config.json`) onto `device`.
    pub fn open(dir: &Path, device: &Device) -> Result<Self, ExportError> {
        if is_imagenet_run(dir) {
            let (c, m) = load_imagenet_run(dir, device)?;
            return Ok(LoadedRun::Imagenet(Box::new(c), m));
        }
        let config: Option<serde_json::Value> =
            std::fs::read(dir.join(run_files::CONFIG)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let is_embedding = config.as_ref().and_then(|c| c.get("model")).and_then(|m| m.get("dim")).is_some();
        Ok(if is_embedding {
            let (c, m) = load_embedder(dir, device)?;
            LoadedRun::Embedding(Box::new(c), m)
        } else {
            let (c, m) = load_classifier(dir, device)?;
            LoadedRun::Fashion(Box::new(c), m)
        })
    }

    pub fn kind(&self) -> ExportKind {
        match self {
            LoadedRun::Embedding(..) => ExportKind::Embedding,
            LoadedRun::Imagenet(..) => ExportKind::ImagenetClassifier,
            LoadedRun::Fashion(..) => ExportKind::FashionCnn,
        }
    }

    /// The state dict and metadata; `source_sha256` (of the run's `model.bpk`) goes into the
    /// metadata so an export names the weights it came from.
    pub fn export(&self, source_sha256: &str) -> Export {
        fn list<T: std::fmt::Display>(v: &[T]) -> String {
            format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
        }
        let mut meta = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            meta.insert(k.to_string(), v);
        };
        put("format", FORMAT.into());
        put("kind", self.kind().name().into());
        put("source_sha256", source_sha256.into());
        put("stabilize_version", env!("CARGO_PKG_VERSION").into());
        let tensors = match self {
            LoadedRun::Embedding(c, m) => {
                put("architecture", "torchvision.models.mobilenet_v2".into());
                put("input_size", c.model.input_size.to_string());
                put("dim", c.model.dim.to_string());
                put("mean", list(&IMAGENET_MEAN));
                put("std", list(&IMAGENET_STD));
                put("output", "embedding: normalize(head(features(x).mean((2, 3)))), unit L2 norm".into());
                let mut t = m.backbone.torchvision_state();
                t.extend(StateTensor::linear("head", &m.proj));
                t
            }
            LoadedRun::Imagenet(_, m) => {
                put("architecture", "torchvision.models.mobilenet_v2".into());
                put("input_size", CROP.to_string());
                put("num_classes", "1000".into());
                put("mean", list(&IMAGENET_MEAN));
                put("std", list(&IMAGENET_STD));
                put("output", "logits".into());
                m.torchvision_state()
            }
            LoadedRun::Fashion(c, m) => {
                let mc = &c.model;
                put("architecture", "torch.nn.Sequential".into());
                put("input_size", mc.input_size.to_string());
                put("in_channels", mc.in_channels.to_string());
                put("width", mc.width.to_string());
                put("features", mc.features.to_string());
                put("num_classes", mc.num_classes.to_string());
                put("mean", list(&vec![mc.pixel_mean; mc.in_channels]));
                put("std", list(&vec![mc.pixel_std; mc.in_channels]));
                put("output", "logits".into());
                m.sequential_state()
            }
        };
        Export { kind: self.kind(), tensors, metadata: meta }
    }

    /// What the model computes from `images` (photo models: decoded photos, prepared as
    /// `dupes`/`embed` (embedding) or `imagenet` (classifier) prepare them; the Fashion-MNIST
    /// CNN: 28×28 grayscale images as they are).
    pub fn reference(&self, images: &[Image], device: &Device) -> Result<Reference, ExportError> {
        if images.is_empty() {
            return Err(ExportError::Invalid("no images to make a reference from".into()));
        }
        let n = images.len();
        let inputs: Vec<Image> = match self {
            LoadedRun::Embedding(c, _) => {
                let side = c.model.input_size as u32;
                images
                    .iter()
                    .map(|i| crate::collection::model_input(i, side).map(|(_, small)| small))
                    .collect::<Result<_, _>>()
                    .map_err(ExportError::Invalid)?
            }
            LoadedRun::Imagenet(..) => images.iter().map(center_crop).collect::<Result<_, _>>()?,
            LoadedRun::Fashion(c, _) => {
                let (side, ch) = (c.model.input_size as u32, c.model.in_channels);
                if let Some(bad) =
                    images.iter().find(|i| i.width() != side || i.height() != side || i.channels().count() != ch)
                {
                    return Err(ExportError::Invalid(format!(
                        "the classifier takes {side}×{side} images with {ch} channel(s), got {}×{} with {}",
                        bad.width(),
                        bad.height(),
                        bad.channels().count()
                    )));
                }
                images.to_vec()
            }
        };
        let refs: Vec<&Image> = inputs.iter().collect();
        let input = planar_pixels(&refs);
        let (c, s) = (inputs[0].channels().count(), inputs[0].width() as usize);
        let output = match self {
            LoadedRun::Embedding(_, m) => embed_images(m, &inputs, EMBED_BATCH, device),
            LoadedRun::Imagenet(_, m) => imagenet_logits(m, &inputs, EMBED_BATCH, device),
            LoadedRun::Fashion(_, m) => {
                let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [n, c, s, s]), device);
                m.valid().forward(x).try_into_vec_as::<f32>().expect("float logits")
            }
        };
        let k = output.len() / n;
        Ok(Reference { input, input_shape: [n, c, s, s], output, output_shape: [n, k] })
    }
}

impl Export {
    /// The safetensors bytes: the tensors (sorted by name, as the format stores them) and the
    /// metadata in the header.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ExportError> {
        let owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|t| {
                let (dtype, bytes) = t.bytes();
                (t.name.clone(), dtype, t.shape.clone(), bytes)
            })
            .collect();
        let views = owned
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExportError::Invalid(format!("a tensor does not fit its shape: {e}")))?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| ExportError::Invalid(format!("safetensors: {e}")))
    }

    /// Writes it to `out` atomically (a killed export leaves no half file); returns its size in
    /// bytes.
    pub fn write(&self, out: &Path) -> Result<usize, ExportError> {
        let bytes = self.to_bytes()?;
        write_atomic(out, &bytes)?;
        Ok(bytes.len())
    }
}

/// The sha256 of a run's `model.bpk`.
pub fn source_sha256(dir: &Path) -> Result<String, ExportError> {
    Ok(sha256_file(&dir.join(run_files::MODEL))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobilenet::MobileNetV2Config;
    use crate::model::SmallCnnConfig;

    fn names(t: &[StateTensor]) -> Vec<&str> {
        t.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn mobilenet_state_has_torchvisions_names_shapes_and_layouts() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let m = MobileNetV2Config::new().init(&device);
        let s = m.torchvision_state();
        // torchvision's mobilenet_v2() state dict: 52 conv weights, 52 × 5 batch-norm entries,
        // the classifier's weight and bias.
        assert_eq!(s.len(), 52 + 52 * 5 + 2);
        let n = names(&s);
        for want in [
            "features.0.0.weight",
            "features.0.1.num_batches_tracked",
            "features.1.conv.0.0.weight",
            "features.1.conv.1.weight",
            "features.1.conv.2.running_var",
            "features.2.conv.0.0.weight",
            "features.2.conv.1.1.bias",
            "features.2.conv.2.weight",
            "features.2.conv.3.running_mean",
            "features.17.conv.3.weight",
            "features.18.0.weight",
            "features.18.1.running_var",
            "classifier.1.weight",
            "classifier.1.bias",
        ] {
            assert!(n.contains(&want), "{want} missing");
        }
        let get = |k: &str| s.iter().find(|t| t.name == k).unwrap();
        assert_eq!(get("features.2.conv.1.0.weight").shape, [96, 1, 3, 3]);
        assert_eq!(get("features.0.1.num_batches_tracked").shape, Vec::<usize>::new());
        // torch's [out, in]: the transpose of burn's [in, out].
        let w = get("classifier.1.weight");
        assert_eq!(w.shape, [1000, 1280]);
        let burn_w = m.classifier.weight.val().try_into_vec_as::<f32>().unwrap();
        let StateData::F32(v) = &w.data else { panic!() };
        assert_eq!((v[1], v[1280]), (burn_w[1000], burn_w[1]));
    }

    #[test]
    fn the_fashion_cnn_is_a_sequentials_state_and_the_file_reads_back() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let m = SmallCnnConfig::new().init(&device);
        let s = m.sequential_state();
        assert_eq!(names(&s), ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"]);
        let shapes: Vec<&[usize]> = s.iter().map(|t| t.shape.as_slice()).collect();
        assert_eq!(
            shapes,
            [&[16, 1, 3, 3][..], &[16], &[32, 16, 3, 3], &[32], &[128, 1568], &[128], &[10, 128], &[10]]
        );
        let mut metadata = BTreeMap::new();
        metadata.insert("kind".to_string(), "fashion-cnn".to_string());
        let e = Export { kind: ExportKind::FashionCnn, tensors: s.clone(), metadata };
        let bytes = e.to_bytes().unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap()["kind"], "fashion-cnn");
        for t in &s {
            let v = st.tensor(&t.name).unwrap();
            assert_eq!(v.shape(), t.shape.as_slice());
            let StateData::F32(want) = &t.data else { panic!() };
            let got: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(&got, want, "{}", t.name);
        }
    }

    /// Loading torchvision's file and exporting gives back that file's state dict: every name,
    /// shape and float value (the real weights; skipped without them unless data is required).
    #[test]
    fn torchvisions_weights_round_trip_exactly() {
        let data = std::env::var_os("STABILIZE_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
        let pth = data.join("mobilenet-v2/mobilenet_v2-b0353104.pth");
        if !pth.is_file() {
            assert!(std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"), "{} missing", pth.display());
            return;
        }
        let m = MobileNetV2::load_torchvision(&pth, &Device::flex()).unwrap();
        let ours = m.torchvision_state();
        let theirs = burn::store::pytorch_reader::PytorchReader::new(&pth).unwrap().into_tensors();
        let mut a: Vec<&str> = names(&ours);
        let mut b: Vec<&str> = theirs.keys().map(|k| k.as_str()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for t in &ours {
            let r = &theirs[&t.name];
            assert_eq!(r.shape(), t.shape.as_slice(), "{}", t.name);
            if let StateData::F32(v) = &t.data {
                let bytes = r.read().unwrap();
                let want: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect();
                assert_eq!(v, &want, "{}", t.name);
            }
        }
    }
}
