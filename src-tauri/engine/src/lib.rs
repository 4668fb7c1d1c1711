//! Driveback's backup engine: export, archive, encryption, stores and restore. No Tauri dependency.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
