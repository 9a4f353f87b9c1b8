pub mod calibrate;
pub mod estimate;
pub mod mocker;
pub mod models;
pub mod profile;
pub mod systems;
pub mod validate;

use std::path::PathBuf;

/// Where a command finds models, GPU systems and efficiency figures beyond
/// the built-in ones; shared by every command that predicts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Sources {
    /// Extra folders of `ORG--NAME.json` model configs.
    #[arg(long = "model-configs")]
    pub model_configs: Vec<PathBuf>,
    /// YAML file of additional GPU systems.
    #[arg(long = "systems-file")]
    pub systems_file: Option<PathBuf>,
    /// Efficiency figures fitted by `slaprof calibrate` (default: built in).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

impl Sources {
    pub fn systems(&self) -> anyhow::Result<Vec<spec::GpuSystem>> {
        match &self.systems_file {
            Some(p) => crate::resolve::load_systems_file(p),
            None => Ok(Vec::new()),
        }
    }

    pub fn calibration(&self) -> anyhow::Result<perf_model::Calibration> {
        crate::resolve::load_calibration(self.calibration.as_deref())
    }
}
