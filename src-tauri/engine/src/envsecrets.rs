//! Secrets given in the environment (`DRIVEBACK_PASSPHRASE`, the SMTP password, a connection
//! string with credentials, the OAuth client secret), taken out of it when a process starts:
//! [`take_from_env`], first thing in `main`, moves them into this process's memory and removes
//! them from its environment, so that no child process (a browser started for Google sign-in
//! on any platform, a helper) inherits them. [`var`] reads them from there (or from the
//! environment in a process that did not take them, such as a test).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The variables that may hold secrets.
pub const SECRET_VARS: [&str; 5] = [
    "DRIVEBACK_PASSPHRASE",
    "DRIVEBACK_NEW_PASSPHRASE",
    "DRIVEBACK_SMTP_PASSWORD",
    "DRIVEBACK_MONGO_URI",
    "DRIVEBACK_GOOGLE_CLIENT_SECRET",
];

static TAKEN: OnceLock<HashMap<&'static str, String>> = OnceLock::new();

/// Moves the secret variables out of the environment. Call it before any other thread starts
/// (changing the environment while another thread reads it is not safe).
pub fn take_from_env() {
    TAKEN.get_or_init(|| {
        let mut taken = HashMap::new();
        for name in SECRET_VARS {
            if let Ok(value) = std::env::var(name) {
                taken.insert(name, value);
                std::env::remove_var(name);
            }
        }
        taken
    });
}

/// A secret variable's value: as taken at start, else from the environment.
pub fn var(name: &str) -> Option<String> {
    match TAKEN.get() {
        Some(taken) => taken.get(name).cloned(),
        None => std::env::var(name).ok(),
    }
}
