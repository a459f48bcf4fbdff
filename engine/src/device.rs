//! Where the model runs: `cpu` or `cuda[:N]` (the `--device` flag), as
//! parsed; [`crate::backend::Device::open`] turns it into an opened device.

use std::str::FromStr;

/// A compute device for the ranker and retriever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// candle's CPU backend.
    #[default]
    Cpu,
    /// CUDA device N (needs the `cuda` feature and a driver; otherwise the
    /// engine says why once and runs on the CPU).
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device '{other}', expected cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_and_rejects_the_rest() {
        assert_eq!("cpu".parse(), Ok(ComputeDevice::Cpu));
        assert_eq!("cuda".parse(), Ok(ComputeDevice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(ComputeDevice::Cuda(3)));
        assert!("cuda:x".parse::<ComputeDevice>().is_err());
        assert!(
            "tpu"
                .parse::<ComputeDevice>()
                .expect_err("not a device")
                .contains("tpu")
        );
        assert_eq!(ComputeDevice::Cuda(2).to_string(), "cuda:2");
    }
}
