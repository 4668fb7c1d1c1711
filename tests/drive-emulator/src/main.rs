//! `drive-emulator`: run the Google OAuth 2.0 + Drive v3 emulator on a local port.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use drive_emulator::{serve, Config};

#[derive(Parser, Debug)]
#[command(
    name = "drive-emulator",
    version,
    about = "Local emulator of Google's OAuth 2.0 (installed apps) and Drive v3 endpoints, with fault injection"
)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Skip the consent page: the authorization endpoint redirects back with a code at once.
    #[arg(long)]
    auto_consent: bool,
    /// Keep files, grants, tokens and upload sessions here across restarts (memory only without).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage quota of the emulated account, in bytes.
    #[arg(long, default_value_t = 15 * 1024 * 1024 * 1024)]
    quota_bytes: u64,
    /// Lifetime of access tokens (reported as expires_in).
    #[arg(long, default_value_t = 3599)]
    token_lifetime_secs: u64,
    /// Registered OAuth client id.
    #[arg(long, default_value = "driveback-demo.apps.googleusercontent.com")]
    client_id: String,
    /// Secret of --client-id.
    #[arg(long, default_value = "driveback-demo-secret")]
    client_secret: String,
    /// More registered clients, as ID:SECRET (repeatable).
    #[arg(long = "extra-client", value_name = "ID:SECRET")]
    extra_clients: Vec<String>,
    /// Accept any client id; its secret is bound on its first token request.
    #[arg(long)]
    any_client: bool,
    /// Email address of the emulated account.
    #[arg(long, default_value = "demo.user@example.com")]
    user_email: String,
    /// Display name of the emulated account.
    #[arg(long, default_value = "Demo User")]
    user_name: String,
    /// Lifetime of resumable upload sessions (emulated time).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    session_lifetime_secs: u64,
    /// Lifetime of authorization codes.
    #[arg(long, default_value_t = 600)]
    code_lifetime_secs: u64,
    /// Largest request body accepted on upload endpoints, in MiB.
    #[arg(long, default_value_t = 65)]
    max_body_mib: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut clients = vec![(args.client_id, args.client_secret)];
    for c in &args.extra_clients {
        match c.split_once(':') {
            Some((id, secret)) if !id.is_empty() => clients.push((id.into(), secret.into())),
            _ => {
                eprintln!("drive-emulator: --extra-client wants ID:SECRET, got {c:?}");
                std::process::exit(2);
            }
        }
    }
    let config = Config {
        host: args.host,
        port: args.port,
        auto_consent: args.auto_consent,
        data_dir: args.data_dir,
        quota_bytes: args.quota_bytes,
        token_lifetime_secs: args.token_lifetime_secs,
        clients,
        any_client: args.any_client,
        user_email: args.user_email,
        user_name: args.user_name,
        session_lifetime_secs: args.session_lifetime_secs,
        code_lifetime_secs: args.code_lifetime_secs,
        max_upload_body_bytes: args.max_body_mib * 1024 * 1024,
    };
    let (addr, handle) = match serve(config).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("drive-emulator: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "drive-emulator listening on http://{addr}");
    let _ = out.flush();
    tokio::select! {
        _ = handle => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
