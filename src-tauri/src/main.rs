// Prevents an extra console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Before any thread starts: no child process inherits a secret given in the environment.
    driveback_engine::envsecrets::take_from_env();
    driveback_app::run()
}
