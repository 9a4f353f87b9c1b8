//! Helpers shared by the CLI integration tests.

use assert_cmd::Command;
use std::path::Path;

/// The binary with the Hugging Face cache pointed at an empty directory, so
/// whatever the machine has cached cannot change the results.
pub fn slaprof(empty_cache: &Path) -> Command {
    let mut cmd = Command::cargo_bin("slaprof").unwrap();
    cmd.env("HF_HOME", empty_cache)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE");
    cmd
}
