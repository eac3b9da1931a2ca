//! Which burn backend runs the work, chosen at run time.
//!
//! burn 0.22 dispatches on a runtime [`Device`]; model code is the same for every backend. The
//! backends compiled in depend on cargo features: `flex` (pure-Rust CPU, default), `tch`
//! (libtorch from PyTorch), `cuda`, `wgpu`. [`DeviceChoice`] picks a device of the backend
//! (`--device cpu|cuda[:N]`): libtorch from the PyPI wheel carries CUDA, so `--backend tch --device
//! cuda` runs on an NVIDIA GPU with no other install.

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

/// Which device of a backend (`--device`): the CPU, or CUDA GPU N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device '{s}' (known: cpu, cuda, cuda:N)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl BackendKind {
    /// The inference device of this backend on `choice` (`None`: the backend's own default, as
    /// [`device`](Self::device)). libtorch runs on the CPU or on CUDA GPU N (checked: an error
    /// names how many GPUs libtorch sees); flex only on the CPU; the cuda backend only on a GPU;
    /// wgpu picks its own.
    pub fn device_on(self, choice: Option<DeviceChoice>) -> Result<Device, String> {
        let Some(choice) = choice else { return self.device() };
        match (self, choice) {
            (BackendKind::Flex | BackendKind::Tch, DeviceChoice::Cpu) => self.device(),
            (BackendKind::Tch, DeviceChoice::Cuda(n)) => libtorch_cuda(n),
            (BackendKind::Cuda, DeviceChoice::Cuda(n)) => {
                self.device()?;
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(n));
                #[allow(unreachable_code)]
                Err(format!("no CUDA device {n}"))
            }
            (BackendKind::Flex, DeviceChoice::Cuda(_)) => Err(
                "flex runs on the CPU; for a GPU use --backend tch --device cuda (the PyTorch wheel's libtorch carries CUDA)"
                    .into(),
            ),
            (BackendKind::Cuda, DeviceChoice::Cpu) => Err("the cuda backend runs on a GPU: --device cuda[:N]".into()),
            (BackendKind::Wgpu, _) => Err("wgpu picks its own device: drop --device".into()),
        }
    }
}

/// libtorch's CUDA device `n`, if libtorch sees it.
fn libtorch_cuda(n: usize) -> Result<Device, String> {
    BackendKind::Tch.device()?;
    #[cfg(feature = "tch")]
    {
        let count = tch::Cuda::device_count().max(0) as usize;
        if n >= count {
            return Err(format!(
                "no CUDA device {n}: libtorch sees {count} (no NVIDIA GPU or driver here?); use --device cpu"
            ));
        }
        #[allow(deprecated)]
        return Ok(Device::libtorch_cuda(n));
    }
    #[allow(unreachable_code)]
    Err(format!("no CUDA device {n}"))
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

    #[test]
    fn devices_parse_and_each_backend_takes_only_its_own() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("CUDA:3".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(3)));
        for bad in ["cuda:", "cuda:x", "tpu"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
        assert!(BackendKind::Flex.device_on(Some(DeviceChoice::Cpu)).is_ok());
        assert!(BackendKind::Flex.device_on(None).is_ok());
        let err = BackendKind::Flex.device_on(Some(DeviceChoice::Cuda(0))).unwrap_err();
        assert!(err.contains("--backend tch --device cuda"), "{err}");
        assert!(BackendKind::Wgpu.device_on(Some(DeviceChoice::Cpu)).is_err());
        // libtorch on the CPU always; on a GPU only where it sees one (an error names the count).
        if BackendKind::Tch.is_compiled() {
            assert!(BackendKind::Tch.device_on(Some(DeviceChoice::Cpu)).is_ok());
            match BackendKind::Tch.device_on(Some(DeviceChoice::Cuda(64))) {
                Err(e) => assert!(e.contains("no CUDA device 64: libtorch sees"), "{e}"),
                Ok(_) => panic!("64 GPUs?"),
            }
        }
    }
}
