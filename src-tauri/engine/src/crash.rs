//! Crash points for the crash-consistency tests.
//!
//! `DRIVEBACK_CRASH_AT=<point>` or `<point>:<n>` makes the process kill itself with SIGKILL the
//! `n`th time (default: the first) it reaches `crash_point("<point>")`, after printing
//! `driveback: crash point <point> reached` on stderr. Without the variable every crash point is a
//! no-op: one relaxed load of a flag that is set once, at the first call.
//!
//! The points sit where an interruption is most likely to leave something half done (see
//! `docs/RELIABILITY.md` for the list and what the tests check after each).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const CRASH_AT_VAR: &str = "DRIVEBACK_CRASH_AT";

struct Armed {
    point: String,
    nth: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(CRASH_AT_VAR).ok()?;
            let (point, nth) = match spec.rsplit_once(':') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Dies here (SIGKILL: no destructor, no flush, no cleanup runs) if `DRIVEBACK_CRASH_AT` names
/// this point and this is its `n`th visit.
#[inline]
pub fn crash_point(name: &str) {
    if let Some(a) = armed() {
        if a.point == name && a.seen.fetch_add(1, Ordering::SeqCst) + 1 == a.nth {
            kill_self(name);
        }
    }
}

#[cold]
fn kill_self(name: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "driveback: crash point {name} reached");
    #[cfg(unix)]
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The environment variable that arms a pause point: `<point>:<scope>`.
pub const PAUSE_AT_VAR: &str = "DRIVEBACK_PAUSE_AT";

/// How long a pause point waits for the cancel at most.
const PAUSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits here, when `DRIVEBACK_PAUSE_AT` is `<name>:<scope>`, until `cancelled()` says so or the
/// file `DRIVEBACK_PAUSE_RELEASE` names exists (at most two minutes), after printing
/// `driveback: paused at <name>` on stderr: the cancel tests cancel a backup at a chosen stage
/// every time, and the audit test changes the scratch database before it is compared. `scope`
/// (a database name) keeps a test's pause away from other tests in the same process. Without the
/// variable: one lookup of it.
pub fn pause_point(name: &str, scope: &str, cancelled: impl Fn() -> bool) {
    let Ok(spec) = std::env::var(PAUSE_AT_VAR) else {
        return;
    };
    if spec.split_once(':') != Some((name, scope)) {
        return;
    }
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "driveback: paused at {name}");
    }
    let release = std::env::var_os("DRIVEBACK_PAUSE_RELEASE").map(std::path::PathBuf::from);
    let released = || release.as_ref().is_some_and(|f| f.exists());
    let until = std::time::Instant::now() + PAUSE_LIMIT;
    while !cancelled() && !released() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
