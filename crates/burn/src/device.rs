//! Which burn backend runs the work, chosen at run time.
//!
//! burn 0.22 dispatches on a runtime [`Device`]; model code is the same for every backend. The
//! backends compiled in depend on cargo features: `flex` (pure-Rust CPU, default), `tch`
//! (libtorch from PyTorch), `cuda`, `wgpu`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A backend name as given on the command line (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (SIMD, all cores through rayon).
    #[default]
    Flex,
    /// libtorch (CPU), through PyTorch's shared libraries.
    Tch,
    /// NVIDIA GPU through CubeCL.
    Cuda,
    /// Any GPU through wgpu (Vulkan/Metal/DX12).
    Wgpu,
}

impl BackendKind {
    /// Every backend, compiled in or not.
    pub const ALL: [BackendKind; 4] = [BackendKind::Flex, BackendKind::Tch, BackendKind::Cuda, BackendKind::Wgpu];

    /// Whether this build has the backend (its cargo feature was on).
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Tch => cfg!(feature = "tch"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backends of this build.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The default: the first compiled of flex, tch, cuda, wgpu (CPU first, so results do not
    /// change because a GPU feature happened to be on).
    pub fn default_compiled() -> Option<BackendKind> {
        Self::compiled().into_iter().next()
    }

    /// The inference device of this backend (no autodiff); `Err` if it is not compiled in.
    pub fn device(self) -> Result<Device, String> {
        if !self.is_compiled() {
            return Err(format!(
                "backend '{self}' is not in this build (built with: {}); rebuild with `--features {self}`",
                Self::compiled().iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Device::flex(),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            BackendKind::Tch => Device::libtorch(),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(0),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[allow(unreachable_patterns)]
            _ => unreachable!("checked by is_compiled"),
        })
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Tch => "tch",
            BackendKind::Cuda => "cuda",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.to_string().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown backend '{s}' (known: flex, tch, cuda, wgpu)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_missing_backends_say_how_to_get_them() {
        for b in BackendKind::ALL {
            assert_eq!(b.to_string().parse::<BackendKind>().unwrap(), b);
        }
        assert!("metal".parse::<BackendKind>().is_err());
        assert_eq!(BackendKind::default_compiled(), Some(BackendKind::Flex));
        assert!(BackendKind::Flex.device().is_ok());
        if !BackendKind::Cuda.is_compiled() {
            let err = BackendKind::Cuda.device().unwrap_err();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
