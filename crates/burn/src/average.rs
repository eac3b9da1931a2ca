//! Weight averaging ("model soup"): runs of one recipe that start from the same pretrained weights
//! and differ only by their seed end near each other, and the mean of their weights is often a
//! better model than either (Wortsman et al., ICML 2022). The mean is one network, so it costs
//! nothing at inference, unlike an ensemble of the runs.
//!
//! Every float tensor of the module is averaged, batch norm's running statistics included (burn
//! visits them as float parameters; the embedding runs keep batch norm in inference mode, so
//! theirs are the pretrained network's in every run, and so is their mean); flags are the first
//! model's.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::fsutil::write_atomic;
use stabilize_core::run_files;

use crate::train::{EmbedTrainConfig, TrainError, load_embedder};

/// What `average.json` in an averaged run folder records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Averaged {
    /// The run folders averaged, in order (the first one's config is the folder's).
    pub runs: Vec<String>,
    /// Their seeds, in the same order.
    pub seeds: Vec<u64>,
}

/// Averages the weights of embedding runs `runs` (one recipe, other seeds: their configs equal
/// but for the seed, else a one-line error) into the run folder `out`: the first run's
/// `config.json`, the mean `model.bpk`, and `average.json` ([`Averaged`]). No `metrics.json`:
/// the folder trained nothing. `eval embed`, `eval fusion` and `dupes --model` take it as a run.
pub fn average_embedding_runs(runs: &[PathBuf], out: &Path, device: &Device) -> Result<Averaged, TrainError> {
    if runs.len() < 2 {
        return Err(TrainError::Checkpoint {
            path: out.to_path_buf(),
            message: "averaging needs two runs or more".into(),
        });
    }
    if out.join(run_files::MODEL).exists() || out.join(run_files::CONFIG).exists() {
        return Err(TrainError::Checkpoint {
            path: out.to_path_buf(),
            message: "already holds a run; choose a new folder".into(),
        });
    }
    let mut configs: Vec<EmbedTrainConfig> = Vec::new();
    let mut models = Vec::new();
    for run in runs {
        let (config, model) = load_embedder(run, device)?;
        if let Some(first) = configs.first()
            && (EmbedTrainConfig { seed: first.seed, ..config.clone() }) != *first
        {
            return Err(TrainError::Checkpoint {
                path: run.clone(),
                message: format!("is not {}'s recipe with another seed; only such runs average", runs[0].display()),
            });
        }
        configs.push(config);
        models.push(model);
    }
    std::fs::create_dir_all(out).map_err(|e| stabilize_core::Error::io(out, e))?;
    let record = Averaged {
        runs: runs.iter().map(|r| r.display().to_string()).collect(),
        seeds: configs.iter().map(|c| c.seed).collect(),
    };
    let path = out.join(run_files::MODEL);
    average(models).save_file(&path).map_err(|e| TrainError::file(&path, e))?;
    write_atomic(&out.join(run_files::CONFIG), &serde_json::to_vec_pretty(&configs[0]).expect("serialisable"))?;
    write_atomic(&out.join(AVERAGE_FILE), &serde_json::to_vec_pretty(&record).expect("serialisable"))?;
    Ok(record)
}

/// The record an averaged run folder carries.
pub const AVERAGE_FILE: &str = "average.json";

/// The element-wise mean of the float parameters of `models` (of one architecture: the same
/// parameters, in the same order, of the same shapes), as a module shaped like `models[0]`.
///
/// # Panics
/// On an empty list, or models whose parameters differ in count or shape.
pub fn average<M: Module>(models: Vec<M>) -> M {
    let n = models.len();
    let mut models = models.into_iter();
    let first = models.next().expect("nothing to average");
    // The others' parameters, summed, flattened, in visiting order.
    let Some(sums) = models.map(|m| params(&m)).reduce(|mut sums, other| {
        assert_eq!(other.len(), sums.len(), "models of different architectures");
        for ((shape, sum), (s, t)) in sums.iter_mut().zip(other) {
            assert_eq!(*shape, s, "parameters of different shapes");
            *sum = sum.clone() + t;
        }
        sums
    }) else {
        return first;
    };
    let mut mean = Mean { others: sums.into_iter(), n: n as f32 };
    let out = first.map(&mut mean);
    assert!(mean.others.next().is_none(), "models of different architectures");
    out
}

/// A module's float parameters in visiting order, each with its shape, flattened.
fn params<M: Module>(m: &M) -> Vec<(Vec<usize>, Tensor<1>)> {
    let mut collect = Collect { params: Vec::new() };
    m.visit(&mut collect);
    collect.params
}

struct Collect {
    params: Vec<(Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let t = p.val();
        let shape = t.dims().to_vec();
        let len: usize = shape.iter().product();
        self.params.push((shape, t.reshape([len])));
    }
}

struct Mean<I: Iterator<Item = (Vec<usize>, Tensor<1>)>> {
    others: I,
    n: f32,
}

impl<I: Iterator<Item = (Vec<usize>, Tensor<1>)>> ModuleMapper for Mean<I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (shape, sum) = self.others.next().expect("models of different architectures");
        let n = self.n;
        param.map(|t| {
            let dims = t.dims();
            assert_eq!(dims.as_slice(), shape.as_slice(), "parameters of different shapes");
            (t + sum.reshape(dims)) / n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SmallCnnConfig;

    /// Every float parameter of the mean of three models is the mean of theirs.
    #[test]
    fn the_average_of_three_models_is_their_parameters_mean() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let models: Vec<_> = (0..3).map(|_| SmallCnnConfig::new().init(&device)).collect();
        let flat = |m: &crate::model::SmallCnn| {
            params(m).into_iter().map(|(_, t)| t.try_into_vec_as::<f32>().unwrap()).collect::<Vec<_>>()
        };
        let each: Vec<_> = models.iter().map(flat).collect();
        assert_ne!(each[0], each[1], "three different initialisations");
        let mean = flat(&average(models));
        assert_eq!(mean.len(), each[0].len());
        for (p, got) in mean.iter().enumerate() {
            for (i, v) in got.iter().enumerate() {
                let want = (each[0][p][i] + each[1][p][i] + each[2][p][i]) / 3.0;
                assert!((v - want).abs() <= 1e-6, "parameter {p}[{i}]: {v} against {want}");
            }
        }
        // One model is itself.
        let one = SmallCnnConfig::new().init(&device);
        let before = flat(&one);
        assert_eq!(flat(&average(vec![one])), before);
    }
}
