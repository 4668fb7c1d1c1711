//! `driveback connect`, `whoami` and `disconnect`: the Google account behind `--dest drive`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use driveback_engine::auth::{
    Account, AuthError, Browser, ClientSource, ConnectEvent, ConnectOptions, DriveScope,
    GoogleAuth, Revocation, TokenError, MAX_CLIENT_FILE,
};

/// Exit code when Google no longer accepts the sign-in and the user must connect again.
pub const EXIT_RECONNECT: u8 = 4;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ScopeArg {
    /// The hidden app folder of your Drive (you do not see the files in Drive).
    Appdata,
    /// Only files Driveback creates, in a visible "Driveback Backups" folder.
    File,
}

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// Which part of your Drive Driveback may use.
    #[arg(long, value_enum, default_value = "appdata")]
    scope: ScopeArg,
    /// Print the sign-in address instead of opening a browser. The browser must run on this
    /// computer (Google sends it back to 127.0.0.1), or forward the port shown in the address.
    #[arg(long)]
    no_browser: bool,
    /// Give up waiting for the browser after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// Your own Google OAuth client (type "Desktop app"): the client_secret_….json file Google
    /// Cloud Console downloads. It is saved (the ID in the settings, the secret in the OS
    /// keyring), then used to sign in, now and later.
    #[arg(long, value_name = "PATH")]
    client_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct WhoamiArgs {
    #[arg(long)]
    json: bool,
}

fn fail(e: &AuthError) -> ExitCode {
    eprintln!("driveback: error: {}", super::one_line(&e.to_string()));
    exit_code(e)
}

fn exit_code(e: &AuthError) -> ExitCode {
    match e {
        AuthError::Token(TokenError::ReconnectNeeded(_)) => ExitCode::from(EXIT_RECONNECT),
        _ => ExitCode::FAILURE,
    }
}

/// Run blocking sign-in work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(AuthError::Io(format!("internal error: {e}"))))
}

/// Saves the client in `path` through the service; one line on stderr either way.
fn save_client_file(path: &Path) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CLIENT_FILE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the client file {}: {e}", path.display()))?;
    // The service (and the HTTP client inside it) is made and dropped off the async runtime.
    let status = super::sync(|| {
        let svc = super::service().map_err(|e| e.to_string())?;
        svc.set_google_client_file(&bytes).map_err(|e| e.message)
    })?;
    eprintln!(
        "Saved the Google OAuth client {} (its secret is in the OS keyring).",
        status.client_id.as_deref().unwrap_or("?")
    );
    if status.source == Some(ClientSource::Env) {
        eprintln!("driveback: note: DRIVEBACK_GOOGLE_CLIENT_ID and DRIVEBACK_GOOGLE_CLIENT_SECRET are set, so they are used instead of the saved client");
    }
    Ok(())
}

pub async fn run_connect(args: ConnectArgs) -> ExitCode {
    if let Some(path) = &args.client_file {
        if let Err(why) = save_client_file(path) {
            eprintln!("driveback: error: {}", super::one_line(&why));
            return ExitCode::FAILURE;
        }
    }
    let scope = match args.scope {
        ScopeArg::Appdata => DriveScope::AppData,
        ScopeArg::File => DriveScope::File,
    };
    let browser = Browser::from_env(args.no_browser);
    let timeout = Duration::from_secs(args.timeout.max(1));
    let minutes = timeout.as_secs().div_ceil(60);
    let opening = browser != Browser::None;
    let result = blocking(move || {
        let auth = GoogleAuth::from_env()?;
        auth.connect(ConnectOptions {
            scope,
            browser,
            timeout,
            cancel: None,
            on_event: Box::new(move |e| match e {
                ConnectEvent::AuthorizeUrl(url) => {
                    if opening {
                        eprintln!("Opening your browser to sign in with Google. If it does not open, visit:");
                    } else {
                        eprintln!("To connect Google Drive, open this address in a browser on this computer:");
                    }
                    eprintln!("\n  {url}\n");
                    eprintln!(
                        "Waiting for Google's answer (up to {minutes} min; Ctrl-C to cancel)..."
                    );
                }
                ConnectEvent::BrowserOpened => {}
                ConnectEvent::BrowserFailed(why) => eprintln!(
                    "driveback: note: could not open a browser ({}); open the address above yourself",
                    super::one_line(&why)
                ),
                ConnectEvent::Refused(why) => eprintln!(
                    "driveback: warning: refused an answer that does not belong to this sign-in ({why}); still waiting"
                ),
                ConnectEvent::Exchanging => {}
            }),
        })
    })
    .await;
    match result {
        Ok(c) => {
            println!("Connected as {}", c.account.email);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn scope_text(scope: DriveScope) -> &'static str {
    match scope {
        DriveScope::AppData => "appdata (the hidden app folder of your Drive)",
        DriveScope::File => "file (only files Driveback creates)",
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn print_reconnect(a: &Account, json: bool) -> ExitCode {
    let reason = a
        .reconnect_reason
        .clone()
        .unwrap_or_else(|| "Google no longer accepts the sign-in".into());
    if json {
        super::print_json(&serde_json::json!({
            "connected": true,
            "reconnect_needed": true,
            "reason": reason,
            "email": a.email,
            "display_name": a.display_name,
            "scope": a.scope,
            "connected_at": a.connected_at,
        }));
    } else {
        println!("Email:         {}", a.email);
        println!("Status:        RECONNECT NEEDED: Google no longer accepts Driveback's sign-in");
        eprintln!(
            "driveback: error: Google Drive needs reconnecting ({}): run `driveback connect`",
            super::one_line(&reason)
        );
    }
    ExitCode::from(EXIT_RECONNECT)
}

pub async fn run_whoami(args: WhoamiArgs) -> ExitCode {
    let json = args.json;
    let result = blocking(|| {
        let auth = GoogleAuth::from_env()?;
        let recorded = auth.account()?;
        if let Some(a) = recorded.filter(|a| a.reconnect_needed) {
            return Ok(Err(a));
        }
        match auth.whoami() {
            Ok(x) => Ok(Ok(x)),
            Err(AuthError::Token(TokenError::ReconnectNeeded(why))) => match auth.account()? {
                Some(a) if a.reconnect_needed => Ok(Err(a)),
                _ => Err(TokenError::ReconnectNeeded(why).into()),
            },
            Err(e) => Err(e),
        }
    })
    .await;
    let (account, about) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(a)) => return print_reconnect(&a, json),
        Err(AuthError::NotConnected) if json => {
            super::print_json(&serde_json::json!({ "connected": false }));
            eprintln!("driveback: error: {}", AuthError::NotConnected);
            return ExitCode::FAILURE;
        }
        Err(e) => return fail(&e),
    };
    if json {
        super::print_json(&serde_json::json!({
            "connected": true,
            "reconnect_needed": false,
            "email": about.email,
            "display_name": about.display_name,
            "scope": account.scope,
            "granted_scopes": account.granted_scopes,
            "connected_at": account.connected_at,
            "quota": { "used": about.quota_used, "limit": about.quota_limit },
        }));
    } else {
        println!("Email:         {}", about.email);
        if let Some(n) = &about.display_name {
            println!("Name:          {n}");
        }
        let used = about
            .quota_used
            .map(gib)
            .unwrap_or_else(|| "unknown".into());
        match about.quota_limit {
            Some(limit) => println!("Storage:       {used} used of {}", gib(limit)),
            None => println!("Storage:       {used} used (no limit)"),
        }
        println!("Drive access:  {}", scope_text(account.scope));
        println!(
            "Connected:     {}",
            account.connected_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    ExitCode::SUCCESS
}

pub async fn run_disconnect() -> ExitCode {
    let result = blocking(|| GoogleAuth::from_env()?.disconnect()).await;
    let d = match result {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let who = d
        .email
        .as_deref()
        .map(|e| format!(" {e}"))
        .unwrap_or_default();
    match &d.revocation {
        None => println!("Google Drive was not connected; nothing to revoke (local records removed)."),
        Some(Revocation::Revoked) => println!(
            "Disconnected{who}: Google revoked Driveback's access, and the sign-in was deleted from this computer."
        ),
        Some(Revocation::AlreadyRevoked) => println!(
            "Disconnected{who}: the sign-in was deleted from this computer (Google had already revoked it)."
        ),
        Some(Revocation::Failed(why)) => {
            println!("Disconnected{who}: the sign-in was deleted from this computer.");
            eprintln!(
                "driveback: warning: Google could not be told to revoke Driveback's access ({}); remove Driveback at https://myaccount.google.com/permissions",
                super::one_line(why)
            );
        }
    }
    ExitCode::SUCCESS
}
