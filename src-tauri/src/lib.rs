//! The Driveback desktop app: a thin Tauri shell over `driveback-engine`.

/// Builds the app on any runtime, so command tests can use `tauri::test::mock_builder`.
pub fn builder<R: tauri::Runtime>(b: tauri::Builder<R>) -> tauri::Builder<R> {
    b.invoke_handler(tauri::generate_handler![app_version])
}

#[tauri::command]
fn app_version() -> String {
    driveback_engine::VERSION.to_string()
}

pub fn run() {
    builder(tauri::Builder::default())
        .run(tauri::generate_context!())
        .expect("error while running the Driveback app");
}
