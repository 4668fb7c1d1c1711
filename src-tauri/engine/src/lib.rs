//! Driveback's backup engine: export, archive, encryption, stores and restore. No Tauri dependency.

pub mod alarms;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod authenticity;
pub mod container;
pub mod crash;
pub mod envsecrets;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod glance;
pub mod health;
pub mod history;
pub mod incremental;
pub mod jobs;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod mongo;
pub mod notify;
pub mod pipeline;
pub mod progress;
pub mod retention;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod status;
pub mod store;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
