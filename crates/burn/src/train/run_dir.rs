//! The run folder of a training run: refuse or resume, checkpoints with rotation, atomic state,
//! the final model and metrics, and loading a finished run. File names: [`stabilize_core::run_files`].

use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use stabilize_core::fsutil::{ensure_writable_dir, write_atomic};
use stabilize_core::run_files;

use super::{TrainError, Unit};

/// An open run folder and its resumable state (`checkpoint/state.json`: the config, the units
/// done and the per-interval history).
pub struct RunDir<C, I> {
    out: PathBuf,
    unit: Unit,
    config: C,
    done: usize,
    history: Vec<I>,
    _marker: PhantomData<I>,
}

impl<C: Clone + PartialEq + Serialize + DeserializeOwned, I: Clone + Serialize + DeserializeOwned> RunDir<C, I> {
    /// Opens `out` for a run with `config`: a new run, or (with `resume`) the run already there,
    /// which must have the same config. Writes `config.json`.
    pub fn open(out: &Path, config: &C, unit: Unit, resume: bool) -> Result<Self, TrainError> {
        ensure_writable_dir(&out.join(run_files::CHECKPOINT_DIR))?;
        let state_path = out.join(run_files::STATE);
        let mut dir = RunDir {
            out: out.to_path_buf(),
            unit,
            config: config.clone(),
            done: 0,
            history: Vec::new(),
            _marker: PhantomData,
        };
        if state_path.is_file() {
            let mut state: serde_json::Value = read_json(&state_path)?;
            let bad =
                |what: &str| TrainError::Checkpoint { path: state_path.clone(), message: format!("no valid {what}") };
            let done = state.get(done_key(unit)).and_then(|v| v.as_u64()).ok_or_else(|| bad(done_key(unit)))?;
            if !resume {
                return Err(TrainError::Checkpoint {
                    path: out.to_path_buf(),
                    message: format!(
                        "already holds a run ({done} {unit}s done); pass --resume or choose another --out"
                    ),
                });
            }
            let saved: C = serde_json::from_value(state["config"].take()).map_err(|_| bad("config"))?;
            if saved != *config {
                return Err(TrainError::Checkpoint {
                    path: state_path,
                    message: "was trained with different settings; resume with the same settings".into(),
                });
            }
            dir.history = serde_json::from_value(state["history"].take()).map_err(|_| bad("history"))?;
            dir.done = done as usize;
        }
        write_atomic(&out.join(run_files::CONFIG), &serde_json::to_vec_pretty(config).expect("serialisable"))?;
        Ok(dir)
    }

    /// Units (epochs or steps) done by earlier invocations or checkpoints of this one.
    pub fn done(&self) -> usize {
        self.done
    }

    pub fn history(&self) -> &[I] {
        &self.history
    }

    /// The model file of the newest checkpoint, if any.
    pub fn last_checkpoint(&self) -> Option<PathBuf> {
        (self.done > 0).then(|| self.checkpoint_paths(self.done).0)
    }

    /// The newest checkpoint's model and optimiser state, loaded into `model` and `optim`.
    pub fn load_checkpoint<M: Module>(
        &self,
        model: M,
        optim: ModuleOptimizer,
    ) -> Result<(M, ModuleOptimizer), TrainError> {
        let (m, o) = self.checkpoint_paths(self.done);
        let model = model.try_load_file(&m).map_err(|e| TrainError::file(&m, e))?;
        let optim = optim.load(&o).map_err(|e| TrainError::file(&o, e))?;
        Ok((model, optim))
    }

    /// Saves a checkpoint after `done` units: the model and the optimiser under numbered names,
    /// then the state that points at them (atomically), then deletes the previous checkpoint.
    pub fn checkpoint<M: Module>(
        &mut self,
        done: usize,
        model: &M,
        optim: &ModuleOptimizer,
        interval: I,
    ) -> Result<(), TrainError> {
        let (m, o) = self.checkpoint_paths(done);
        model.clone().save_file(&m).map_err(|e| TrainError::file(&m, e))?;
        optim.save(&o).map_err(|e| TrainError::file(&o, e))?;
        let previous = self.done;
        self.done = done;
        self.history.push(interval);
        let state = State { config: &self.config, key: done_key(self.unit), done, history: &self.history };
        write_atomic(&self.out.join(run_files::STATE), &serde_json::to_vec_pretty(&state).expect("serialisable"))?;
        if previous > 0 && previous != done {
            let (pm, po) = self.checkpoint_paths(previous);
            let _ = fs::remove_file(pm);
            let _ = fs::remove_file(po);
        }
        Ok(())
    }

    /// The final model (`model.bpk`, inference mode) and the summary (`metrics.json`).
    pub fn finish<M: Module>(&self, model: &M, summary: &impl Serialize) -> Result<(), TrainError> {
        let path = self.out.join(run_files::MODEL);
        model.clone().valid().save_file(&path).map_err(|e| TrainError::file(&path, e))?;
        write_atomic(&self.out.join(run_files::METRICS), &serde_json::to_vec_pretty(summary).expect("serialisable"))?;
        Ok(())
    }

    fn checkpoint_paths(&self, done: usize) -> (PathBuf, PathBuf) {
        let dir = self.out.join(run_files::CHECKPOINT_DIR);
        let stem = match self.unit {
            Unit::Epoch => format!("epoch-{done:03}"),
            Unit::Step => format!("step-{done:06}"),
        };
        (dir.join(format!("{stem}.model.bpk")), dir.join(format!("{stem}.optim.bpk")))
    }
}

fn done_key(unit: Unit) -> &'static str {
    match unit {
        Unit::Epoch => "epochs_done",
        Unit::Step => "steps_done",
    }
}

/// `checkpoint/state.json` as written: `{config, <unit>s_done, history}` in that order.
struct State<'a, C, I> {
    config: &'a C,
    key: &'static str,
    done: usize,
    history: &'a [I],
}

impl<C: Serialize, I: Serialize> Serialize for State<'_, C, I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("config", self.config)?;
        map.serialize_entry(self.key, &self.done)?;
        map.serialize_entry("history", self.history)?;
        map.end()
    }
}

/// Fails before training when `out`'s file system cannot hold two checkpoints (the old one stays
/// until the new one is in place) of weights and AdamW's two moments, and the final model: a full
/// disk is found before the first step, not after the last.
pub(crate) fn ensure_checkpoint_space(out: &Path, num_params: usize) -> Result<(), TrainError> {
    Ok(stabilize_core::fsutil::ensure_space(out, num_params as u64 * 4 * 7 + (16 << 20), "training")?)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let bytes = fs::read(path).map_err(|e| stabilize_core::Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::file(path, e))
}

/// Reads a finished run folder's config (`what` names the kind, "a classifier", and `other` the
/// kind it may be confused with), checking that its final model is there.
pub fn read_run_config<C: DeserializeOwned>(dir: &Path, what: &str, other: &str) -> Result<C, TrainError> {
    let config_path = dir.join(run_files::CONFIG);
    if !config_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("is not {what} run folder (no {})", run_files::CONFIG),
        });
    }
    let bytes = fs::read(&config_path).map_err(|e| stabilize_core::Error::io(&config_path, e))?;
    let config: C = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!("is not {what} run ({e}); is this {other} run?"),
    })?;
    if !dir.join(run_files::MODEL).is_file() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("has no {} (training unfinished? use --resume)", run_files::MODEL),
        });
    }
    Ok(config)
}

/// Loads a finished run folder: its config ([`read_run_config`]) and its final model, built by
/// `init` and filled from `model.bpk`.
pub fn load_run<C: DeserializeOwned, M: Module>(
    dir: &Path,
    what: &str,
    other: &str,
    init: impl FnOnce(&C) -> M,
) -> Result<(C, M), TrainError> {
    let config: C = read_run_config(dir, what, other)?;
    let model_path = dir.join(run_files::MODEL);
    let model = init(&config).try_load_file(&model_path).map_err(|e| TrainError::file(&model_path, e))?;
    Ok((config, model))
}
